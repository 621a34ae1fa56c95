package signing

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Media types and annotations of the formats Sigil reads and writes; they
// are cosign's, so both tools read each other's signatures.
const (
	// MediaTypeSimpleSigning is the layer type of a cosign signature in
	// the tag scheme (sha256-<hex>.sig).
	MediaTypeSimpleSigning = ctypes.SimpleSigningMediaType
	// MediaTypeBundle is the artifact type of a sigstore bundle attached
	// as an OCI 1.1 referrer.
	MediaTypeBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// PredicateCosignSign is the in-toto predicate type of a cosign image
	// signature in a bundle (cosign sign --new-bundle-format).
	PredicateCosignSign = ctypes.CosignSignPredicateType

	// AnnotationKeyID is set by sigil sign on a tag-scheme signature: the
	// KeyID of the signing key. It is a hint, not a proof: it only lets a
	// refusal say "altered" (the key is trusted but the signature does not
	// verify) rather than "another key" (see the reason codes).
	AnnotationKeyID = "dev.sigil-project.sigil/key-id"

	annotationBundlePredicate = "dev.sigstore.bundle.predicateType"
	annotationBundleContent   = "dev.sigstore.bundle.content"
)

// SignatureTag is the tag cosign stores the signatures of the manifest d
// under: "sha256-<hex>.sig".
func SignatureTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded() + ".sig"
}

// referrersTag is the tag of the referrers tag schema (OCI 1.1 fallback
// for registries without the referrers API): "sha256-<hex>".
func referrersTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

// candidate is one signature found for an image, in either format,
// normalised for verification.
type candidate struct {
	where  string // for messages: "tag sha256-….sig layer 0 at host/repo"
	format string // "simple-signing" or "bundle"

	payload []byte // the simple-signing JSON, or the in-toto statement
	signed  []byte // the bytes the signature covers
	sig     []byte

	cert    *x509.Certificate
	chain   []*x509.Certificate
	keyHint string // KeyID the signature says it was made with; may lie

	// Transparency-log evidence, in the form of its format.
	rekorBundle *cbundle.RekorBundle // tag scheme
	tlogEntries []*tlog.Entry        // sigstore bundle
	// tag-scheme fields cosign.VerifyBundle needs.
	b64sig           string
	certPEM, chainPM []byte
}

// subject is what a signature vouches for.
type subject struct {
	digest   digest.Digest
	identity string // docker-reference or in-toto subject name; "" if none
}

// claims decodes what the signature says it signs. It is only called
// once the signature verified, so its errors mean a trusted signer signed
// something that is not an image signature.
func (c *candidate) claims() ([]subject, error) {
	switch c.format {
	case formatSimpleSigning:
		var p payload.SimpleContainerImage
		if err := json.Unmarshal(c.payload, &p); err != nil {
			return nil, fmt.Errorf("payload is not a simple-signing document: %w", err)
		}
		if p.Critical.Type != payload.CosignSignatureType {
			return nil, fmt.Errorf("payload type is %q, not %q", p.Critical.Type, payload.CosignSignatureType)
		}
		d, err := digest.Parse(p.Critical.Image.DockerManifestDigest)
		if err != nil {
			return nil, fmt.Errorf("payload docker-manifest-digest %q: %w", p.Critical.Image.DockerManifestDigest, err)
		}
		return []subject{{digest: d, identity: p.Critical.Identity.DockerReference}}, nil
	case formatBundle:
		var st struct {
			Type          string `json:"_type"`
			PredicateType string `json:"predicateType"`
			Subject       []struct {
				Name   string            `json:"name"`
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
		}
		if err := json.Unmarshal(c.payload, &st); err != nil {
			return nil, fmt.Errorf("bundle payload is not an in-toto statement: %w", err)
		}
		if st.PredicateType != PredicateCosignSign {
			return nil, fmt.Errorf("bundle predicate type is %q, not a cosign image signature (%s)", st.PredicateType, PredicateCosignSign)
		}
		var out []subject
		for _, s := range st.Subject {
			for alg, hex := range s.Digest {
				d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
				if d.Validate() == nil {
					out = append(out, subject{digest: d, identity: s.Name})
				}
			}
		}
		if len(out) == 0 {
			return nil, errors.New("the in-toto statement has no subject digest")
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown signature format %q", c.format)
}

const (
	formatSimpleSigning = "simple-signing"
	formatBundle        = "bundle"
)

// newSimpleSigningCandidate builds a candidate from one layer of a
// sha256-<hex>.sig manifest and its payload blob.
func newSimpleSigningCandidate(where string, layer ocispec.Descriptor, payloadBytes []byte) (*candidate, error) {
	ann := layer.Annotations
	c := &candidate{
		where:   where,
		format:  formatSimpleSigning,
		payload: payloadBytes,
		signed:  payloadBytes,
		b64sig:  ann[static.SignatureAnnotationKey],
		keyHint: ann[AnnotationKeyID],
	}
	if c.b64sig == "" {
		return nil, fmt.Errorf("%s: no %s annotation", where, static.SignatureAnnotationKey)
	}
	sig, err := base64.StdEncoding.DecodeString(c.b64sig)
	if err != nil {
		return nil, fmt.Errorf("%s: signature is not base64: %w", where, err)
	}
	c.sig = sig
	if p := ann[static.CertificateAnnotationKey]; p != "" {
		certs, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(p))
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("%s: certificate annotation holds no PEM certificate (%v)", where, err)
		}
		c.cert, c.certPEM = certs[0], []byte(p)
		if ch := ann[static.ChainAnnotationKey]; ch != "" {
			chain, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(ch))
			if err != nil {
				return nil, fmt.Errorf("%s: chain annotation: %w", where, err)
			}
			c.chain, c.chainPM = chain, []byte(ch)
		}
	}
	if b := ann[static.BundleAnnotationKey]; b != "" {
		var rb cbundle.RekorBundle
		if err := json.Unmarshal([]byte(b), &rb); err != nil {
			return nil, fmt.Errorf("%s: rekor bundle annotation: %w", where, err)
		}
		c.rekorBundle = &rb
	}
	return c, nil
}

// newBundleCandidate builds a candidate from a sigstore bundle (v0.3
// JSON) holding a DSSE envelope.
func newBundleCandidate(where string, data []byte) (*candidate, error) {
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("%s: not a sigstore bundle: %w", where, err)
	}
	env, err := b.Envelope()
	if err != nil {
		return nil, fmt.Errorf("%s: the bundle holds no DSSE envelope (a message signature cannot name an image): %w", where, err)
	}
	raw := env.RawEnvelope()
	if len(raw.Signatures) == 0 {
		return nil, fmt.Errorf("%s: the DSSE envelope has no signature", where)
	}
	pl, err := base64.StdEncoding.DecodeString(raw.Payload)
	if err != nil {
		return nil, fmt.Errorf("%s: DSSE payload is not base64: %w", where, err)
	}
	sig, err := base64.StdEncoding.DecodeString(raw.Signatures[0].Sig)
	if err != nil {
		return nil, fmt.Errorf("%s: DSSE signature is not base64: %w", where, err)
	}
	c := &candidate{
		where:   where,
		format:  formatBundle,
		payload: pl,
		signed:  dssePAE(raw.PayloadType, pl),
		sig:     sig,
	}
	if raw.PayloadType != ctypes.IntotoPayloadType {
		return nil, fmt.Errorf("%s: DSSE payload type %q is not in-toto", where, raw.PayloadType)
	}
	vc, err := b.VerificationContent()
	if err != nil {
		return nil, fmt.Errorf("%s: verification material: %w", where, err)
	}
	if cert := vc.Certificate(); cert != nil {
		c.cert = cert
		// A v0.1/v0.2 bundle may carry the intermediates too.
		for i, raw := range b.GetVerificationMaterial().GetX509CertificateChain().GetCertificates() {
			if i == 0 {
				continue
			}
			if ic, err := x509.ParseCertificate(raw.GetRawBytes()); err == nil {
				c.chain = append(c.chain, ic)
			}
		}
	} else if pk, ok := vc.(*sgbundle.PublicKey); ok {
		c.keyHint = pk.Hint()
	}
	if c.tlogEntries, err = b.TlogEntries(); err != nil {
		return nil, fmt.Errorf("%s: transparency log entries: %w", where, err)
	}
	return c, nil
}

// dssePAE is the DSSE pre-authentication encoding, what a DSSE signature
// covers.
func dssePAE(payloadType string, payload []byte) []byte {
	return []byte(fmt.Sprintf("DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload))
}

// shortDigest shortens a digest for one-line messages.
func shortDigest(d digest.Digest) string {
	s := d.String()
	if i := strings.IndexByte(s, ':'); i >= 0 && len(s) > i+13 {
		return s[:i+13]
	}
	return s
}
