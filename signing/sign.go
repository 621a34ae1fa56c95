package signing

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/containerd/errdefs"
	dref "github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/empty"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Pusher is what signing needs of the image's repository: read what is
// there, write blobs and manifests. *remote.Repository, opened with the
// "pull" and "push" actions, is one.
type Pusher interface {
	Source
	PushBlob(ctx context.Context, desc ocispec.Descriptor, data []byte) error
	PushManifest(ctx context.Context, tagOrDigest, mediaType string, body []byte) (subjectProcessed bool, err error)
}

// SignOptions say how to attach a signature.
type SignOptions struct {
	// Referrer attaches a sigstore bundle as an OCI 1.1 referrer (what
	// cosign sign --new-bundle-format writes) instead of a layer of the
	// sha256-<hex>.sig tag.
	Referrer bool
	// Time stamps the referrer (org.opencontainers.image.created);
	// default now.
	Time time.Time
}

// SignResult says what was pushed.
type SignResult struct {
	// Digest is the manifest signed.
	Digest digest.Digest
	// Identity is the docker-reference the signature claims.
	Identity string
	// Location is the tag (tag scheme) or the referrer manifest's digest.
	Location string
	// Unchanged is true when the key had already signed this payload there
	// (signing again is idempotent, as in cosign).
	Unchanged bool
}

// Sign signs the manifest target of the image named identity (a
// normalised docker reference, "host/repo" or "host/repo:tag": the
// docker-reference the signature claims, checked by signedIdentity) with s,
// and attaches the signature in p, the image's repository.
//
// The tag scheme appends a layer to sha256-<hex>.sig, keeping the
// signatures already there, exactly as cosign sign does; the payload is
// cosign's simple-signing JSON, plus an AnnotationKeyID hint. The referrer
// form pushes a DSSE in-toto statement of predicate PredicateCosignSign in
// a sigstore bundle v0.3, naming identity as its subject; when the registry
// does not process the manifest's subject, the referrers tag schema index
// is updated too.
func Sign(ctx context.Context, p Pusher, identity string, target ocispec.Descriptor, s *KeySigner, opts SignOptions) (*SignResult, error) {
	if err := target.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("sign: manifest digest %q: %w: %w", target.Digest, err, errdefs.ErrInvalidArgument)
	}
	if opts.Referrer {
		return signReferrer(ctx, p, identity, target, s, opts)
	}
	return signTag(ctx, p, identity, target, s)
}

func signTag(ctx context.Context, p Pusher, identity string, target ocispec.Descriptor, s *KeySigner) (*SignResult, error) {
	repo, err := name.NewRepository(repositoryOf(identity))
	if err != nil {
		return nil, fmt.Errorf("sign: image name %q: %w", identity, err)
	}
	pl, err := payload.Cosign{
		Image:           repo.Digest(target.Digest.String()),
		ClaimedIdentity: identity,
	}.MarshalJSON()
	if err != nil {
		return nil, err
	}
	tag := SignatureTag(target.Digest)
	res := &SignResult{Digest: target.Digest, Identity: identity, Location: tag}

	existing, err := readSignatureLayers(ctx, p, tag)
	if err != nil {
		return nil, err
	}
	for _, e := range existing {
		pb, _ := e.Payload()
		b64, _ := e.Base64Signature()
		raw, _ := base64.StdEncoding.DecodeString(b64)
		if bytes.Equal(pb, pl) && s.verifies(raw, pl) {
			res.Unchanged = true
			return res, nil
		}
	}

	raw, err := s.sign(pl)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	sig, err := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw),
		static.WithAnnotations(map[string]string{AnnotationKeyID: s.KeyID()}))
	if err != nil {
		return nil, err
	}
	sigs, err := mutate.AppendSignatures(empty.Signatures(), false, append(existing, sig)...)
	if err != nil {
		return nil, err
	}
	if err := pushImage(ctx, p, tag, sigs); err != nil {
		return nil, err
	}
	return res, nil
}

// readSignatureLayers reads the signatures already under tag, so signing
// adds to them instead of replacing them.
func readSignatureLayers(ctx context.Context, p Source, tag string) ([]oci.Signature, error) {
	_, body, err := p.Resolve(ctx, tag)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the signatures already in %s: %w", tag, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%s is not a manifest: %w", tag, err)
	}
	var out []oci.Signature
	for _, l := range m.Layers {
		pl, err := fetchSmallBlob(ctx, p, l, maxPayloadSize)
		if err != nil {
			return nil, fmt.Errorf("reading signature %s in %s: %w", l.Digest, tag, err)
		}
		ann := map[string]string{}
		for k, v := range l.Annotations {
			if k != static.SignatureAnnotationKey {
				ann[k] = v
			}
		}
		sig, err := static.NewSignature(pl, l.Annotations[static.SignatureAnnotationKey],
			static.WithLayerMediaType(v1MediaType(l.MediaType)), static.WithAnnotations(ann))
		if err != nil {
			return nil, err
		}
		out = append(out, sig)
	}
	return out, nil
}

// pushImage pushes a go-containerregistry image (cosign's signature
// image) blob by blob through p, then its manifest under tag.
func pushImage(ctx context.Context, p Pusher, tag string, img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := p.PushBlob(ctx, ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}, data); err != nil {
			return fmt.Errorf("pushing signature: %w", err)
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := p.PushBlob(ctx, ocispec.Descriptor{Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}, cfg); err != nil {
		return fmt.Errorf("pushing signature config: %w", err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	if _, err := p.PushManifest(ctx, tag, string(mt), manifest); err != nil {
		return fmt.Errorf("pushing signature manifest %s: %w", tag, err)
	}
	return nil
}

// statement is the in-toto statement of a cosign image signature.
type statement struct {
	Type          string             `json:"_type"`
	Subject       []statementSubject `json:"subject"`
	PredicateType string             `json:"predicateType"`
}

type statementSubject struct {
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest"`
}

func signReferrer(ctx context.Context, p Pusher, identity string, target ocispec.Descriptor, s *KeySigner, opts SignOptions) (*SignResult, error) {
	pl, err := json.Marshal(statement{
		Type:          "https://in-toto.io/Statement/v1",
		Subject:       []statementSubject{{Name: identity, Digest: map[string]string{target.Digest.Algorithm().String(): target.Digest.Encoded()}}},
		PredicateType: PredicateCosignSign,
	})
	if err != nil {
		return nil, err
	}
	env, err := dsse.WrapSigner(s.sv, ctypes.IntotoPayloadType).SignMessage(bytes.NewReader(pl))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	bundle, err := cbundle.MakeNewBundle(s.pub, nil, pl, env, s.pubPEM, nil)
	if err != nil {
		return nil, fmt.Errorf("sign: making the sigstore bundle: %w", err)
	}

	emptyConfig := []byte("{}")
	emptyDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(emptyConfig), Size: int64(len(emptyConfig))}
	bundleDesc := ocispec.Descriptor{MediaType: MediaTypeBundle, Digest: digest.FromBytes(bundle), Size: int64(len(bundle))}
	for _, b := range []struct {
		d    ocispec.Descriptor
		data []byte
	}{{emptyDesc, emptyConfig}, {bundleDesc, bundle}} {
		if err := p.PushBlob(ctx, b.d, b.data); err != nil {
			return nil, fmt.Errorf("pushing the signature bundle: %w", err)
		}
	}
	created := opts.Time
	if created.IsZero() {
		created = time.Now()
	}
	ann := map[string]string{
		ocispec.AnnotationCreated: created.UTC().Format(time.RFC3339),
		annotationBundleContent:   "dsse-envelope",
		annotationBundlePredicate: PredicateCosignSign,
	}
	subject := ocispec.Descriptor{MediaType: target.MediaType, Digest: target.Digest, Size: target.Size}
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: MediaTypeBundle,
		Config:       emptyDesc,
		Layers:       []ocispec.Descriptor{bundleDesc},
		Subject:      &subject,
		Annotations:  ann,
	}
	m.SchemaVersion = 2
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	md := digest.FromBytes(body)
	processed, err := p.PushManifest(ctx, md.String(), ocispec.MediaTypeImageManifest, body)
	if err != nil {
		return nil, fmt.Errorf("pushing the referrer manifest: %w", err)
	}
	if !processed && !listedByAPI(ctx, p, target.Digest, md) {
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(body)), ArtifactType: MediaTypeBundle, Annotations: ann}
		if err := addToReferrersTag(ctx, p, target.Digest, desc); err != nil {
			return nil, err
		}
	}
	return &SignResult{Digest: target.Digest, Identity: identity, Location: md.String()}, nil
}

// listedByAPI reports whether the registry's referrers API already lists
// manifest md as a referrer of d: some registries process the subject
// without saying so in OCI-Subject.
func listedByAPI(ctx context.Context, p Pusher, d, md digest.Digest) bool {
	l, ok := p.(ReferrersLister)
	if !ok {
		return false
	}
	descs, err := l.Referrers(ctx, d, "")
	if err != nil {
		return false
	}
	for _, x := range descs {
		if x.Digest == md {
			return true
		}
	}
	return false
}

// addToReferrersTag maintains the OCI 1.1 referrers tag schema for a
// registry without the referrers API: the index tagged sha256-<hex> lists
// every referrer of the manifest. (Two concurrent signers may race here; the
// tag schema has no compare-and-swap, as the OCI specification notes.)
func addToReferrersTag(ctx context.Context, p Pusher, d digest.Digest, desc ocispec.Descriptor) error {
	tag := referrersTag(d)
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	_, body, err := p.Resolve(ctx, tag)
	switch {
	case err == nil:
		if err := json.Unmarshal(body, &idx); err != nil {
			return fmt.Errorf("referrers tag %s is not an index: %w", tag, err)
		}
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("reading referrers tag %s: %w", tag, err)
	}
	for _, m := range idx.Manifests {
		if m.Digest == desc.Digest {
			return nil
		}
	}
	idx.Manifests = append(idx.Manifests, desc)
	out, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if _, err := p.PushManifest(ctx, tag, ocispec.MediaTypeImageIndex, out); err != nil {
		return fmt.Errorf("updating referrers tag %s: %w", tag, err)
	}
	return nil
}

// repositoryOf strips the tag of a normalised reference.
func repositoryOf(ref string) string {
	if named, err := parseNamed(ref); err == nil {
		return named.Name()
	}
	return ref
}

func v1MediaType(s string) types.MediaType { return types.MediaType(s) }

func parseNamed(ref string) (dref.Named, error) { return dref.ParseNormalizedNamed(ref) }
