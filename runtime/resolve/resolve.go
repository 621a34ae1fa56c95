// Package resolve turns what a user typed into the manifest to fetch and
// the place to fetch it from: a registry (through the mirrors and settings of
// registries.conf, trying each endpoint in order) or an OCI layout
// directory. The CLI and the CRI resolve the same way.
//
//	r := resolve.New(client, registriesConf)
//	res, err := r.Resolve(ctx, ref)
//	defer res.Close()
//	img, err := puller.Pull(ctx, res.Name, res.Target, res.Manifest, res.Fetcher)
package resolve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/pull"
	"github.com/sigil-project/sigil/runtime/reference"
	"github.com/sigil-project/sigil/runtime/registries"
	"github.com/sigil-project/sigil/runtime/remote"
	"github.com/sigil-project/sigil/runtime/transfer"
)

// Resolved is a reference resolved to a manifest.
type Resolved struct {
	// Name is the normalised name the image is recorded under.
	Name string
	// Target is the manifest or index the reference points to.
	Target ocispec.Descriptor
	// Manifest holds Target's bytes, already verified against its digest.
	Manifest []byte
	// Fetcher reads the image's other manifests and blobs.
	Fetcher pull.Fetcher
	// Source says where it came from, for messages ("127.0.0.1:5000/team/app (mirror)").
	Source string
	close  func() error
}

// Close releases the source (an open layout).
func (r *Resolved) Close() error {
	if r.close != nil {
		return r.close()
	}
	return nil
}

// Resolver resolves references.
type Resolver struct {
	client     *remote.Client
	registries *registries.Config
	logger     *slog.Logger
}

// New returns a Resolver. A nil registries config means none.
func New(client *remote.Client, conf *registries.Config, logger *slog.Logger) *Resolver {
	if conf == nil {
		conf = &registries.Config{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Resolver{client: client, registries: conf, logger: logger}
}

// Resolve finds the manifest ref names.
func (r *Resolver) Resolve(ctx context.Context, ref reference.Ref) (*Resolved, error) {
	if ref.Transport() == reference.TransportOCI {
		return r.resolveLayout(ctx, ref)
	}
	byDigest := ref.Digest() != ""
	endpoints, err := r.registries.Endpoints(ref.Name(), byDigest)
	if err != nil {
		return nil, err
	}
	want := ref.Tag()
	if byDigest {
		want = ref.Digest().String()
	}
	var errs []error
	for _, ep := range endpoints {
		rep := remote.Endpoint{Registry: ep.Registry, Repository: ep.Repository, Insecure: ep.Insecure}
		where := rep.String()
		if ep.Mirror {
			where += " (mirror)"
		}
		repo, err := r.client.Repository(ctx, rep)
		if err == nil {
			var desc ocispec.Descriptor
			var b []byte
			desc, b, err = repo.Resolve(ctx, want)
			if err == nil {
				r.logger.DebugContext(ctx, "resolved", "ref", ref.String(), "digest", desc.Digest, "source", where)
				return &Resolved{Name: ref.String(), Target: desc, Manifest: b, Fetcher: repo, Source: where}, nil
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.logger.DebugContext(ctx, "endpoint failed", "ref", ref.String(), "source", where, "error", err)
		errs = append(errs, err)
		// A mirror that fails is skipped, as podman does; the primary
		// location is the last word.
	}
	if len(errs) == 1 {
		return nil, fmt.Errorf("resolve %s: %w", ref.String(), errs[0])
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return nil, fmt.Errorf("resolve %s: every endpoint failed:\n  %s: %w", ref.String(), strings.Join(msgs, "\n  "), firstClass(errs[len(errs)-1]))
}

// firstClass keeps the errdefs class of the primary location's error (the
// last endpoint, and the last word: a mirror that lacks the image does not
// make a registry that is down "not found") so callers can still test it
// with errors.Is.
func firstClass(err error) error {
	for _, c := range []error{errdefs.ErrNotFound, errdefs.ErrUnauthenticated, errdefs.ErrPermissionDenied, errdefs.ErrUnavailable} {
		if errors.Is(err, c) {
			return c
		}
	}
	return errdefs.ErrUnknown
}

func (r *Resolver) resolveLayout(ctx context.Context, ref reference.Ref) (*Resolved, error) {
	l, err := transfer.OpenLayout(ref.LayoutDir())
	if err != nil {
		return nil, err
	}
	desc, b, err := l.Resolve(ctx, ref.Tag())
	if errdefs.IsNotFound(err) && ref.TagDefaulted() {
		// "oci:DIR" with no name means the only image of a one-image
		// layout, whatever it is tagged, as containers/image does.
		if idx, ierr := l.Index(); ierr == nil && len(idx.Manifests) == 1 {
			desc, b, err = l.Resolve(ctx, "")
		}
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	return &Resolved{Name: ref.String(), Target: desc, Manifest: b, Fetcher: l, Source: ref.LayoutDir(), close: l.Close}, nil
}
