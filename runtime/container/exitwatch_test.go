package container

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The process events connector tells the exit code, or the signal, of a
// process: here children of ours, which the watch does not know.
func TestExitWatch(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		args   []string
		kill   bool
		code   int
		signal syscall.Signal
	}{
		{args: []string{"sh", "-c", "sleep 0.2; exit 3"}, code: 3},
		{args: []string{"sleep", "10"}, kill: true, signal: syscall.SIGKILL},
	} {
		w, err := watchExits()
		if err != nil {
			t.Fatalf("watchExits: %v", err)
		}
		cmd := exec.Command(tc.args[0], tc.args[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if tc.kill {
			_ = cmd.Process.Kill()
		}
		ws, ok := w.exitStatus(cmd.Process.Pid, 5*time.Second)
		_ = cmd.Wait()
		w.close()
		switch {
		case !ok:
			t.Errorf("%v: no exit heard", tc.args)
		case tc.kill && (!ws.Signaled() || ws.Signal() != tc.signal):
			t.Errorf("%v: status %#x, want killed by %v", tc.args, uint32(ws), tc.signal)
		case !tc.kill && (!ws.Exited() || ws.ExitStatus() != tc.code):
			t.Errorf("%v: status %#x, want exit %d", tc.args, uint32(ws), tc.code)
		}
	}
}

// Two watches at once, as two stops of pods running at once open: each
// gets a port of its own and hears its process.
func TestExitWatchesAtOnce(t *testing.T) {
	requireRoot(t)
	a, err := watchExits()
	if err != nil {
		t.Fatalf("first watch: %v", err)
	}
	defer a.close()
	b, err := watchExits()
	if err != nil {
		t.Fatalf("second watch while the first is open: %v", err)
	}
	defer b.close()
	cmd := exec.Command("sh", "-c", "exit 5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Wait()
	for name, w := range map[string]*exitWatch{"first": a, "second": b} {
		if ws, ok := w.exitStatus(pid, 5*time.Second); !ok || ws.ExitStatus() != 5 {
			t.Errorf("%s watch: status %#x, heard %v; want exit 5", name, uint32(ws), ok)
		}
	}
}
