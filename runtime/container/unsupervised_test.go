package container

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An unsupervised container runs on its own: no monitor stays, its init
// is not our child, has no parent-death signal (it outlives its starter)
// and has /dev/null for stdio. A second Manager (a restarted process)
// sees it running, stops it by its PID, records its exit code, and its
// death releases its mounts; one killed behind our back is found exited,
// code unknown.
func TestUnsupervised(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	o := e.opts(t, "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done")
	o.Unsupervised = true
	id, err := e.m.Start(ctx, o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	info, err := e.m.Inspect(ctx, id)
	if err != nil || !info.Running() || !info.Unsupervised || info.PidStartTime == 0 {
		t.Fatalf("Inspect = %+v, %v; want running, unsupervised, with a start time", info, err)
	}
	rec, err := e.m.readRecord(id)
	if err != nil || rec.Owner.Pid != 0 {
		t.Fatalf("record owner = %+v, %v; want none", rec.Owner, err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", info.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if ppid := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))[1]; ppid == fmt.Sprint(os.Getpid()) {
		t.Errorf("the init's parent is this process: want it reparented")
	}
	for fd := 0; fd <= 2; fd++ {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", info.Pid, fd)); err != nil || l != "/dev/null" {
			t.Errorf("fd %d = %q, %v; want /dev/null", fd, l, err)
		}
	}

	other, err := New(e.m.root, e.m.state, WithExecutable(e.m.executable))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Stop(ctx, id, 5*time.Second); err != nil {
		t.Fatalf("Stop from another Manager: %v", err)
	}
	after, err := other.Inspect(ctx, id)
	if err != nil || after.Status != StatusExited || after.ExitCode != 0 {
		t.Errorf("after Stop = %s code %d (%s), %v; want exited 0 (the trap's code, heard from the kernel)", after.Status, after.ExitCode, after.Error, err)
	}
	if m := mountsUnder(t, e.m.stateDir(id)); len(m) > 0 {
		t.Errorf("still mounted after the stop: %v", m)
	}
	if err := other.Remove(ctx, id, false); err != nil {
		t.Fatalf("Remove: %v", err)
	}

	// Killed behind our back.
	o = e.opts(t, "sleep", "3600")
	o.Unsupervised = true
	id, err = e.m.Start(ctx, o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	info, _ = e.m.Inspect(ctx, id)
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !eventually(t, 5*time.Second, func() bool {
		i, err := e.m.Inspect(ctx, id)
		return err == nil && i.Status == StatusExited && i.ExitCode == ExitCodeUnknown
	}) {
		i, err := e.m.Inspect(ctx, id)
		t.Errorf("after SIGKILL = %+v, %v; want exited, code unknown", i, err)
	}
	if m := mountsUnder(t, e.m.stateDir(id)); len(m) > 0 {
		t.Errorf("still mounted after the init died: %v", m)
	}
}
