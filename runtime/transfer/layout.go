// Package transfer moves images in and out of a Sigil root without a
// registry, the way air-gapped sites move them: OCI image layouts
// (`oci:DIR[:TAG]`), oci-archive (a tar of a layout) and docker-archive (what
// `docker save` writes and `docker load` reads).
//
// Reading a layout gives a pull.Fetcher, so an import goes through the same
// verified, policy-checked path as a registry pull:
//
//	src, err := transfer.OpenLayout(dir)
//	desc, b, err := src.Resolve(ctx, "latest")
//	img, err := puller.Pull(ctx, name, desc, b, src)
package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/images"
)

// Layout is a read-only OCI image layout directory.
type Layout struct {
	dir  string
	root *os.Root
}

// OpenLayout opens the layout at dir, checking its oci-layout marker.
func OpenLayout(dir string) (*Layout, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	b, err := root.ReadFile(ocispec.ImageLayoutFile)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("OCI layout %s: no %s marker: %w: is this an OCI image layout directory?", dir, ocispec.ImageLayoutFile, errdefs.ErrInvalidArgument)
	}
	var marker ocispec.ImageLayout
	if err := json.Unmarshal(b, &marker); err != nil || marker.Version != ocispec.ImageLayoutVersion {
		root.Close()
		return nil, fmt.Errorf("OCI layout %s: unsupported %s %q: %w", dir, ocispec.ImageLayoutFile, b, errdefs.ErrInvalidArgument)
	}
	return &Layout{dir: dir, root: root}, nil
}

// Close releases the layout.
func (l *Layout) Close() error { return l.root.Close() }

// Index reads the layout's index.json.
func (l *Layout) Index() (*ocispec.Index, error) {
	b, err := l.readLimited("index.json", images.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", l.dir, err)
	}
	idx, err := images.ParseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: index.json: %w", l.dir, err)
	}
	return idx, nil
}

// Resolve finds the manifest tagged tag (the org.opencontainers.image.ref.name
// annotation) and returns its descriptor and verified bytes. An empty tag
// picks the only manifest of a layout that has one.
func (l *Layout) Resolve(ctx context.Context, tag string) (ocispec.Descriptor, []byte, error) {
	idx, err := l.Index()
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	var found *ocispec.Descriptor
	var tags []string
	for i, m := range idx.Manifests {
		name := m.Annotations[ocispec.AnnotationRefName]
		tags = append(tags, name)
		if name == tag || (tag == "" && len(idx.Manifests) == 1) {
			found = &idx.Manifests[i]
			break
		}
	}
	if found == nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("OCI layout %s has no image tagged %q (it has %q): %w", l.dir, tag, tags, errdefs.ErrNotFound)
	}
	b, err := l.FetchManifest(ctx, *found)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	mt, err := images.DetectMediaType(found.MediaType, b)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("OCI layout %s: %w", l.dir, err)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: found.Digest, Size: found.Size}, b, nil
}

// FetchManifest reads and verifies a manifest blob.
func (l *Layout) FetchManifest(_ context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > images.MaxManifestSize {
		return nil, fmt.Errorf("manifest %s is %d bytes, more than the %d allowed", desc.Digest, desc.Size, images.MaxManifestSize)
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("manifest digest %q: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	b, err := l.readLimited(blobPath(desc.Digest), images.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: manifest %s: %w", l.dir, desc.Digest, err)
	}
	if int64(len(b)) != desc.Size || desc.Digest.Algorithm().FromBytes(b) != desc.Digest {
		return nil, fmt.Errorf("OCI layout %s: manifest %s does not match its descriptor: the layout is corrupt or tampered with", l.dir, desc.Digest)
	}
	return b, nil
}

// FetchBlob opens a blob; the content store verifies it as it reads.
func (l *Layout) FetchBlob(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	f, err := l.root.Open(blobPath(desc.Digest))
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: blob %s: %w", l.dir, desc.Digest, err)
	}
	return f, nil
}

func (l *Layout) readLimited(name string, limit int64) ([]byte, error) {
	f, err := l.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", name, limit, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

func blobPath(d digest.Digest) string {
	return filepath.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}
