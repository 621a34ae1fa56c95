package container

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"
)

// Stop stops a running container: its stop signal (the image's
// StopSignal, or SIGTERM), then SIGKILL if it has not exited after
// timeout. It returns once the container's exit is recorded. Stopping a
// container that is not running succeeds and does nothing, so scripts can
// stop unconditionally.
func (m *Manager) Stop(ctx context.Context, ref string, timeout time.Duration) error {
	r, err := m.resolve(ctx, ref)
	if err != nil {
		return err
	}
	log := m.logger.With("container_id", r.ID, "pod_id", r.PodID)
	if r.Status != StatusRunning {
		log.DebugContext(ctx, "container is not running: nothing to stop", "status", r.Status)
		return nil
	}
	sig := stopSignal(r.Image.StopSignal)
	log.InfoContext(ctx, "stopping container", "signal", unix.SignalName(sig), "timeout", timeout)
	// The kernel drops a signal sent to a PID namespace's init that has no
	// handler for it. A container stopped right after its start may not
	// have installed its handler yet: give it a moment to (not when it is
	// to be killed at once anyway).
	if timeout > 0 {
		waitForHandler(ctx, r.Pid, sig, time.Second)
	}
	var w *exitWatch
	if r.Unsupervised {
		// Nobody waits for its init: hear its exit code from the kernel.
		if w, err = watchExits(); err != nil {
			log.DebugContext(ctx, "its exit code will be recorded as unknown", "error", err)
		}
		defer w.close()
	}
	if err := m.signal(r, sig); err != nil {
		return fmt.Errorf("stop container %s: %w", r.Name, err)
	}
	exited, err := m.waitExited(ctx, r.ID, timeout)
	if err != nil {
		return fmt.Errorf("stop container %s: %w", r.Name, err)
	}
	how := "it exited on " + unix.SignalName(sig)
	if !exited {
		how = fmt.Sprintf("it was killed with SIGKILL, still running %v after %s", timeout, unix.SignalName(sig))
		log.InfoContext(ctx, "container did not exit in time: killing it", "timeout", timeout)
		if err := m.signal(r, unix.SIGKILL); err != nil {
			return fmt.Errorf("stop container %s: %w", r.Name, err)
		}
		if exited, err = m.waitExited(ctx, r.ID, 10*time.Second); err != nil {
			return fmt.Errorf("stop container %s: %w", r.Name, err)
		}
		if !exited {
			return fmt.Errorf("container %q was sent SIGKILL but its exit was not recorded within 10s: check 'sigil ps' and the monitor log %s", r.Name, m.monitorLog(r.ID))
		}
	}
	if r.Unsupervised {
		m.recordStopped(ctx, r, w, how, log)
	}
	log.InfoContext(ctx, "stopped container")
	return nil
}

// recordStopped records the exit code of an unsupervised container that
// Stop ended, as heard by w, over the unknown one that refresh recorded
// when it found the init gone; when it was not heard, the record's
// Error says how Stop ended it, which is all that is known.
func (m *Manager) recordStopped(ctx context.Context, r *record, w *exitWatch, how string, log *slog.Logger) {
	code := -1
	if w != nil {
		// The event is sent as the process exits, before refresh could
		// see it gone: it is waiting on the socket already.
		if ws, ok := w.exitStatus(r.Pid, 250*time.Millisecond); ok {
			code = utils.ExitStatus(ws)
		}
	}
	_, err := m.update(ctx, r.ID, func(cur *record) {
		if cur.Status != StatusExited || cur.ExitCode != ExitCodeUnknown || cur.StartedAt != r.StartedAt {
			return
		}
		if code >= 0 {
			cur.ExitCode, cur.Error = code, ""
		} else {
			cur.Error = "stopped: " + how + "; the container was not supervised and its exit was not heard, so its exit code is unknown"
		}
	})
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		log.WarnContext(ctx, "recording how the container was stopped", "error", err)
	}
}

// signal sends sig to the container's init. A container that is already
// gone is not an error.
func (m *Manager) signal(r *record, sig unix.Signal) error {
	lc, err := libcontainer.Load(m.libcontainerRoot(), r.ID)
	if errors.Is(err, libcontainer.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// ErrProcessDone: the process ended between libcontainer's check that
	// it runs and the signal (a SIGKILL right after the stop signal that
	// ended it): it is as stopped as it can be.
	if err := lc.Signal(sig); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// waitExited polls until the container's exit is recorded (or its record
// is gone, or its supervisor died), for at most d.
func (m *Manager) waitExited(ctx context.Context, id string, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		r, err := m.readRecord(id)
		if errors.Is(err, errdefs.ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if r, err = m.refresh(ctx, r); err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return true, nil
			}
			return false, err
		}
		if !m.active(r) {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		if err := sleepCtx(ctx, 25*time.Millisecond); err != nil {
			return false, err
		}
	}
}

// active reports whether a container is running or being started.
func (m *Manager) active(r *record) bool {
	return r.Status == StatusRunning || (r.Status == StatusCreated && r.Owner.alive())
}

// Remove deletes a container: its cgroup, rootfs mount, state, record and
// log, and its pod when it owns it. A running (or starting) container is
// refused with errdefs.ErrFailedPrecondition unless force is set, in
// which case it is killed first.
func (m *Manager) Remove(ctx context.Context, ref string, force bool) error {
	r, err := m.resolve(ctx, ref)
	if err != nil {
		return err
	}
	log := m.logger.With("container_id", r.ID, "pod_id", r.PodID)
	if m.active(r) {
		if !force {
			return fmt.Errorf("container %q is %s: stop it with 'sigil stop %s' or remove it with 'sigil rm --force %s': %w",
				r.Name, r.Status, r.Name, r.Name, errdefs.ErrFailedPrecondition)
		}
		log.InfoContext(ctx, "killing container to remove it")
		if err := m.signal(r, unix.SIGKILL); err != nil {
			return fmt.Errorf("remove container %s: %w", r.Name, err)
		}
		// Let the supervisor record the exit and release what it holds,
		// rather than race it.
		if _, err := m.waitExited(ctx, r.ID, 10*time.Second); err != nil {
			return fmt.Errorf("remove container %s: %w", r.Name, err)
		}
	}
	log.InfoContext(ctx, "removing container")
	if err := m.removeFiles(ctx, r, log); err != nil {
		return err
	}
	log.InfoContext(ctx, "removed container")
	return nil
}

// removeFiles releases the container's resources and deletes its state
// and record directories. The rootfs directory is removed only once empty
// and unmounted, so an image can never be deleted through it.
func (m *Manager) removeFiles(ctx context.Context, r *record, log *slog.Logger) error {
	if err := m.teardown(ctx, r, log); err != nil {
		return fmt.Errorf("remove container %s: %w", r.Name, err)
	}
	if err := os.Remove(m.rootfsDir(r.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove container %s: its rootfs directory %s: %w (is something still mounted there?)", r.Name, m.rootfsDir(r.ID), err)
	}
	if err := os.RemoveAll(m.stateDir(r.ID)); err != nil {
		return fmt.Errorf("remove container %s: %w", r.Name, err)
	}
	// The rootfs is unmounted (teardown succeeded), so the snapshot's
	// directories can go.
	for _, d := range r.OwnedDirs {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove container %s: its directory %s: %w", r.Name, d, err)
		}
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.RemoveAll(m.recordDir(r.ID)); err != nil {
		return fmt.Errorf("remove container %s: %w", r.Name, err)
	}
	return nil
}

// waitForHandler waits, for at most d, until process pid runs the
// container's own program and catches or ignores sig (SigCgt or SigIgn in
// /proc/<pid>/status). Until it has exec'd that program it is
// libcontainer's init, a Go program that catches every signal: a signal
// taken there, or pending when the exec resets the handlers, is lost to a
// PID namespace's init.
func waitForHandler(ctx context.Context, pid int, sig unix.Signal, d time.Duration) {
	if pid <= 0 {
		return
	}
	bit := uint64(1) << (uint(sig) - 1)
	deadline := time.Now().Add(d)
	for {
		// The command line first: once it is the container's, the exec
		// has reset the init's handlers, so the status read after it
		// shows the program's own.
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return
		}
		if !runtimeInit(cmdline) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(line, ":")
				if k == "State" && strings.HasPrefix(strings.TrimSpace(v), "Z") {
					return // exited: nothing to wait for
				}
				if !ok || (k != "SigCgt" && k != "SigIgn") {
					continue
				}
				if mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && mask&bit != 0 {
					return
				}
			}
		}
		if time.Now().After(deadline) || sleepCtx(ctx, 10*time.Millisecond) != nil {
			return
		}
	}
}

// runtimeInit tells whether a /proc/<pid>/cmdline is that of a process not
// yet running the container's program: libcontainer's init (its runtime's
// argv[0], then "init"), or a process in the middle of an exec, whose
// command line reads empty until the new program's is set up.
func runtimeInit(cmdline []byte) bool {
	args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	return len(cmdline) == 0 || (len(args) == 2 && args[1] == "init")
}
