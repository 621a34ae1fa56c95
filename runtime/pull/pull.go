// Package pull brings an image into the local stores: it stores the
// manifest a name resolved to, has the trust policy judge it, and only then
// fetches the config and the layers (in parallel, verified while they
// stream) and unpacks each layer into its snapshot.
//
// The order is the point: no layer byte is requested for an image the
// policy refuses.
//
//	p := pull.New(contentStore, imageStore, snapshotter, pull.WithVerifier(v))
//	img, err := p.Pull(ctx, "docker.io/library/busybox:latest", desc, manifestBytes, repo)
package pull

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/sigil-project/sigil/runtime/archive"
	"github.com/sigil-project/sigil/runtime/content"
	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/snapshots"
)

// Fetcher supplies the manifests and blobs of one image source: a registry
// repository, an OCI layout, an archive.
type Fetcher interface {
	FetchManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error)
	FetchBlob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
}

// Verifier judges an image before any layer is fetched and before a stored
// image runs. It returns nil to accept; a refusal is an error that says why.
type Verifier interface {
	VerifyImage(ctx context.Context, name string, target ocispec.Descriptor) error
}

// Progress is told about each blob transfer; the CLI draws bars with it.
type Progress interface {
	// Start announces a blob and returns the function to call with the
	// size of every chunk read.
	Start(desc ocispec.Descriptor) func(n int)
	// Done ends the blob's transfer, with the error if it failed.
	Done(desc ocispec.Descriptor, err error)
}

// Puller fetches images into the content store, image index and snapshots.
type Puller struct {
	content      *content.Store
	images       *images.Store
	snapshots    *snapshots.Snapshotter
	verifier     Verifier
	platform     ocispec.Platform
	progress     Progress
	logger       *slog.Logger
	parallel     int
	maxLayerSize int64
}

// Option configures a Puller.
type Option func(*Puller)

// WithVerifier sets the trust judgement. Without one every image is
// refused: a runtime that forgets to wire its policy must fail closed.
func WithVerifier(v Verifier) Option { return func(p *Puller) { p.verifier = v } }

// WithPlatform chooses the platform taken from an index (default: the host's).
func WithPlatform(pl ocispec.Platform) Option { return func(p *Puller) { p.platform = pl } }

// WithProgress reports transfers (default: none).
func WithProgress(pr Progress) Option { return func(p *Puller) { p.progress = pr } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(p *Puller) { p.logger = l } }

// WithParallel bounds concurrent layer downloads (default 4).
func WithParallel(n int) Option { return func(p *Puller) { p.parallel = n } }

// WithMaxLayerSize bounds a layer's uncompressed size, the guard against
// decompression bombs (default: the archive package's).
func WithMaxLayerSize(n int64) Option { return func(p *Puller) { p.maxLayerSize = n } }

type refuseAll struct{}

func (refuseAll) VerifyImage(_ context.Context, name string, _ ocispec.Descriptor) error {
	return fmt.Errorf("image %s: no trust policy was configured: %w", name, errdefs.ErrFailedPrecondition)
}

type noProgress struct{}

func (noProgress) Start(ocispec.Descriptor) func(int) { return nil }
func (noProgress) Done(ocispec.Descriptor, error)     {}

// New returns a Puller over the given stores.
func New(cs *content.Store, is *images.Store, sn *snapshots.Snapshotter, opts ...Option) *Puller {
	p := &Puller{
		content: cs, images: is, snapshots: sn,
		verifier: refuseAll{},
		platform: images.HostPlatform(),
		progress: noProgress{},
		logger:   slog.New(slog.DiscardHandler),
		parallel: 4,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Pull stores the image name resolved to target (whose bytes the resolver
// already read), after the verifier accepts it, and records it under name.
func (p *Puller) Pull(ctx context.Context, name string, target ocispec.Descriptor, targetBytes []byte, f Fetcher) (*images.Image, error) {
	log := p.logger.With("ref", name, "digest", target.Digest)
	if err := p.verifier.VerifyImage(ctx, name, target); err != nil {
		return nil, err
	}
	log.Debug("image accepted by trust policy")
	if err := p.content.Write(ctx, target, bytes.NewReader(targetBytes)); err != nil {
		return nil, fmt.Errorf("image %s: store manifest: %w", name, err)
	}

	manifestDesc, manifestBytes := target, targetBytes
	if images.IsIndex(target.MediaType) {
		idx, err := images.ParseIndex(targetBytes)
		if err != nil {
			return nil, fmt.Errorf("image %s@%s: %w", name, target.Digest, err)
		}
		manifestDesc, err = images.SelectPlatform(idx, p.platform)
		if err != nil {
			return nil, fmt.Errorf("image %s@%s: %w", name, target.Digest, err)
		}
		manifestBytes, err = p.fetchSmall(ctx, f, manifestDesc, true)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", name, err)
		}
	}
	manifest, err := images.ParseManifest(manifestBytes)
	if err != nil {
		return nil, fmt.Errorf("image %s@%s: %w", name, manifestDesc.Digest, err)
	}
	configBytes, err := p.fetchSmall(ctx, f, manifest.Config, false)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", name, err)
	}
	config, err := images.ParseConfig(configBytes, manifest)
	if err != nil {
		return nil, fmt.Errorf("image %s@%s: %w", name, manifestDesc.Digest, err)
	}
	if err := p.fetchLayers(ctx, f, manifest.Layers, config.RootFS.DiffIDs); err != nil {
		return nil, fmt.Errorf("image %s@%s: %w", name, manifestDesc.Digest, err)
	}
	platform := config.Platform
	if manifestDesc.Platform != nil {
		platform = *manifestDesc.Platform
	}
	img := &images.Image{
		Name:     name,
		Target:   target,
		Manifest: ocispec.Descriptor{MediaType: manifestDesc.MediaType, Digest: manifestDesc.Digest, Size: manifestDesc.Size},
		Config:   manifest.Config,
		Layers:   manifest.Layers,
		DiffIDs:  config.RootFS.DiffIDs,
		Platform: platform,
		Created:  time.Now().UTC(),
	}
	if err := p.images.Put(ctx, img); err != nil {
		return nil, err
	}
	log.Info("image stored", "manifest", manifestDesc.Digest, "layers", len(manifest.Layers))
	return img, nil
}

// fetchSmall fetches a manifest or config into the content store (or reads
// it from there) with the size bound every small document gets.
func (p *Puller) fetchSmall(ctx context.Context, f Fetcher, desc ocispec.Descriptor, isManifest bool) ([]byte, error) {
	if desc.Size > images.MaxManifestSize {
		return nil, fmt.Errorf("%s %s is %d bytes, more than the %d allowed: refusing it", kind(isManifest), desc.Digest, desc.Size, images.MaxManifestSize)
	}
	err := p.content.Ingest(ctx, desc, func(ctx context.Context) (io.ReadCloser, error) {
		if isManifest {
			b, err := f.FetchManifest(ctx, desc)
			if err != nil {
				return nil, err
			}
			return io.NopCloser(bytes.NewReader(b)), nil
		}
		return f.FetchBlob(ctx, desc)
	}, nil)
	if err != nil {
		return nil, err
	}
	return p.content.ReadAll(ctx, desc.Digest, images.MaxManifestSize)
}

func kind(isManifest bool) string {
	if isManifest {
		return "manifest"
	}
	return "config"
}

// fetchLayers downloads and unpacks every layer, several at once. Each
// layer unpacks into its own directory, so a layer can be unpacked as soon
// as it arrives, whatever the order.
func (p *Puller) fetchLayers(ctx context.Context, f Fetcher, layers []ocispec.Descriptor, diffIDs []digest.Digest) error {
	chain := images.ChainIDs(diffIDs)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(p.parallel)
	for i, l := range layers {
		g.Go(func() error {
			if err := p.fetchLayer(ctx, f, l); err != nil {
				return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
			}
			return p.unpackLayer(ctx, l, diffIDs[i], chain[i])
		})
	}
	return g.Wait()
}

func (p *Puller) fetchLayer(ctx context.Context, f Fetcher, l ocispec.Descriptor) error {
	if _, err := p.content.Info(ctx, l.Digest); err == nil {
		return nil
	}
	onRead := p.progress.Start(l)
	err := p.content.Ingest(ctx, l, func(ctx context.Context) (io.ReadCloser, error) {
		return f.FetchBlob(ctx, l)
	}, onRead)
	p.progress.Done(l, err)
	return err
}

// unpackLayer commits the snapshot for one layer, checking that what the
// blob decompresses to is the diff ID the config promised.
func (p *Puller) unpackLayer(ctx context.Context, l ocispec.Descriptor, diffID, chainID digest.Digest) error {
	return p.snapshots.Unpack(ctx, chainID, func(ctx context.Context, dir string) (digest.Digest, error) {
		blob, err := p.content.Open(ctx, l.Digest)
		if err != nil {
			return "", err
		}
		defer blob.Close()
		var opts []archive.ApplyOption
		if p.maxLayerSize > 0 {
			opts = append(opts, archive.WithMaxSize(p.maxLayerSize))
		}
		res, err := archive.Apply(ctx, dir, blob, opts...)
		if err != nil {
			return "", fmt.Errorf("unpack layer %s: %w", l.Digest, err)
		}
		if res.DiffID != diffID {
			return "", fmt.Errorf("layer %s decompresses to %s but the image config says %s: the image is corrupt or tampered with: %w",
				l.Digest, res.DiffID, diffID, content.ErrDigestMismatch)
		}
		return res.DiffID, nil
	})
}
