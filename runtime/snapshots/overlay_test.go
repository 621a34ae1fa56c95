package snapshots_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/snapshots"
)

func newSnapshotter(t *testing.T) (*snapshots.Snapshotter, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "snapshots")
	s, err := snapshots.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

// writeFiles returns an ApplyFunc that writes files (name -> body) and
// reports diffID.
func writeFiles(diffID digest.Digest, files map[string]string) snapshots.ApplyFunc {
	return func(_ context.Context, dir string) (digest.Digest, error) {
		for name, body := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", err
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				return "", err
			}
		}
		return diffID, nil
	}
}

// dirNames lists a directory, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// dumpOnFailure lists the snapshot root when the test fails.
func dumpOnFailure(t *testing.T, root string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				rel, _ := filepath.Rel(root, p)
				t.Logf("  %s %v %d", rel, fi.Mode(), fi.Size())
			}
			return nil
		})
	})
}

func TestUnpackOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newSnapshotter(t)
	dumpOnFailure(t, root)
	diffID := digest.FromString("diff")
	chainID := diffID
	var calls atomic.Int32
	apply := func(ctx context.Context, dir string) (digest.Digest, error) {
		calls.Add(1)
		return writeFiles(diffID, map[string]string{"etc/hostname": "box\n"})(ctx, dir)
	}
	if s.Has(chainID) {
		t.Fatalf("Has(%s) before Unpack = true", chainID)
	}
	for i := range 3 {
		if err := s.Unpack(ctx, chainID, apply); err != nil {
			t.Fatalf("Unpack #%d = %v", i+1, err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("apply calls for 3 Unpacks of one chain = %d, want 1", n)
	}
	if !s.Has(chainID) {
		t.Errorf("Has(%s) after Unpack = false", chainID)
	}
	dir := filepath.Join(root, "committed", chainID.Encoded())
	if b, err := os.ReadFile(filepath.Join(dir, "fs", "etc", "hostname")); err != nil || string(b) != "box\n" {
		t.Errorf("committed file = %q, %v; want %q", b, err, "box\n")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "diffid")); err != nil || string(b) != diffID.String() {
		t.Errorf("diffid file = %q, %v; want %q", b, err, diffID)
	}
	if got := dirNames(t, filepath.Join(root, "tmp")); len(got) != 0 {
		t.Errorf("tmp/ after Unpack = %q, want empty", got)
	}
	if got, err := s.Committed(ctx); err != nil || !reflect.DeepEqual(got, []digest.Digest{chainID}) {
		t.Errorf("Committed() = %v, %v; want [%s]", got, err, chainID)
	}
	if at, err := s.CommittedAt(chainID); err != nil || time.Since(at) > time.Minute {
		t.Errorf("CommittedAt(%s) = %v, %v; want about now", chainID, at, err)
	}
}

func TestUnpackConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newSnapshotter(t)
	dumpOnFailure(t, root)
	chainID := digest.FromString("shared layer")
	var calls, running, maxRunning atomic.Int32
	apply := func(ctx context.Context, dir string) (digest.Digest, error) {
		calls.Add(1)
		if n := running.Add(1); n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		defer running.Add(-1)
		time.Sleep(50 * time.Millisecond) // long enough for every goroutine to arrive
		return writeFiles(chainID, map[string]string{"file": "x"})(ctx, dir)
	}
	const workers = 8
	var start, done sync.WaitGroup
	errs := make([]error, workers)
	start.Add(1)
	for i := range workers {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			errs[i] = s.Unpack(ctx, chainID, apply)
		}()
	}
	start.Done()
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Unpack in goroutine %d = %v", i, err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("apply calls for %d concurrent Unpacks = %d, want 1", workers, n)
	}
	if m := maxRunning.Load(); m > 1 {
		t.Errorf("apply ran %d at once, want 1", m)
	}
	if !s.Has(chainID) {
		t.Errorf("Has after concurrent Unpack = false")
	}
}

func TestUnpackFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("layer is corrupt")
	tests := []struct {
		name  string
		apply snapshots.ApplyFunc
		root  bool // only root can remove a file from a read-only dir
	}{
		{"fails at once", func(context.Context, string) (digest.Digest, error) { return "", boom }, false},
		{"fails after writing files", func(ctx context.Context, dir string) (digest.Digest, error) {
			if _, err := writeFiles("", map[string]string{"bin/sh": "half", "etc/passwd": "root"})(ctx, dir); err != nil {
				return "", err
			}
			return "", boom
		}, false},
		{"fails after a read-only dir", func(ctx context.Context, dir string) (digest.Digest, error) {
			if _, err := writeFiles("", map[string]string{"ro/file": "x"})(ctx, dir); err != nil {
				return "", err
			}
			if err := os.Chmod(filepath.Join(dir, "ro"), 0o555); err != nil {
				return "", err
			}
			return "", boom
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				requireRoot(t, "removing files from a read-only directory (CAP_DAC_OVERRIDE)")
			}
			t.Parallel()
			ctx := context.Background()
			s, root := newSnapshotter(t)
			dumpOnFailure(t, root)
			chainID := digest.FromString(tc.name)
			if err := s.Unpack(ctx, chainID, tc.apply); !errors.Is(err, boom) {
				t.Fatalf("Unpack with a failing apply = %v, want %v", err, boom)
			}
			if s.Has(chainID) {
				t.Errorf("Has(%s) after a failed Unpack = true", chainID)
			}
			if got := dirNames(t, filepath.Join(root, "committed")); len(got) != 0 {
				t.Errorf("committed/ after a failed Unpack = %q, want empty", got)
			}
			if got := dirNames(t, filepath.Join(root, "tmp")); len(got) != 0 {
				t.Errorf("tmp/ after a failed Unpack = %q, want empty", got)
			}
			// A retry with a good apply commits.
			if err := s.Unpack(ctx, chainID, writeFiles(chainID, map[string]string{"ok": "1"})); err != nil || !s.Has(chainID) {
				t.Errorf("Unpack retry = %v, Has = %v; want nil, true", err, s.Has(chainID))
			}
		})
	}
}

func TestUnpackCancelledWhileWaiting(t *testing.T) {
	t.Parallel()
	s, _ := newSnapshotter(t)
	chainID := digest.FromString("slow")
	release := make(chan struct{})
	started := make(chan struct{})
	go s.Unpack(context.Background(), chainID, func(ctx context.Context, dir string) (digest.Digest, error) {
		close(started)
		<-release
		return chainID, nil
	})
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var called atomic.Bool
	err := s.Unpack(ctx, chainID, func(context.Context, string) (digest.Digest, error) { called.Store(true); return chainID, nil })
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) || called.Load() {
		t.Errorf("Unpack while another holds the lock = %v (apply called: %v), want DeadlineExceeded without apply", err, called.Load())
	}
}

// commitChain unpacks n layers, layer i holding file "layer<i>" and a
// shared file "shared" saying i, and returns their chain IDs.
func commitChain(t *testing.T, s *snapshots.Snapshotter, n int) []digest.Digest {
	t.Helper()
	var diffIDs []digest.Digest
	for i := range n {
		diffIDs = append(diffIDs, digest.FromString(fmt.Sprintf("diff%d", i)))
	}
	chain := images.ChainIDs(diffIDs)
	for i, c := range chain {
		files := map[string]string{fmt.Sprintf("layer%d", i): fmt.Sprint(i), "shared": fmt.Sprint(i)}
		if err := s.Unpack(context.Background(), c, writeFiles(diffIDs[i], files)); err != nil {
			t.Fatal(err)
		}
	}
	return chain
}

func TestPrepare(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newSnapshotter(t)
	dumpOnFailure(t, root)
	chain := commitChain(t, s, 3)

	m, err := s.Prepare(ctx, "ctr1", chain)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != "overlay" || m.Source != "overlay" {
		t.Errorf("Prepare mount type/source = %q/%q, want overlay/overlay", m.Type, m.Source)
	}
	fsDir := func(c digest.Digest) string { return filepath.Join(root, "committed", c.Encoded(), "fs") }
	active := filepath.Join(root, "active", "ctr1")
	want := []string{
		"lowerdir=" + fsDir(chain[2]) + ":" + fsDir(chain[1]) + ":" + fsDir(chain[0]), // top first
		"upperdir=" + filepath.Join(active, "upper"),
		"workdir=" + filepath.Join(active, "work"),
		"index=off",
	}
	if !reflect.DeepEqual(m.Options, want) {
		t.Errorf("Prepare options =\n  %q\nwant\n  %q", m.Options, want)
	}
	for _, d := range []string{"upper", "work"} {
		if fi, err := os.Stat(filepath.Join(active, d)); err != nil || !fi.IsDir() {
			t.Errorf("active %s dir: %v, want a directory", d, err)
		}
	}

	// A one-layer chain has one lower dir.
	m1, err := s.Prepare(ctx, "ctr-one", chain[:1])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m1.Options[0], "lowerdir="+fsDir(chain[0]); got != want {
		t.Errorf("Prepare(one layer) lowerdir = %q, want %q", got, want)
	}

	// Active reports each snapshot's parents, bottom first.
	act, err := s.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wantAct := map[string][]digest.Digest{"ctr1": chain, "ctr-one": chain[:1]}; !reflect.DeepEqual(act, wantAct) {
		t.Errorf("Active() = %v, want %v", act, wantAct)
	}

	// The same key again is refused and leaves the first one intact.
	if err := os.WriteFile(filepath.Join(active, "upper", "written"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "ctr1", chain); !errdefs.IsAlreadyExists(err) {
		t.Errorf("Prepare(existing key) = %v, want ErrAlreadyExists", err)
	}
	if _, err := os.Stat(filepath.Join(active, "upper", "written")); err != nil {
		t.Errorf("upper dir after duplicate Prepare: %v, want the container's file kept", err)
	}

	// Remove is idempotent and only touches its key.
	for i := range 2 {
		if err := s.Remove(ctx, "ctr1"); err != nil {
			t.Errorf("Remove #%d(ctr1) = %v", i+1, err)
		}
	}
	if _, err := os.Stat(active); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("active dir after Remove: %v, want it gone", err)
	}
	act, _ = s.Active(ctx)
	if _, ok := act["ctr-one"]; len(act) != 1 || !ok {
		t.Errorf("Active() after Remove(ctr1) = %v, want only ctr-one", act)
	}
	for _, c := range chain {
		if !s.Has(c) {
			t.Errorf("Has(%s) after Remove = false: removing a container must keep its layers", c)
		}
	}
}

func TestPrepareMissingChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newSnapshotter(t)
	chain := commitChain(t, s, 2)
	missing := digest.FromString("never unpacked")
	for _, tc := range []struct {
		name  string
		chain []digest.Digest
	}{
		{"top missing", append(chain[:2:2], missing)},
		{"bottom missing", []digest.Digest{missing, chain[1]}},
		{"only missing", []digest.Digest{missing}},
	} {
		_, err := s.Prepare(ctx, "c", tc.chain)
		if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), missing.String()) {
			t.Errorf("Prepare(%s) = %v, want ErrNotFound naming %s", tc.name, err, missing)
		}
	}
	if got := dirNames(t, filepath.Join(root, "active")); len(got) != 0 {
		t.Errorf("active/ after failed Prepares = %q, want empty", got)
	}
	if _, err := s.Prepare(ctx, "c", nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Prepare(no layers) = %v, want ErrInvalidArgument", err)
	}
}

func TestSnapshotKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newSnapshotter(t)
	chain := commitChain(t, s, 1)
	// A directory next to active/ that a traversing key would reach.
	victim := filepath.Join(root, "committed", chain[0].Encoded())
	for _, tc := range []struct {
		key   string
		valid bool
	}{
		{"ctr1", true},
		{"0123abcdef", true},
		{"with-dash_and_UNDERSCORE", true},
		{"", false},
		{".", false},
		{"..", false},
		{"../committed", false},
		{"a/b", false},
		{"/abs", false},
		{"name.with.dots", false},
		{"../../" + filepath.Base(root), false},
	} {
		_, perr := s.Prepare(ctx, tc.key, chain)
		rerr := s.Remove(ctx, tc.key)
		if tc.valid {
			if perr != nil || rerr != nil {
				t.Errorf("Prepare(%q), Remove = %v, %v; want nil, nil", tc.key, perr, rerr)
			}
			continue
		}
		if !errdefs.IsInvalidArgument(perr) || !errdefs.IsInvalidArgument(rerr) {
			t.Errorf("Prepare(%q), Remove = %v, %v; want ErrInvalidArgument twice", tc.key, perr, rerr)
		}
	}
	if !s.Has(chain[0]) {
		t.Errorf("committed snapshot %s gone after hostile keys", chain[0])
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("committed dir after hostile keys: %v", err)
	}
	if got := dirNames(t, filepath.Join(root, "active")); len(got) != 0 {
		t.Errorf("active/ after Prepare+Remove of every key = %q, want empty", got)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newSnapshotter(t)
	chain := commitChain(t, s, 3)
	// Make the layer hard to delete: a read-only directory inside.
	ro := filepath.Join(root, "committed", chain[1].Encoded(), "fs", "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Delete(ctx, chain[1]); err != nil {
			t.Errorf("Delete #%d(%s) = %v, want nil", i+1, chain[1], err)
		}
	}
	if s.Has(chain[1]) {
		t.Errorf("Has(%s) after Delete = true", chain[1])
	}
	if !s.Has(chain[0]) || !s.Has(chain[2]) {
		t.Errorf("Delete(%s) removed other snapshots: Has = %v, %v", chain[1], s.Has(chain[0]), s.Has(chain[2]))
	}
	if got := dirNames(t, filepath.Join(root, "tmp")); len(got) != 0 {
		t.Errorf("tmp/ after Delete = %q, want empty", got)
	}
	got, err := s.Committed(ctx)
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	want := []digest.Digest{chain[0], chain[2]}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Committed() after Delete = %v, %v; want %v", got, err, want)
	}
	// A deleted layer can be unpacked again.
	if err := s.Unpack(ctx, chain[1], writeFiles(chain[1], nil)); err != nil || !s.Has(chain[1]) {
		t.Errorf("Unpack after Delete = %v, Has = %v", err, s.Has(chain[1]))
	}
}

// TestDeleteInvalidChainID makes sure a malformed chain ID cannot reach
// outside committed/<hex>: with an empty digest the committed directory
// itself would be the target.
func TestDeleteInvalidChainID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newSnapshotter(t)
	chain := commitChain(t, s, 2)
	for _, bad := range []digest.Digest{"", "sha256:", "sha256:..", "sha256:../active", "sha256:abc"} {
		if err := s.Delete(ctx, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidArgument", bad, err)
		}
		if err := s.Unpack(ctx, bad, writeFiles(bad, nil)); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Unpack(%q) = %v, want ErrInvalidArgument", bad, err)
		}
	}
	for _, c := range chain {
		if !s.Has(c) {
			t.Errorf("Has(%s) after Delete of invalid chain IDs = false: they reached a real snapshot", c)
		}
	}
	for _, d := range []string{"committed", "active", "tmp", "locks"} {
		if _, err := os.Stat(filepath.Join(root, d)); err != nil {
			t.Errorf("%s after Delete of invalid chain IDs: %v", d, err)
		}
	}
}

// TestDeleteAfterInterruptedDelete: a Delete killed after its rename leaves
// tmp/del-<hex> behind. Once the same layer is unpacked again, the next
// Delete (gc) must still work rather than fail on the leftover.
func TestDeleteAfterInterruptedDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newSnapshotter(t)
	chain := commitChain(t, s, 1)
	leftover := filepath.Join(root, "tmp", "del-"+chain[0].Encoded(), "fs", "etc")
	if err := os.MkdirAll(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(leftover, "passwd"), []byte("half deleted"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, chain[0]); err != nil {
		t.Fatalf("Delete with a leftover from an interrupted Delete = %v, want nil", err)
	}
	if s.Has(chain[0]) {
		t.Errorf("Has(%s) after Delete = true", chain[0])
	}
	if got := dirNames(t, filepath.Join(root, "tmp")); len(got) != 0 {
		t.Errorf("tmp/ after Delete = %q, want empty", got)
	}
}
