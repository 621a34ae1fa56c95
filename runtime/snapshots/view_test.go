package snapshots_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/sigil-project/sigil/runtime/mount"
)

// A view is the chain's layers, read-only, mounted nosuid and nodev,
// with an empty bottom layer under a chain of one (overlayfs wants two
// lower directories without an upper one); it is listed as active (gc
// keeps its layers) until Remove.
func TestView(t *testing.T) {
	requireRoot(t, "mounting overlayfs (CAP_SYS_ADMIN)")
	t.Parallel()
	ctx := context.Background()
	s, root := newSnapshotter(t)
	dumpOnFailure(t, root)
	chain := commitChain(t, s, 3)
	for _, c := range []struct {
		key    string
		layers int
		shared string // the top layer's copy of "shared"
	}{
		{"view-three", 3, "2"},
		{"view-one", 1, "0"},
	} {
		t.Run(c.key, func(t *testing.T) {
			m, err := s.View(ctx, c.key, chain[:c.layers])
			if err != nil {
				t.Fatal(err)
			}
			opts := strings.Join(m.Options, ",")
			for _, want := range []string{"ro", "nosuid", "nodev"} {
				if !strings.Contains(","+opts+",", ","+want+",") {
					t.Errorf("View options %q lack %s", opts, want)
				}
			}
			if strings.Contains(opts, "upperdir") {
				t.Errorf("View options %q have an upper dir", opts)
			}
			target := t.TempDir()
			if err := m.Mount(target); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = mount.Unmount(target) })
			if b, err := os.ReadFile(filepath.Join(target, "shared")); err != nil || string(b) != c.shared {
				t.Errorf("shared = %q, %v; want the top layer's %q", b, err, c.shared)
			}
			if _, err := os.Stat(filepath.Join(target, "layer0")); err != nil {
				t.Errorf("the bottom layer's file: %v", err)
			}
			if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); err == nil || !strings.Contains(err.Error(), "read-only") {
				t.Errorf("writing into a view: %v, want a read-only file system error", err)
			}
			active, err := s.Active(ctx)
			if err != nil || len(active[c.key]) != c.layers {
				t.Errorf("Active()[%s] = %v, %v; want its %d layers", c.key, active[c.key], err, c.layers)
			}
			if _, err := s.View(ctx, c.key, chain[:c.layers]); !errdefs.IsAlreadyExists(err) {
				t.Errorf("second View(%s) = %v, want AlreadyExists", c.key, err)
			}
			if err := mount.Unmount(target); err != nil {
				t.Fatal(err)
			}
			if err := s.Remove(ctx, c.key); err != nil {
				t.Fatal(err)
			}
			if active, _ := s.Active(ctx); active[c.key] != nil {
				t.Errorf("view %s still active after Remove", c.key)
			}
		})
	}
	if _, err := s.View(ctx, "missing", append(chain[:1:1], digest.Digest("sha256:"+strings.Repeat("0", 64)))); !errdefs.IsNotFound(err) {
		t.Errorf("View over an unpacked chain = %v, want NotFound", err)
	}
}
