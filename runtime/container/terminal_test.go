package container

import (
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// TestRunTerminal runs a -it container on a real terminal (a pty pair
// made here): the terminal is put in raw mode while the container runs
// and restored after, the container's terminal has the caller's size, and
// follows it on SIGWINCH.
func TestRunTerminal(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	if err := master.Resize(console.WinSize{Height: 40, Width: 100}); err != nil {
		t.Fatal(err)
	}
	var screen syncBuffer
	go func() { _, _ = io.Copy(&screen, master) }()

	o := e.opts(t, "sh", "-c", `stty size; trap 'stty size' WINCH; echo ready; while true; do sleep 0.1; done`)
	o.Run.Tty = true
	o.Stdin = true
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan ExitStatus, 1)
	go func() {
		st, err := e.m.Run(ctx, o, IO{Stdin: slave, Stdout: slave, Stderr: slave})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- st
	}()
	if !eventually(t, 10*time.Second, func() bool { return strings.Contains(screen.String(), "ready") }) {
		t.Fatalf("screen = %q", screen.String())
	}
	if !strings.Contains(screen.String(), "40 100") {
		t.Errorf("initial size: screen = %q, want 40 100", screen.String())
	}
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&(unix.ICANON|unix.ECHO) != 0 {
		t.Errorf("the caller's terminal is not in raw mode while the container runs (lflag %#x)", tio.Lflag)
	}

	if err := master.Resize(console.WinSize{Height: 50, Width: 120}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	if !eventually(t, 10*time.Second, func() bool { return strings.Contains(screen.String(), "50 120") }) {
		t.Errorf("after SIGWINCH: screen = %q, want 50 120", screen.String())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
	tio, err = unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&unix.ICANON == 0 {
		t.Errorf("the caller's terminal was not restored (lflag %#x)", tio.Lflag)
	}

	// -t without -i: the size still comes from the caller's terminal.
	o = e.opts(t, "stty", "size")
	o.Run.Tty = true
	before := len(screen.String())
	if _, err := e.m.Run(t.Context(), o, IO{Stdout: slave}); err != nil {
		t.Fatal(err)
	}
	if !eventually(t, 5*time.Second, func() bool { return strings.Contains(screen.String()[before:], "50 120") }) {
		t.Errorf("-t without -i: screen = %q, want the terminal's size 50 120", screen.String()[before:])
	}
}

// TestRunForwardsSignals sends SIGUSR1 to this process while a container
// runs in the foreground: it reaches the container.
func TestRunForwardsSignals(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	o := e.opts(t, "sh", "-c", `trap "echo got USR1; exit 5" USR1; echo ready; while true; do sleep 0.1; done`)
	var out syncBuffer
	done := make(chan ExitStatus, 1)
	go func() {
		st, err := e.m.Run(t.Context(), o, IO{Stdout: &out})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- st
	}()
	if !eventually(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "ready") }) {
		t.Fatalf("output = %q", out.String())
	}
	// Run has signal.Notify in place for SIGUSR1, so this does not kill
	// the test binary.
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-done:
		if st.Code != 5 || out.String() != "ready\ngot USR1\n" {
			t.Errorf("status %+v, output %q; want 5 and the trap's output", st, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the signal did not reach the container")
	}
}

// TestDetachedInteractive: -dit and -di containers keep running with
// their stdin open and unattached, as docker's do.
func TestDetachedInteractive(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	for _, tty := range []bool{true, false} {
		o := e.opts(t, "sh")
		o.Stdin = true
		o.Run.Tty = tty
		id, err := e.m.Start(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if info, err := e.m.Inspect(ctx, id); err != nil || !info.Running() {
			t.Errorf("tty=%v: a shell with stdin open exited: %+v, %v", tty, info, err)
			continue
		}
		var out syncBuffer
		if code, err := e.m.Exec(ctx, id, ExecOptions{Args: []string{"echo", "still here"}}, IO{Stdout: &out}); err != nil || code != 0 || out.String() != "still here\n" {
			t.Errorf("tty=%v: exec = %d, %v, %q", tty, code, err, out.String())
		}
		if err := e.m.Stop(ctx, id, 200*time.Millisecond); err != nil {
			t.Errorf("tty=%v: Stop: %v", tty, err)
		}
	}
	// Without -i, stdin is /dev/null: the same shell ends at once.
	id, err := e.m.Start(ctx, e.opts(t, "sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !eventually(t, 5*time.Second, func() bool {
		info, err := e.m.Inspect(ctx, id)
		return err == nil && info.Status == StatusExited && info.ExitCode == 0
	}) {
		t.Error("sh without -i did not exit")
	}
}
