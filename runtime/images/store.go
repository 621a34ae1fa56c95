// Package images keeps the names of the images Sigil holds (what a tag
// resolved to, and the platform manifest, config and layers chosen from it)
// and knows the manifest formats: OCI and Docker schema2 manifests, indexes
// and manifest lists.
//
// A record is one small JSON file per name, written to a temporary file and
// renamed, so concurrent sigil processes see either the old record or the
// new one:
//
//	images/
//	└── <sha256 of the name>.json   {"name": "docker.io/library/busybox:latest", ...}
//
// Usage:
//
//	s, err := images.NewStore(filepath.Join(root, "images"))
//	err = s.Put(ctx, img)
//	img, err := s.Get(ctx, "docker.io/library/busybox:latest")
package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/atomicfile"
)

// Image is one named image held locally.
type Image struct {
	// Name is the normalised reference, e.g. docker.io/library/busybox:latest.
	Name string `json:"name"`
	// Target is what the name resolved to: an index or a manifest.
	Target ocispec.Descriptor `json:"target"`
	// Manifest is the platform manifest chosen from Target.
	Manifest ocispec.Descriptor `json:"manifest"`
	Config   ocispec.Descriptor `json:"config"`
	// Layers are the manifest's layer descriptors, bottom first.
	Layers []ocispec.Descriptor `json:"layers"`
	// DiffIDs are the uncompressed layer digests from the config.
	DiffIDs  []digest.Digest  `json:"diffIDs"`
	Platform ocispec.Platform `json:"platform"`
	Created  time.Time        `json:"created"`
}

// ID is the image's identity as docker shows it: its config digest.
func (i *Image) ID() digest.Digest { return i.Config.Digest }

// Size is the compressed size of the image's layers and config.
func (i *Image) Size() int64 {
	n := i.Config.Size
	for _, l := range i.Layers {
		n += l.Size
	}
	return n
}

// ChainIDs are the keys of the image's snapshots, bottom first.
func (i *Image) ChainIDs() []digest.Digest { return ChainIDs(i.DiffIDs) }

// Store is the name index. Safe for several processes.
type Store struct{ dir string }

// NewStore opens (creating if needed) the index in dir.
func NewStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(name string) string {
	return filepath.Join(s.dir, digest.FromString(name).Encoded()+".json")
}

// Put records img under img.Name, replacing any earlier record.
func (s *Store) Put(_ context.Context, img *Image) error {
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.path(img.Name), b, 0o600); err != nil {
		return fmt.Errorf("image %s: record: %w", img.Name, err)
	}
	return nil
}

// Get returns the record for an exact normalised name; errdefs.ErrNotFound
// if there is none.
func (s *Store) Get(_ context.Context, name string) (*Image, error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("image record %s for %s is corrupt: %w; remove it and fetch the image again", s.path(name), name, err)
	}
	return &img, nil
}

// List returns every record, sorted by name.
func (s *Store) List(ctx context.Context) ([]*Image, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("image store %s: %w", s.dir, err)
	}
	var out []*Image
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			continue // removed since ReadDir
		}
		var img Image
		if err := json.Unmarshal(b, &img); err != nil {
			return nil, fmt.Errorf("image record %s is corrupt: %w; remove it and fetch the image again", e.Name(), err)
		}
		out = append(out, &img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, ctx.Err()
}

// Delete removes the record for name; errdefs.ErrNotFound if absent.
func (s *Store) Delete(_ context.Context, name string) error {
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("image %s: %w", name, errdefs.ErrNotFound)
	}
	return err
}

// Lookup finds images by exact name, by image ID (config digest, full or a
// prefix of at least 4 hex digits, as docker accepts) or by manifest digest.
func (s *Store) Lookup(ctx context.Context, key string) ([]*Image, error) {
	if img, err := s.Get(ctx, key); err == nil {
		return []*Image{img}, nil
	}
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	hex := strings.TrimPrefix(key, "sha256:")
	var out []*Image
	for _, img := range all {
		if len(hex) >= 4 && (strings.HasPrefix(img.ID().Encoded(), hex) || strings.HasPrefix(img.Manifest.Digest.Encoded(), hex)) {
			out = append(out, img)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("image %q: %w; 'sigil images' lists what is here", key, errdefs.ErrNotFound)
	}
	return out, nil
}
