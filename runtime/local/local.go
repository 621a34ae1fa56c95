// Package local opens the on-disk stores under a Sigil root and keeps them
// tidy: the content store, the image index and the snapshots, and the
// garbage collection that removes what no image and no container uses.
//
//	/var/lib/sigil/            (--root)
//	├── content/               blobs by digest (package content)
//	├── images/                name -> manifest records (package images)
//	├── snapshots/             unpacked layers and container upper dirs (package snapshots)
//	├── containers/            container records and logs (package container)
//	└── pods/                  pod records (package pod)
//
//	s, err := local.Open(ctx, "/var/lib/sigil")
//	report, err := s.GC(ctx, false)
package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/content"
	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/lockfile"
	"github.com/sigil-project/sigil/runtime/snapshots"
)

// Stores are the image-side stores under one root.
type Stores struct {
	Root      string
	Content   *content.Store
	Images    *images.Store
	Snapshots *snapshots.Snapshotter
}

// Open opens (creating if needed) the stores under root.
func Open(_ context.Context, root string) (*Stores, error) {
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("sigil root %s: %w (choose another with --root)", root, err)
	}
	cs, err := content.NewStore(filepath.Join(root, "content"))
	if err != nil {
		return nil, err
	}
	is, err := images.NewStore(filepath.Join(root, "images"))
	if err != nil {
		return nil, err
	}
	sn, err := snapshots.New(filepath.Join(root, "snapshots"))
	if err != nil {
		return nil, err
	}
	return &Stores{Root: root, Content: cs, Images: is, Snapshots: sn}, nil
}

// GCReport says what a collection removed (or would remove, in a dry run).
type GCReport struct {
	Blobs      []digest.Digest
	BlobBytes  int64
	Snapshots  []digest.Digest
	DryRun     bool
	KeptBlobs  int
	KeptLayers int
}

// gcGrace is the age below which a collection keeps anything. Pulls
// racing a collection (which gc.lock serialises with other collections
// only) are safe because a pull records its image only after its blobs
// and snapshots exist, and the collection skips anything younger.
const gcGrace = 10 * time.Minute

// GC removes blobs and committed snapshots that no image record and no
// container's snapshot uses. Anything written in the last ten minutes is
// kept, so an image being pulled right now (not yet recorded) is safe.
func (s *Stores) GC(ctx context.Context, dryRun bool) (*GCReport, error) {
	unlock, err := lockfile.Lock(ctx, filepath.Join(s.Root, "gc.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	liveBlobs := map[digest.Digest]bool{}
	liveChains := map[digest.Digest]bool{}
	imgs, err := s.Images.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		liveBlobs[img.Target.Digest] = true
		liveBlobs[img.Manifest.Digest] = true
		liveBlobs[img.Config.Digest] = true
		for _, l := range img.Layers {
			liveBlobs[l.Digest] = true
		}
		for _, c := range img.ChainIDs() {
			liveChains[c] = true
		}
	}
	active, err := s.Snapshots.Active(ctx)
	if err != nil {
		return nil, err
	}
	for _, chain := range active {
		for _, c := range chain {
			liveChains[c] = true
		}
	}

	rep := &GCReport{DryRun: dryRun}
	cutoff := time.Now().Add(-gcGrace)
	err = s.Content.Walk(ctx, func(info content.Info) error {
		if liveBlobs[info.Digest] || info.ModTime.After(cutoff) {
			rep.KeptBlobs++
			return nil
		}
		rep.Blobs = append(rep.Blobs, info.Digest)
		rep.BlobBytes += info.Size
		if dryRun {
			return nil
		}
		return s.Content.Delete(ctx, info.Digest)
	})
	if err != nil {
		return nil, err
	}
	committed, err := s.Snapshots.Committed(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range committed {
		if at, err := s.Snapshots.CommittedAt(c); liveChains[c] || err != nil || at.After(cutoff) {
			rep.KeptLayers++
			continue
		}
		rep.Snapshots = append(rep.Snapshots, c)
		if !dryRun {
			if err := s.Snapshots.Delete(ctx, c); err != nil {
				return nil, err
			}
		}
	}
	if !dryRun {
		if err := s.Content.CleanIngest(ctx, gcGrace); err != nil {
			return nil, err
		}
		if err := s.Snapshots.CleanTmp(ctx); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// ImageConfig reads img's configuration from the content store.
func (s *Stores) ImageConfig(ctx context.Context, img *images.Image) (*ocispec.Image, error) {
	b, err := s.Content.ReadAll(ctx, img.Config.Digest, images.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w; fetch the image again", img.Name, err)
	}
	return images.ParseConfig(b, nil)
}
