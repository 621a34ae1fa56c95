package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"
)

// forwardedSignals are passed on to the container's process by whoever
// supervises it; SIGWINCH resizes its terminal instead.
func forwardedSignals() []os.Signal {
	return []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}
}

// started is a container whose init this process started and waits for.
type started struct {
	r    *record
	lc   *libcontainer.Container
	proc *libcontainer.Process
	pio  *procIO
	log  *slog.Logger
}

// Run creates and starts a container in the foreground, as `runc run`
// (and `docker run` without -d) do: the caller's IO is connected to it
// (stdin only with CreateOptions.Stdin; a terminal with Run.Tty), signals
// received by this process are forwarded to it (SIGWINCH resizes its
// terminal), and Run returns when it exits, with its exit code.
//
// If ctx is cancelled while the container runs, it is sent its stop
// signal (the image's StopSignal, or SIGTERM) and, after the stop timeout,
// SIGKILL. If this process dies, the kernel kills the container's init
// (parent-death signal).
//
// An error means the container could not be created or started; it wraps
// an errdefs class (ErrInvalidArgument for bad options, ErrAlreadyExists
// for a name in use, ErrNotFound for an unknown user...).
func (m *Manager) Run(ctx context.Context, opts CreateOptions, stdio IO) (ExitStatus, error) {
	r, err := m.prepare(ctx, opts, false, self())
	if err != nil {
		return ExitStatus{}, err
	}
	log := m.logger.With("container_id", r.ID, "pod_id", r.PodID)
	log.InfoContext(ctx, "running container", "name", r.Name, "image", r.ImageRef)

	// Caught from before the start, so that none is lost.
	sigs := make(chan os.Signal, 128)
	signal.Notify(sigs, forwardedSignals()...)
	defer signal.Stop(sigs)

	// The output also goes to the container's log, as a detached
	// container's does, so that 'sigil logs' works afterwards.
	cl, err := openCRILog(ctx, r.LogPath, log)
	if err != nil {
		err = fmt.Errorf("start container %s: open its log: %w", r.Name, err)
		m.startFailed(ctx, r, err, log)
		return ExitStatus{}, err
	}
	defer cl.current().Close()
	outLog, errLog := cl.stream("stdout"), cl.stream("stderr")
	s := streams{out: tee(stdio.Stdout, outLog), err: tee(stdio.Stderr, errLog), terminal: stdio.Stdout}
	if opts.Stdin {
		s.in = stdio.Stdin
	}
	st, err := m.start(ctx, r, s, log)
	if err != nil {
		m.startFailed(ctx, r, err, log)
		return ExitStatus{}, err
	}
	status := st.wait(ctx, sigs, m.stopTimeout)
	st.pio.close(context.WithoutCancel(ctx))
	outLog.Flush()
	errLog.Flush()
	return m.finish(context.WithoutCancel(ctx), st, status), nil
}

// teeWriter copies a stream to the caller and to the log. It never fails:
// if the caller's side fails (a closed pipe), the output keeps going to
// the log, so the container is never blocked on a full pipe.
type teeWriter struct {
	w      io.Writer
	log    io.Writer
	failed bool
}

func tee(w, log io.Writer) io.Writer {
	if w == nil {
		return log
	}
	return &teeWriter{w: w, log: log}
}

func (t *teeWriter) Write(p []byte) (int, error) {
	_, _ = t.log.Write(p)
	if !t.failed {
		if _, err := t.w.Write(p); err != nil {
			t.failed = true
		}
	}
	return len(p), nil
}

// start sets the container up and starts its init connected to s. On
// success the record is running and owned by this process.
func (m *Manager) start(ctx context.Context, r *record, s streams, log *slog.Logger) (_ *started, retErr error) {
	lc, sp, err := m.setup(ctx, r, log)
	if err != nil {
		return nil, fmt.Errorf("start container %s: %w", r.Name, err)
	}
	proc := newProcess(sp.Process, true)
	s.tty = sp.Process.Terminal
	var pio *procIO
	defer func() {
		if retErr == nil {
			return
		}
		if pio != nil {
			pio.close(context.WithoutCancel(ctx))
		}
		if err := m.teardown(context.WithoutCancel(ctx), r, log); err != nil {
			log.WarnContext(ctx, "cleaning up after a failed start", "error", err)
		}
	}()
	pio, err = newProcIO(proc, s)
	if err != nil {
		return nil, fmt.Errorf("start container %s: %w", r.Name, err)
	}
	if err := launch(func() error { return lc.Run(proc) }); err != nil {
		return nil, fmt.Errorf("start container %s: %w", r.Name, explainStartError(err, sp.Process.Args))
	}
	kill := func() {
		_ = proc.Signal(unix.SIGKILL)
		_, _ = proc.Wait()
	}
	if err := pio.postStart(ctx); err != nil {
		kill()
		return nil, fmt.Errorf("start container %s: %w", r.Name, err)
	}
	pid, _ := proc.Pid()
	updated, err := m.update(ctx, r.ID, func(cur *record) {
		cur.Status = StatusRunning
		cur.Pid = pid
		cur.StartedAt = time.Now().UTC()
		cur.Command = sp.Process.Args
		cur.Owner = self()
		cur.Error = ""
	})
	if err != nil {
		kill()
		return nil, fmt.Errorf("start container %s: %w", r.Name, err)
	}
	log.InfoContext(ctx, "started container", "pid", pid)
	return &started{r: updated, lc: lc, proc: proc, pio: pio, log: log}, nil
}

// explainStartError adds the likely fix to libcontainer's start errors.
func explainStartError(err error, args []string) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory") && strings.Contains(msg, "exec"):
		return fmt.Errorf("%w: is %q in the image (and on its PATH)?: %w", err, args[0], errdefs.ErrNotFound)
	case strings.Contains(msg, "permission denied") && strings.Contains(msg, "exec"):
		return fmt.Errorf("%w: %q is not executable by the container's user: %w", err, args[0], errdefs.ErrPermissionDenied)
	}
	return err
}

// startFailed records why a container did not start (it stays created),
// or removes it when it was to be removed anyway.
func (m *Manager) startFailed(ctx context.Context, r *record, cause error, log *slog.Logger) {
	ctx = context.WithoutCancel(ctx)
	log.InfoContext(ctx, "container failed to start", "error", cause)
	if r.AutoRemove {
		if err := m.removeFiles(ctx, r, log); err != nil {
			log.WarnContext(ctx, "removing a container that failed to start", "error", err)
		}
		return
	}
	_, _ = m.update(ctx, r.ID, func(cur *record) {
		cur.Error = cause.Error()
		cur.Owner = owner{}
		cur.Pid = 0
	})
}

// wait waits for the init to exit, forwarding sigs to it. When ctx is done
// the container is sent its stop signal, then SIGKILL after stopTimeout.
func (st *started) wait(ctx context.Context, sigs <-chan os.Signal, stopTimeout time.Duration) ExitStatus {
	stopSig := stopSignal(st.r.Image.StopSignal)
	ps, err := forward(ctx, st.proc, st.pio, sigs, func() {
		st.log.InfoContext(ctx, "stopping container", "signal", unix.SignalName(stopSig), "reason", context.Cause(ctx))
		_ = st.proc.Signal(stopSig)
		time.AfterFunc(stopTimeout, func() { _ = st.proc.Signal(unix.SIGKILL) })
	}, st.log)
	if ps == nil {
		st.log.WarnContext(ctx, "waiting for the container's init", "error", err)
	}
	return ExitStatus{Code: exitCode(ps)}
}

// forward waits for proc to exit while passing sigs on to it; on the
// first cancellation of ctx it calls stop.
func forward(ctx context.Context, proc *libcontainer.Process, pio *procIO, sigs <-chan os.Signal, stop func(), log *slog.Logger) (*os.ProcessState, error) {
	type result struct {
		ps  *os.ProcessState
		err error
	}
	waitc := make(chan result, 1)
	go func() {
		ps, err := proc.Wait()
		waitc <- result{ps, err}
	}()
	done := ctx.Done()
	for {
		select {
		case w := <-waitc:
			return w.ps, w.err
		case s := <-sigs:
			if s == unix.SIGWINCH {
				pio.resize()
				continue
			}
			log.DebugContext(ctx, "forwarding signal", "signal", s.String())
			if err := proc.Signal(s); err != nil {
				log.DebugContext(ctx, "forwarding signal", "signal", s.String(), "error", err)
			}
		case <-done:
			done = nil
			stop()
		}
	}
}

// exitCode is the process's exit code, or 128+n if signal n killed it.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return ExitCodeUnknown
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return utils.ExitStatus(unix.WaitStatus(ws))
	}
	return ps.ExitCode()
}

// finish records the exit of st's init, then releases the container's
// resources, and removes it when it was created with AutoRemove.
func (m *Manager) finish(ctx context.Context, st *started, status ExitStatus) ExitStatus {
	r, log := st.r, st.log
	oom, err := oomKilled(st.lc)
	if err != nil {
		log.DebugContext(ctx, "reading the OOM kill count", "error", err)
	}
	status.OOMKilled = oom
	if err := m.teardown(ctx, r, log); err != nil {
		log.WarnContext(ctx, "releasing the container's resources", "error", err)
	}
	log.InfoContext(ctx, "container exited", "exit_code", status.Code, "oom_killed", status.OOMKilled)
	if r.AutoRemove {
		if err := m.removeFiles(ctx, r, log); err != nil {
			log.WarnContext(ctx, "removing the container (--rm)", "error", err)
		}
		return status
	}
	_, err = m.update(ctx, r.ID, func(cur *record) {
		cur.Status = StatusExited
		cur.ExitCode = status.Code
		cur.OOMKilled = status.OOMKilled
		cur.FinishedAt = time.Now().UTC()
		cur.Pid = 0
		cur.Owner = owner{}
	})
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		log.WarnContext(ctx, "recording the container's exit", "error", err)
	}
	return status
}

// stopSignal parses an image's StopSignal ("SIGTERM", "TERM", "15"),
// defaulting to SIGTERM.
func stopSignal(s string) unix.Signal {
	if s == "" {
		return unix.SIGTERM
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n)
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig
	}
	return unix.SIGTERM
}
