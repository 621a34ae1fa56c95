package snapshots

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/sigil-project/sigil/runtime/lockfile"
)

func TestCleanTmpSparesUnpacksInProgress(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	busy := digest.FromString("busy").Encoded()
	dead := digest.FromString("dead").Encoded()
	for _, name := range []string{busy + "-1", dead + "-2", "del-" + dead, "not-a-digest"} {
		if err := os.MkdirAll(filepath.Join(s.root, "tmp", name, "fs"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err := lockfile.Lock(ctx, filepath.Join(s.root, "locks", busy+".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := s.CleanTmp(ctx); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.root, "tmp"))
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{busy + "-1", "not-a-digest"}
	if len(left) != len(want) || left[0] != want[0] || left[1] != want[1] {
		t.Errorf("CleanTmp left %q, want %q (the locked unpack and the unknown entry)", left, want)
	}
}
