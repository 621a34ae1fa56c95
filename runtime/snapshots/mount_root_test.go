package snapshots_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sigil-project/sigil/runtime/mount"
)

// requireRoot skips a test that needs root, saying why.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("%s: needs root; run the tests as root to cover it", why)
	}
}

// TestPrepareMountsOverlay mounts what Prepare returns and checks that the
// kernel sees the layers in the right order: the top layer's copy of a
// shared file wins, files of both layers are visible, and writes go to the
// upper dir only.
func TestPrepareMountsOverlay(t *testing.T) {
	requireRoot(t, "mounting overlayfs (CAP_SYS_ADMIN)")
	t.Parallel()
	ctx := context.Background()
	s, root := newSnapshotter(t)
	dumpOnFailure(t, root)
	chain := commitChain(t, s, 2) // layer0: layer0, shared=0; layer1: layer1, shared=1

	m, err := s.Prepare(ctx, "mounted", chain)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Mount(target); err != nil {
		t.Fatalf("mounting Prepare's overlay: %v", err)
	}
	t.Cleanup(func() { mount.Unmount(target) })

	for name, want := range map[string]string{"layer0": "0", "layer1": "1", "shared": "1"} {
		if b, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(b) != want {
			t.Errorf("merged %s = %q, %v; want %q", name, b, err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(target, "shared"), []byte("written"), 0o644); err != nil {
		t.Fatal(err)
	}
	upper := filepath.Join(root, "active", "mounted", "upper")
	if b, err := os.ReadFile(filepath.Join(upper, "shared")); err != nil || string(b) != "written" {
		t.Errorf("upper/shared after a write through the mount = %q, %v; want %q", b, err, "written")
	}
	for i, c := range chain {
		lower := filepath.Join(root, "committed", c.Encoded(), "fs", "shared")
		if b, err := os.ReadFile(lower); err != nil || string(b) != []string{"0", "1"}[i] {
			t.Errorf("lower %d shared after a write through the mount = %q, %v; want it unchanged", i, b, err)
		}
	}

	if err := mount.Unmount(target); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "layer1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target after Unmount: layer1 %v, want the mount gone", err)
	}
	if err := s.Remove(ctx, "mounted"); err != nil {
		t.Errorf("Remove after Unmount = %v", err)
	}
}
