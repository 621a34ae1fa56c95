package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sigil-project/sigil/runtime/spec"
)

// Exec runs a new process in a running container (it joins the
// container's namespaces and cgroup, with the container's capabilities,
// seccomp profile and no_new_privs) and returns its exit code (128+n if
// signal n killed it). Signals received by this process are forwarded to
// it; if ctx is cancelled it is killed. A container that is not running
// gives errdefs.ErrFailedPrecondition.
func (m *Manager) Exec(ctx context.Context, ref string, o ExecOptions, stdio IO) (int, error) {
	r, err := m.resolve(ctx, ref)
	if err != nil {
		return 0, err
	}
	notRunning := fmt.Errorf("container %q is %s, not running: exec needs a running container (see 'sigil ps -a'): %w", r.Name, r.Status, errdefs.ErrFailedPrecondition)
	if r.Status != StatusRunning {
		return 0, notRunning
	}
	log := m.logger.With("container_id", r.ID, "pod_id", r.PodID)

	b, err := os.ReadFile(m.specPath(r.ID))
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: read its runtime spec: %w", r.Name, err)
	}
	var base specs.Spec
	if err := json.Unmarshal(b, &base); err != nil {
		return 0, fmt.Errorf("exec in container %s: %s is corrupt: %w", r.Name, m.specPath(r.ID), err)
	}
	p, err := spec.ExecProcess(base.Process, m.rootfsDir(r.ID), spec.ProcessOptions{
		Args: o.Args, Env: o.Env, Tty: o.Tty, User: o.User, Cwd: o.Cwd,
	})
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", r.Name, err)
	}
	lc, err := libcontainer.Load(m.libcontainerRoot(), r.ID)
	if errors.Is(err, libcontainer.ErrNotExist) {
		return 0, notRunning
	}
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", r.Name, err)
	}

	sigs := make(chan os.Signal, 128)
	if !o.IgnoreSignals {
		signal.Notify(sigs, forwardedSignals()...)
		defer signal.Stop(sigs)
	}

	proc := newProcess(p, false)
	s := streams{out: stdio.Stdout, err: stdio.Stderr, tty: o.Tty}
	if o.Stdin {
		s.in = stdio.Stdin
	}
	pio, err := newProcIO(proc, s)
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", r.Name, err)
	}
	defer pio.close(context.WithoutCancel(ctx))
	log.DebugContext(ctx, "exec in container", "args", o.Args)
	if err := launch(func() error { return lc.Run(proc) }); err != nil {
		if errors.Is(err, libcontainer.ErrNotRunning) {
			return 0, notRunning
		}
		return 0, fmt.Errorf("exec in container %s: %w", r.Name, explainStartError(err, o.Args))
	}
	if err := pio.postStart(ctx); err != nil {
		_ = proc.Signal(unix.SIGKILL)
		_, _ = proc.Wait()
		return 0, fmt.Errorf("exec in container %s: %w", r.Name, err)
	}
	if o.Tty && o.Resize != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case sz, ok := <-o.Resize:
					if !ok {
						return
					}
					pio.setSize(sz)
				case <-done:
					return
				}
			}
		}()
	}
	ps, _ := forward(ctx, proc, pio, sigs, func() { _ = proc.Signal(unix.SIGKILL) }, log)
	pio.close(context.WithoutCancel(ctx))
	code := exitCode(ps)
	log.DebugContext(ctx, "exec finished", "exit_code", code)
	return code, nil
}
