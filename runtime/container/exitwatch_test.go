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
