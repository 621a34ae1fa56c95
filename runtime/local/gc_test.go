package local_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/local"
)

// gcFixture is a root holding, besides an image and what it uses, blobs and
// snapshots in every state GC has to judge.
type gcFixture struct {
	root string
	s    *local.Stores
	img  *images.Image

	imageBlobs  []digest.Digest // target, manifest, config, layers: referenced
	imageChains []digest.Digest // the image's snapshots: referenced
	orphanBlobs []digest.Digest // old and unreferenced: to collect
	orphanChain digest.Digest   // old and unreferenced: to collect
	activeChain digest.Digest   // old, used only by a container
	youngBlob   digest.Digest   // unreferenced but just written
	youngChain  digest.Digest   // unreferenced but just committed
	oldIngest   string          // partial download of a killed process
}

func (f *gcFixture) putBlob(t *testing.T, body string, age time.Duration) ocispec.Descriptor {
	t.Helper()
	b := []byte(body)
	d := ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := f.s.Content.Write(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if age > 0 {
		at := time.Now().Add(-age)
		if err := os.Chtimes(f.s.Content.Path(d.Digest), at, at); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (f *gcFixture) putSnapshot(t *testing.T, chainID digest.Digest, age time.Duration) {
	t.Helper()
	err := f.s.Snapshots.Unpack(context.Background(), chainID, func(_ context.Context, dir string) (digest.Digest, error) {
		return chainID, os.WriteFile(filepath.Join(dir, "file"), []byte(chainID), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if age > 0 {
		at := time.Now().Add(-age)
		if err := os.Chtimes(filepath.Join(f.root, "snapshots", "committed", chainID.Encoded()), at, at); err != nil {
			t.Fatal(err)
		}
	}
}

func newGCFixture(t *testing.T) *gcFixture {
	t.Helper()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "sigil")
	s, err := local.Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	f := &gcFixture{root: root, s: s}
	const old = 2 * time.Hour

	target := f.putBlob(t, "index", old)
	manifest := f.putBlob(t, "manifest", old)
	config := f.putBlob(t, "config", old)
	l0, l1 := f.putBlob(t, "layer0", old), f.putBlob(t, "layer1", old)
	diffIDs := []digest.Digest{digest.FromString("diff0"), digest.FromString("diff1")}
	f.img = &images.Image{
		Name:     "example.com/app:1",
		Target:   target,
		Manifest: manifest,
		Config:   config,
		Layers:   []ocispec.Descriptor{l0, l1},
		DiffIDs:  diffIDs,
	}
	if err := s.Images.Put(ctx, f.img); err != nil {
		t.Fatal(err)
	}
	f.imageBlobs = []digest.Digest{target.Digest, manifest.Digest, config.Digest, l0.Digest, l1.Digest}
	f.imageChains = images.ChainIDs(diffIDs)
	for _, c := range f.imageChains {
		f.putSnapshot(t, c, old)
	}

	f.orphanBlobs = []digest.Digest{f.putBlob(t, "orphan layer", old).Digest, f.putBlob(t, "orphan manifest", 11*time.Minute).Digest}
	f.orphanChain = digest.FromString("orphan chain")
	f.putSnapshot(t, f.orphanChain, old)

	f.activeChain = digest.FromString("container's own base")
	f.putSnapshot(t, f.activeChain, old)
	if _, err := s.Snapshots.Prepare(ctx, "ctr1", []digest.Digest{f.activeChain}); err != nil {
		t.Fatal(err)
	}

	f.youngBlob = f.putBlob(t, "being pulled", 9*time.Minute).Digest
	f.youngChain = digest.FromString("being unpacked")
	f.putSnapshot(t, f.youngChain, 0)

	f.oldIngest = filepath.Join(root, "content", "ingest", "abc-partial")
	if err := os.WriteFile(f.oldIngest, []byte("half a layer"), 0o600); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-old)
	if err := os.Chtimes(f.oldIngest, at, at); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *gcFixture) hasBlob(d digest.Digest) bool {
	_, err := f.s.Content.Info(context.Background(), d)
	return err == nil
}

func sorted(ds []digest.Digest) []digest.Digest {
	out := append([]digest.Digest(nil), ds...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func TestGC(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newGCFixture(t)
	wantBlobs := sorted(f.orphanBlobs)
	wantChains := []digest.Digest{f.orphanChain}
	wantBytes := int64(len("orphan layer") + len("orphan manifest"))

	check := func(name string, rep *local.GCReport, dryRun bool) {
		t.Helper()
		if rep.DryRun != dryRun {
			t.Errorf("%s: DryRun = %v, want %v", name, rep.DryRun, dryRun)
		}
		if got := sorted(rep.Blobs); !reflect.DeepEqual(got, wantBlobs) {
			t.Errorf("%s: Blobs = %v, want %v", name, got, wantBlobs)
		}
		if !reflect.DeepEqual(rep.Snapshots, wantChains) {
			t.Errorf("%s: Snapshots = %v, want %v", name, rep.Snapshots, wantChains)
		}
		if rep.BlobBytes != wantBytes {
			t.Errorf("%s: BlobBytes = %d, want %d", name, rep.BlobBytes, wantBytes)
		}
		if want := len(f.imageBlobs) + 1; rep.KeptBlobs != want {
			t.Errorf("%s: KeptBlobs = %d, want %d (image blobs and the young one)", name, rep.KeptBlobs, want)
		}
		if want := len(f.imageChains) + 2; rep.KeptLayers != want {
			t.Errorf("%s: KeptLayers = %d, want %d (image, container and young snapshots)", name, rep.KeptLayers, want)
		}
	}

	// A dry run reports and removes nothing.
	rep, err := f.s.GC(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	check("GC(dry run)", rep, true)
	for _, d := range f.orphanBlobs {
		if !f.hasBlob(d) {
			t.Errorf("GC(dry run) removed blob %s", d)
		}
	}
	if !f.s.Snapshots.Has(f.orphanChain) {
		t.Errorf("GC(dry run) removed snapshot %s", f.orphanChain)
	}
	if _, err := os.Stat(f.oldIngest); err != nil {
		t.Errorf("GC(dry run) removed the partial download: %v", err)
	}

	rep, err = f.s.GC(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	check("GC", rep, false)
	for _, d := range f.orphanBlobs {
		if f.hasBlob(d) {
			t.Errorf("GC kept unreferenced old blob %s", d)
		}
	}
	if f.s.Snapshots.Has(f.orphanChain) {
		t.Errorf("GC kept unreferenced old snapshot %s", f.orphanChain)
	}
	if _, err := os.Stat(f.oldIngest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("GC kept the old partial download: %v", err)
	}
	for _, d := range append(append([]digest.Digest(nil), f.imageBlobs...), f.youngBlob) {
		if !f.hasBlob(d) {
			t.Errorf("GC removed blob %s, which is referenced or young", d)
		}
	}
	for _, c := range append(append([]digest.Digest(nil), f.imageChains...), f.activeChain, f.youngChain) {
		if !f.s.Snapshots.Has(c) {
			t.Errorf("GC removed snapshot %s, which is referenced, in use or young", c)
		}
	}
	if got, err := f.s.Images.Get(ctx, f.img.Name); err != nil || got.Manifest.Digest != f.img.Manifest.Digest {
		t.Errorf("image record after GC = %v, %v", got, err)
	}

	// A second run finds nothing more to do.
	rep, err = f.s.GC(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blobs) != 0 || len(rep.Snapshots) != 0 {
		t.Errorf("second GC removed %v and %v, want nothing", rep.Blobs, rep.Snapshots)
	}

	// Once the image and the container are gone, their old blobs and
	// snapshots go too.
	if err := f.s.Images.Delete(ctx, f.img.Name); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Snapshots.Remove(ctx, "ctr1"); err != nil {
		t.Fatal(err)
	}
	rep, err = f.s.GC(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(rep.Blobs), sorted(f.imageBlobs); !reflect.DeepEqual(got, want) {
		t.Errorf("GC after deleting the image: Blobs = %v, want %v", got, want)
	}
	if got, want := sorted(rep.Snapshots), sorted(append(append([]digest.Digest(nil), f.imageChains...), f.activeChain)); !reflect.DeepEqual(got, want) {
		t.Errorf("GC after deleting the image and container: Snapshots = %v, want %v", got, want)
	}
	if !f.hasBlob(f.youngBlob) || !f.s.Snapshots.Has(f.youngChain) {
		t.Errorf("GC removed young content: blob %v, snapshot %v", f.hasBlob(f.youngBlob), f.s.Snapshots.Has(f.youngChain))
	}
}

func TestGCCancelled(t *testing.T) {
	t.Parallel()
	f := newGCFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.s.GC(ctx, false); !errors.Is(err, context.Canceled) {
		t.Errorf("GC(cancelled context) = %v, want context.Canceled", err)
	}
	for _, d := range f.orphanBlobs {
		if !f.hasBlob(d) {
			t.Errorf("GC(cancelled context) removed blob %s", d)
		}
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "a", "b")
	s, err := local.Open(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"content/blobs/sha256", "content/ingest", "images", "snapshots/committed", "snapshots/active"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("Open(%s): %s = %v, want a directory", root, d, err)
		}
	}
	if s.Root != root {
		t.Errorf("Open(%s).Root = %s", root, s.Root)
	}
	// A root that cannot be created says how to choose another.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Open(context.Background(), filepath.Join(file, "root")); err == nil || !strings.Contains(err.Error(), "--root") {
		t.Errorf("Open(under a regular file) = %v, want an error suggesting --root", err)
	}
}
