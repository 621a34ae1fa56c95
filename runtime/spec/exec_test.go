package spec

import (
	"errors"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestExecProcess(t *testing.T) {
	t.Parallel()
	rootfs := writeRootfs(t)
	base, err := Generate(Options{ID: testID, Rootfs: rootfs, Image: ocispec.ImageConfig{Cmd: []string{"sleep", "1000"}, Env: []string{"A=1"}, WorkingDir: "/srv"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ExecProcess(base.Process, rootfs, ProcessOptions{Args: []string{"id"}, Env: []string{"A=2", "B=3"}, Tty: true, User: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Args, []string{"id"}) || !p.Terminal || p.Cwd != "/srv" {
		t.Errorf("process = args %q terminal %v cwd %q", p.Args, p.Terminal, p.Cwd)
	}
	if p.User.UID != 1000 || p.User.GID != 1000 {
		t.Errorf("user = %+v, want 1000:1000", p.User)
	}
	for k, want := range map[string]string{"A": "2", "B": "3", "TERM": "xterm", "HOME": "/home/app"} {
		if got, _ := envIn(p.Env, k); got != want {
			t.Errorf("env %s = %q, want %q", k, got, want)
		}
	}
	if !slices.Equal(p.Capabilities.Bounding, base.Process.Capabilities.Bounding) || !p.NoNewPrivileges {
		t.Errorf("exec process lost the container's capabilities or no_new_privs")
	}
	// The base process is not modified.
	if base.Process.Terminal || base.Process.Args[0] != "sleep" || base.Process.User.UID != 0 {
		t.Errorf("base process modified: %+v", base.Process)
	}
	if _, err := ExecProcess(base.Process, rootfs, ProcessOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no args: %v", err)
	}
	if _, err := ExecProcess(base.Process, rootfs, ProcessOptions{Args: []string{"x"}, Cwd: "rel"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("relative cwd: %v", err)
	}
	if _, err := ExecProcess(base.Process, rootfs, ProcessOptions{Args: []string{"x"}, User: "nobody-here"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
}
