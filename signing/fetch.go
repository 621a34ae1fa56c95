package signing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/remote"
)

// Source is one place an image's signatures are read from: a repository
// at one registry endpoint (*remote.Repository) or an OCI layout. Missing
// content must be reported with an error matching errdefs.ErrNotFound.
type Source interface {
	Resolve(ctx context.Context, tagOrDigest string) (ocispec.Descriptor, []byte, error)
	FetchManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error)
	FetchBlob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
}

// ReferrersLister is the optional capability of a Source to list OCI 1.1
// referrers (*remote.Repository has it). A Source without it is searched
// with the referrers tag schema only.
type ReferrersLister interface {
	Referrers(ctx context.Context, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error)
}

// Bounds on what one image's signatures may cost to read: a registry is
// untrusted until a signature verifies.
const (
	maxSignatureLayers = 64
	maxReferrers       = 32
	maxPayloadSize     = 256 << 10
	maxBundleSize      = 1 << 20
)

// found is what collect read at one source.
type found struct {
	candidates []*candidate
	// broken are signatures that exist but cannot be read; they count as
	// SIGNATURE_INVALID when nothing better is found.
	broken []error
}

// collect reads every signature of manifest d at src: the cosign tag
// (sha256-<hex>.sig) and the sigstore bundles attached as referrers (API,
// else the referrers tag schema). It never fetches an image layer: only
// signature manifests and their small blobs, each bounded and checked
// against its digest.
func collect(ctx context.Context, src Source, where string, d digest.Digest, tr *Trace) (*found, error) {
	f := &found{}
	if err := collectTag(ctx, src, where, d, f, tr); err != nil {
		return nil, err
	}
	if err := collectReferrers(ctx, src, where, d, f, tr); err != nil {
		return nil, err
	}
	return f, nil
}

func collectTag(ctx context.Context, src Source, where string, d digest.Digest, f *found, tr *Trace) error {
	tag := SignatureTag(d)
	_, body, err := src.Resolve(ctx, tag)
	if errdefs.IsNotFound(err) {
		tr.add("%s: no tag %s", where, tag)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading signatures %s at %s: %w", tag, where, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		f.broken = append(f.broken, fmt.Errorf("tag %s at %s is not a manifest: %w", tag, where, err))
		return nil
	}
	tr.add("%s: tag %s holds %d signature layer(s)", where, tag, len(m.Layers))
	for i, l := range m.Layers {
		if i == maxSignatureLayers {
			tr.add("%s: ignoring signature layers after the first %d", where, maxSignatureLayers)
			break
		}
		lw := fmt.Sprintf("tag %s layer %d at %s", tag, i, where)
		if l.MediaType != MediaTypeSimpleSigning {
			tr.add("%s: media type %s is not a simple-signing signature; skipped", lw, l.MediaType)
			continue
		}
		payload, err := fetchSmallBlob(ctx, src, l, maxPayloadSize)
		if err != nil {
			if isVerdictError(err) {
				f.broken = append(f.broken, fmt.Errorf("%s: %w", lw, err))
				continue
			}
			return fmt.Errorf("%s: %w", lw, err)
		}
		c, err := newSimpleSigningCandidate(lw, l, payload)
		if err != nil {
			f.broken = append(f.broken, err)
			continue
		}
		f.candidates = append(f.candidates, c)
	}
	return nil
}

func collectReferrers(ctx context.Context, src Source, where string, d digest.Digest, f *found, tr *Trace) error {
	var descs []ocispec.Descriptor
	lister, ok := src.(ReferrersLister)
	var err error
	if ok {
		// Unfiltered: see bundleReferrers.
		descs, err = lister.Referrers(ctx, d, "")
		if err == nil {
			descs = bundleReferrers(descs)
			tr.add("%s: referrers API lists %d possible sigstore bundle(s)", where, len(descs))
		}
	}
	if !ok || errdefs.IsNotFound(err) {
		// No referrers API: the OCI 1.1 fallback is an index tagged
		// sha256-<hex>.
		tag := referrersTag(d)
		var body []byte
		_, body, err = src.Resolve(ctx, tag)
		if errdefs.IsNotFound(err) {
			tr.add("%s: no referrers API and no referrers tag %s", where, tag)
			return nil
		}
		if err == nil {
			descs, err = remote.ParseReferrers(body, "")
			if err != nil {
				f.broken = append(f.broken, fmt.Errorf("referrers tag %s at %s: %w", tag, where, err))
				return nil
			}
			descs = bundleReferrers(descs)
			tr.add("%s: referrers tag %s lists %d possible sigstore bundle(s)", where, tag, len(descs))
		}
	}
	if err != nil {
		return fmt.Errorf("listing referrers of %s at %s: %w", d, where, err)
	}
	for i, desc := range descs {
		if i == maxReferrers {
			tr.add("%s: ignoring referrers after the first %d", where, maxReferrers)
			break
		}
		rw := fmt.Sprintf("referrer %s at %s", shortDigest(desc.Digest), where)
		// Other predicates (SBOMs, provenance) are attestations, not
		// signatures of the image; the annotation lets them be skipped
		// without a fetch.
		if p := desc.Annotations[annotationBundlePredicate]; p != "" && p != PredicateCosignSign {
			tr.add("%s: predicate %s is not an image signature; skipped", rw, p)
			continue
		}
		c, err := readBundleReferrer(ctx, src, rw, d, desc)
		if err != nil {
			if isVerdictError(err) {
				f.broken = append(f.broken, err)
				continue
			}
			return err
		}
		f.candidates = append(f.candidates, c)
	}
	return nil
}

// bundleReferrers keeps the referrers that may hold a sigstore bundle:
// those of its artifact type, and those whose index entry has the
// empty-config type or none, since go-containerregistry's referrers tag
// schema lists cosign's bundles that way. Each is checked when read.
func bundleReferrers(descs []ocispec.Descriptor) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, d := range descs {
		switch d.ArtifactType {
		case MediaTypeBundle, ocispec.MediaTypeEmptyJSON, "":
			out = append(out, d)
		}
	}
	return out
}

func readBundleReferrer(ctx context.Context, src Source, where string, d digest.Digest, desc ocispec.Descriptor) (*candidate, error) {
	if desc.Size > images.MaxManifestSize {
		return nil, verdictErr(fmt.Errorf("%s: manifest of %d bytes is too large", where, desc.Size))
	}
	body, err := src.FetchManifest(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, verdictErr(fmt.Errorf("%s: not a manifest: %w", where, err))
	}
	// The index may lie; the manifest's own subject is what binds it.
	if m.Subject == nil || m.Subject.Digest != d {
		return nil, verdictErr(fmt.Errorf("%s: its subject is not %s", where, d))
	}
	if m.ArtifactType != MediaTypeBundle && m.Config.MediaType != MediaTypeBundle {
		return nil, verdictErr(fmt.Errorf("%s: artifact type %q is not a sigstore bundle", where, m.ArtifactType))
	}
	var layer *ocispec.Descriptor
	for i := range m.Layers {
		if m.Layers[i].MediaType == MediaTypeBundle {
			layer = &m.Layers[i]
			break
		}
	}
	if layer == nil {
		return nil, verdictErr(fmt.Errorf("%s: no layer of type %s", where, MediaTypeBundle))
	}
	data, err := fetchSmallBlob(ctx, src, *layer, maxBundleSize)
	if err != nil {
		if isVerdictError(err) {
			return nil, verdictErr(fmt.Errorf("%s: %w", where, err))
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	c, err := newBundleCandidate(where, data)
	if err != nil {
		return nil, verdictErr(err)
	}
	return c, nil
}

// fetchSmallBlob reads a blob of at most limit bytes and checks it against
// its descriptor. A blob that is missing, too large or does not match is a
// verdict error (the signature is unusable); a transport failure is not.
func fetchSmallBlob(ctx context.Context, src Source, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit || desc.Size < 0 {
		return nil, verdictErr(fmt.Errorf("blob %s is %d bytes, more than the %d allowed", desc.Digest, desc.Size, limit))
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, verdictErr(fmt.Errorf("blob digest %q: %w", desc.Digest, err))
	}
	rc, err := src.FetchBlob(ctx, desc)
	if errdefs.IsNotFound(err) {
		return nil, verdictErr(err)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, limit+1)); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if int64(len(b)) != desc.Size || desc.Digest.Algorithm().FromBytes(b) != desc.Digest {
		return nil, verdictErr(fmt.Errorf("blob %s does not match its descriptor", desc.Digest))
	}
	return b, nil
}

// verdictError marks a problem with what the registry served (rather than
// with reaching it): it makes a signature unusable, it does not stop the
// evaluation.
type verdictError struct{ err error }

func (e *verdictError) Error() string { return e.err.Error() }
func (e *verdictError) Unwrap() error { return e.err }

func verdictErr(err error) error { return &verdictError{err} }

func isVerdictError(err error) bool {
	var v *verdictError
	return errors.As(err, &v)
}
