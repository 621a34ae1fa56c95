package mount_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-project/sigil/runtime/mount"
)

// A bind mount made read-only, nosuid and nodev is so (the kernel applies
// those flags only on a remount).
func TestBindMountFlags(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root (CAP_SYS_ADMIN)")
	}
	src, target := t.TempDir(), t.TempDir()
	m := mount.Mount{Type: "bind", Source: src, Options: []string{"bind", "ro", "nosuid", "nodev"}}
	if err := m.Mount(target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mount.Unmount(target) })
	if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o644); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("writing through a read-only bind mount: %v, want a read-only file system error", err)
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == target {
			for _, want := range []string{"ro", "nosuid", "nodev"} {
				if !strings.Contains(","+f[5]+",", ","+want+",") {
					t.Errorf("bind mount options %s lack %s", f[5], want)
				}
			}
			return
		}
	}
	t.Errorf("%s is not in mountinfo", target)
}
