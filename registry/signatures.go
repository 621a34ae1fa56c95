package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/distribution/distribution/v3"
	dref "github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/registry/refindex"
	"github.com/sigil-project/sigil/signing"
)

// localLocator makes the trust policy read an image's signatures from this
// registry's own storage (package signing's Locator), not over the
// network: enforcement never depends on the registry reaching itself, and
// costs a few storage reads. Images of other registries have no
// signatures here.
type localLocator struct {
	registryName string
	ns           distribution.Namespace
	index        *refindex.Index
}

var _ signing.Locator = (*localLocator)(nil)

// Locate implements signing.Locator.
func (l *localLocator) Locate(_ context.Context, ref string) ([]signing.Located, error) {
	named, err := dref.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("locating signatures of %q: %w", ref, err)
	}
	repo, ok := strings.CutPrefix(named.Name(), l.registryName+"/")
	if !ok || dref.Domain(named) != l.registryName {
		return nil, nil
	}
	where := l.registryName + "/" + repo + " (local storage)"
	return []signing.Located{{
		Where: where,
		Open: func(ctx context.Context) (signing.Source, error) {
			rn, err := dref.WithName(repo)
			if err != nil {
				return nil, err
			}
			r, err := l.ns.Repository(ctx, rn)
			if err != nil {
				return nil, err
			}
			return &localSource{repo: r, name: repo, index: l.index}, nil
		},
	}}, nil
}

// localSource is one repository of the storage as a signing.Source and
// signing.ReferrersLister.
type localSource struct {
	repo  distribution.Repository
	name  string
	index *refindex.Index
}

var (
	_ signing.Source          = (*localSource)(nil)
	_ signing.ReferrersLister = (*localSource)(nil)
)

// Resolve implements signing.Source.
func (s *localSource) Resolve(ctx context.Context, tagOrDigest string) (ocispec.Descriptor, []byte, error) {
	d, err := digest.Parse(tagOrDigest)
	if err != nil {
		desc, err := s.repo.Tags(ctx).Get(ctx, tagOrDigest)
		if err != nil {
			return ocispec.Descriptor{}, nil, notFound(err, "tag %s in %s", tagOrDigest, s.name)
		}
		d = desc.Digest
	}
	mt, payload, err := s.manifest(ctx, d)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(payload))}, payload, nil
}

// FetchManifest implements signing.Source.
func (s *localSource) FetchManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	_, payload, err := s.manifest(ctx, desc.Digest)
	return payload, err
}

func (s *localSource) manifest(ctx context.Context, d digest.Digest) (string, []byte, error) {
	ms, err := s.repo.Manifests(ctx)
	if err != nil {
		return "", nil, err
	}
	m, err := ms.Get(ctx, d)
	if err != nil {
		return "", nil, notFound(err, "manifest %s in %s", d, s.name)
	}
	return m.Payload()
}

// FetchBlob implements signing.Source. Only blobs linked into this
// repository are readable, as through the API.
func (s *localSource) FetchBlob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := s.repo.Blobs(ctx).Open(ctx, desc.Digest)
	if err != nil {
		return nil, notFound(err, "blob %s in %s", desc.Digest, s.name)
	}
	return rc, nil
}

// Referrers implements signing.ReferrersLister from the referrers index.
func (s *localSource) Referrers(ctx context.Context, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	descs, err := s.index.List(ctx, refindex.Referrers, s.name, d)
	if err != nil {
		return nil, err
	}
	ms, err := s.repo.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	return existingReferrers(ctx, ms, descs, artifactType), nil
}

// notFound re-classifies distribution's "unknown" errors as
// errdefs.ErrNotFound, the contract of signing.Source; other errors keep
// their cause.
func notFound(err error, format string, args ...any) error {
	var (
		tagUnknown      distribution.ErrTagUnknown
		revisionUnknown distribution.ErrManifestUnknownRevision
		repoUnknown     distribution.ErrRepositoryUnknown
		manifestUnknown distribution.ErrManifestUnknown
	)
	switch {
	case errors.As(err, &tagUnknown), errors.As(err, &revisionUnknown), errors.As(err, &repoUnknown),
		errors.As(err, &manifestUnknown), errors.Is(err, distribution.ErrBlobUnknown):
		return fmt.Errorf(format+": %w (%v)", append(args, errdefs.ErrNotFound, err)...)
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
