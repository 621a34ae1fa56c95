package pod

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
)

// PinPID pins the PID namespace of a process that is PID 1 of its own,
// refuses the host's and a second pin, and Remove unpins it.
func TestPinPID(t *testing.T) {
	requireRoot(t)
	ctx := t.Context()
	state := t.TempDir()
	p, err := Create(ctx, state, Config{ID: "pinpid", Network: NetworkHost, HostIPC: true, HostUTS: true}, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Remove(ctx) })

	if err := p.PinPID(ctx, os.Getpid()); !errdefs.IsInvalidArgument(err) {
		t.Errorf("PinPID(a process of the host's PID namespace) = %v, want InvalidArgument", err)
	}
	infra := exec.Command("sleep", "60")
	infra.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	if err := infra.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = infra.Process.Kill(); _ = infra.Wait() })
	if err := p.PinPID(ctx, infra.Process.Pid); err != nil {
		t.Fatalf("PinPID = %v", err)
	}
	loaded, err := Load(ctx, state, "pinpid")
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Namespaces.PID == "" || nsInode(t, loaded.Namespaces.PID) != nsInode(t, "/proc/"+strconv.Itoa(infra.Process.Pid)+"/ns/pid") {
		t.Errorf("pinned PID namespace %q is not the process's", loaded.Namespaces.PID)
	}
	if err := p.PinPID(ctx, infra.Process.Pid); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second PinPID = %v, want AlreadyExists", err)
	}
	if err := loaded.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, state); len(m) > 0 {
		t.Errorf("still mounted after Remove: %v", m)
	}
}
