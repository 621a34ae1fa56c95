package container

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// An unsupervised container (CreateOptions.Unsupervised) is started the
// way `runc run -d` starts one: the process that starts it (the monitor
// command, re-executed as for any detached container) sets it up, starts
// its init with stdio on /dev/null and no parent-death signal, records
// it and exits. The init is then reparented (to the host's init, or the
// nearest child subreaper), which reaps it when it exits; nothing of
// sigil stays behind. It is meant for the CRI's pause, a process that
// needs no supervision: it writes nothing, reads nothing, and is only
// ever signalled.
//
// It lives here rather than in a small helper of runtime/pod because
// everything but the supervision is a container's: the root filesystem
// mount, the spec (capabilities, seccomp, user, read-only root), the
// cgroup under the pod's, libcontainer's state, the record that a
// restarted server reads, Stop and Remove. Only liveness differs: with
// no monitor to record the exit, the record holds the init's PID and
// its start time (field 22 of /proc/<pid>/stat, which tells a reused PID
// apart), and refresh takes a record whose process is gone, or a zombie,
// for exited, with the exit code unknown (only the reaper sees it), and
// releases the container's resources, as it does after a monitor that
// died. Stop, which expects the exit, hears its code from the kernel
// (exitWatch) and records it.

// unsupervisedInitArgv0 is the argv[0] that the starter of an
// unsupervised container gives itself before starting its init.
// libcontainer re-executes the starter's binary as the container's init
// with the starter's argv[0] (and an environment of its own), so this is
// how Reexec, in the init, knows not to set the parent-death signal that
// every supervised container's init gets.
const unsupervisedInitArgv0 = "sigil-init-unsupervised"

// startUnsupervised starts r's init, with no parent-death signal and
// stdio on /dev/null, and records it running, owned by no process.
func (m *Manager) startUnsupervised(ctx context.Context, r *record, log *slog.Logger) (retErr error) {
	lc, sp, err := m.setup(ctx, r, log)
	if err != nil {
		return fmt.Errorf("start container %s: %w", r.Name, err)
	}
	defer func() {
		if retErr != nil {
			if err := m.teardown(context.WithoutCancel(ctx), r, log); err != nil {
				log.WarnContext(ctx, "cleaning up after a failed start", "error", err)
			}
		}
	}()
	if sp.Process.Terminal || r.Stdin {
		return fmt.Errorf("start container %s: an unsupervised container has no terminal and no stdin: drop them, or let a monitor supervise it", r.Name)
	}
	// No Stdin, Stdout or Stderr: libcontainer's init gets /dev/null,
	// and the container's process inherits it.
	proc := newProcess(sp.Process, true)
	os.Args[0] = unsupervisedInitArgv0 // this process starts nothing else
	if err := launch(func() error { return lc.Run(proc) }); err != nil {
		return fmt.Errorf("start container %s: %w", r.Name, explainStartError(err, sp.Process.Args))
	}
	pid, err := proc.Pid()
	if err != nil {
		return fmt.Errorf("start container %s: %w", r.Name, err)
	}
	startTime, err := processStartTime(pid)
	if err != nil {
		return fmt.Errorf("start container %s: its init (pid %d) exited at once: %w", r.Name, pid, err)
	}
	if _, err := m.update(ctx, r.ID, func(cur *record) {
		cur.Status = StatusRunning
		cur.Pid = pid
		cur.PidStartTime = startTime
		cur.StartedAt = time.Now().UTC()
		cur.Command = sp.Process.Args
		cur.Owner = owner{}
		cur.Error = ""
	}); err != nil {
		return fmt.Errorf("start container %s: %w", r.Name, err)
	}
	log.InfoContext(ctx, "started unsupervised container", "pid", pid)
	return nil
}

// initAlive reports whether the init of an unsupervised running
// container still runs: its PID names a process that started when it
// did and is not a zombie.
func (r *record) initAlive() bool {
	if r.Pid <= 0 {
		return false
	}
	st, err := processStartTime(r.Pid)
	return err == nil && st == r.PidStartTime
}
