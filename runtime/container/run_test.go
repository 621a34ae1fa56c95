package container

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRunEcho(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	o := e.opts(t, "echo", "hello", "world")
	o.Name = "echo"
	stdout, stderr, st := e.run(t, o)
	if stdout != "hello world\n" || stderr != "" {
		t.Errorf("output = %q, %q; want %q, empty", stdout, stderr, "hello world\n")
	}
	if st.Code != 0 || st.OOMKilled {
		t.Errorf("status = %+v, want code 0", st)
	}
	info, err := e.m.Inspect(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != StatusExited || info.ExitCode != 0 || info.FinishedAt.Before(info.StartedAt) || info.StartedAt.IsZero() {
		t.Errorf("info = %+v", info)
	}
	if info.PodID != info.ID || !info.OwnsPod {
		t.Errorf("pod = %s (owned %v), want the container's own", info.PodID, info.OwnsPod)
	}
	// Its pod, rootfs mount and libcontainer state are gone once it exited.
	if m := mountsUnder(t, e.state); len(m) != 0 {
		t.Errorf("mounts after exit: %q", m)
	}
	for _, p := range []string{filepath.Join(e.state, "pods", info.PodID), filepath.Join(e.state, "libcontainer", info.ID)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after exit: %v", p, err)
		}
	}
}
