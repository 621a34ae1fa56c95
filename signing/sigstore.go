package signing

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/sigil-project/sigil/signing/policy"
	"github.com/sigil-project/sigil/signing/verdicts"
)

// SigstoreVerifier checks sigstoreSigned requirements: it finds the
// signatures of a manifest digest (cosign's sha256-<hex>.sig tag and OCI
// 1.1 sigstore-bundle referrers) through a Locator, and verifies them
// offline against the keys, CA roots and Rekor keys the requirement names.
// It never contacts Rekor, Fulcio or a TUF repository.
//
// It implements policy.SignatureVerifier; plug it into an ImageVerifier:
//
//	sv := signing.NewSigstoreVerifier(signing.NewRegistryLocator(client, conf))
//	iv, err := signing.NewImageVerifier(p, policy.WithSignatureVerifier(sv))
//
// A SigstoreVerifier is safe for concurrent use.
type SigstoreVerifier struct {
	locator Locator
	cache   *verdicts.Cache
	read    ReadFileFunc
	logger  *slog.Logger
}

// VerifierOption configures a SigstoreVerifier.
type VerifierOption func(*SigstoreVerifier)

// WithVerdictCache remembers acceptances in c (default: none).
func WithVerdictCache(c *verdicts.Cache) VerifierOption {
	return func(v *SigstoreVerifier) { v.cache = c }
}

// WithReadFile sets how files named by the policy are read (default
// os.ReadFile).
func WithReadFile(f ReadFileFunc) VerifierOption {
	return func(v *SigstoreVerifier) { v.read = f }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) VerifierOption {
	return func(v *SigstoreVerifier) { v.logger = l }
}

// NewSigstoreVerifier returns a verifier reading signatures where loc says.
func NewSigstoreVerifier(loc Locator, opts ...VerifierOption) *SigstoreVerifier {
	v := &SigstoreVerifier{
		locator: loc,
		read:    os.ReadFile,
		logger:  slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(v)
	}
	return v
}

var _ policy.SignatureVerifier = (*SigstoreVerifier)(nil)

// VerifySigstore implements policy.SignatureVerifier. It accepts when at
// least one signature meets req. A refusal is a *policy.VerificationError
// whose code comes from the signature that got furthest through the checks
// (see rank); an error of any other type means the signatures could not be
// read (registry unreachable, policy file unreadable).
func (v *SigstoreVerifier) VerifySigstore(ctx context.Context, ref string, d digest.Digest, req *policy.SigstoreSigned) (*policy.Signer, error) {
	tr := traceFrom(ctx)
	m, err := loadMaterial(req, v.read)
	if err != nil {
		return nil, fmt.Errorf("loading the trust material of the sigstoreSigned requirement: %w", err)
	}
	tr.add("requirement trusts %s", m.describe())

	if v.cache != nil {
		if s, at, ok := v.cache.Get(ref, d, m.fingerprint, time.Now()); ok {
			tr.add("verdict cache: %s was accepted at %s by this policy and key material; not checked again", shortDigest(d), at.Format(time.RFC3339))
			return s, nil
		}
	}

	srcs, err := v.locator.Locate(ctx, ref)
	if err != nil {
		return nil, err
	}
	var best *failure
	var lastErr error
	var looked []string
	for i, l := range srcs {
		looked = append(looked, l.Where)
		f, err := v.collectAt(ctx, l, d, tr)
		if err != nil {
			v.logger.DebugContext(ctx, "reading signatures failed", "ref", ref, "source", l.Where, "error", err)
			tr.add("%s: %v", l.Where, err)
			if i == len(srcs)-1 {
				lastErr = err
			}
			continue
		}
		for _, b := range f.broken {
			tr.add("unusable signature: %v", b)
			best = best.max(&failure{rank: rankMalformed, code: policy.ReasonSignatureInvalid, detail: b.Error()})
		}
		for _, c := range f.candidates {
			s, fail := v.check(c, m, req, ref, d, tr)
			if fail != nil {
				tr.add("refused (%s): %s", fail.code, fail.detail)
				best = best.max(fail)
				continue
			}
			tr.add("%s: accepted: %s", c.where, s.String())
			if v.cache != nil {
				if err := v.cache.Put(ref, d, m.fingerprint, s, time.Now(), cacheNotAfter(c, m)); err != nil {
					// A cache that cannot be written costs time, not safety.
					v.logger.DebugContext(ctx, "verdict cache not written", "digest", d, "error", err)
				}
			}
			return s, nil
		}
	}
	if best != nil {
		return nil, &policy.VerificationError{Code: best.code, Detail: best.detail}
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, &policy.VerificationError{
		Code:   policy.ReasonSignatureMissing,
		Detail: fmt.Sprintf("no signature for %s at %s (looked for tag %s and sigstore bundle referrers)", d, strings.Join(looked, ", "), SignatureTag(d)),
	}
}

func (v *SigstoreVerifier) collectAt(ctx context.Context, l Located, d digest.Digest, tr *Trace) (*found, error) {
	src, err := l.Open(ctx)
	if err != nil {
		return nil, err
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	return collect(ctx, src, l.Where, d, tr)
}

// Ranks order refusals by how far a signature got through the checks; the
// furthest explains the refusal best. A signature from a trusted key for
// another image says more than one from an unknown key.
const (
	rankMalformed      = iota // SIGNATURE_INVALID: unreadable
	rankUntrustedKey          // KEY_UNTRUSTED
	rankUntrustedCert         // CERTIFICATE_UNTRUSTED
	rankBadSignature          // SIGNATURE_INVALID: a trusted signer's signature does not verify, or its Rekor proof does not
	rankSignerIdentity        // IDENTITY_MISMATCH: the certificate names another signer
	rankOtherDigest           // SIGNATURE_INVALID: a valid signature of another manifest
	rankImageIdentity         // IDENTITY_MISMATCH: a valid signature of this manifest under another name
)

type failure struct {
	rank   int
	code   policy.ReasonCode
	detail string
}

func (f *failure) max(g *failure) *failure {
	if f == nil || g.rank > f.rank {
		return g
	}
	return f
}

func fail(rank int, code policy.ReasonCode, format string, args ...any) *failure {
	return &failure{rank: rank, code: code, detail: fmt.Sprintf(format, args...)}
}

// cacheNotAfter is how long an acceptance may be cached: a certificate checked
// against the current time stops vouching when it expires.
func cacheNotAfter(c *candidate, m *material) time.Time {
	if m.certs != nil && c.cert != nil && m.rekor == nil {
		return c.cert.NotAfter
	}
	return time.Time{}
}

// check verifies one signature against the requirement. The order of the
// steps is the order of the ranks.
func (v *SigstoreVerifier) check(c *candidate, m *material, req *policy.SigstoreSigned, ref string, d digest.Digest, tr *Trace) (*policy.Signer, *failure) {
	if len(c.sig) == 0 {
		return nil, fail(rankMalformed, policy.ReasonSignatureInvalid, "%s: empty signature", c.where)
	}
	signer := &policy.Signer{}
	if m.keys != nil {
		k, f := checkKeys(c, m)
		if f != nil {
			return nil, f
		}
		signer.Key, signer.KeyID = k.name, k.id
		tr.add("%s: signature verifies with trusted key %s (%s)", c.where, k.name, k.id)
		if m.rekor != nil {
			t, err := verifyRekor(c, m, k.verifier)
			if err != nil {
				return nil, fail(rankBadSignature, policy.ReasonSignatureInvalid, "%s: the transparency-log proof the policy requires (rekorPublicKey) is missing or does not verify: %v", c.where, err)
			}
			tr.add("%s: Rekor entry verified offline, integrated at %s", c.where, t.UTC().Format(time.RFC3339))
		}
	} else {
		f := v.checkCert(c, m, signer, tr)
		if f != nil {
			return nil, f
		}
	}

	subjects, err := c.claims()
	if err != nil {
		return nil, fail(rankBadSignature, policy.ReasonSignatureInvalid, "%s: signed by a trusted signer, but %v", c.where, err)
	}
	var mine *subject
	for i := range subjects {
		if subjects[i].digest == d {
			mine = &subjects[i]
			break
		}
	}
	if mine == nil {
		return nil, fail(rankOtherDigest, policy.ReasonSignatureInvalid,
			"%s: a valid signature, but of manifest %s, not %s: it was copied from another image and says nothing about this one", c.where, subjects[0].digest, d)
	}
	tr.add("%s: payload names manifest %s: matches", c.where, shortDigest(d))
	signer.SignedIdentity = mine.identity
	if mine.identity == "" {
		return nil, fail(rankImageIdentity, policy.ReasonIdentityMismatch,
			"%s: a valid signature of this manifest that names no image (a cosign --new-bundle-format signature vouches for the digest only), so signedIdentity cannot be checked; sign with 'sigil sign --referrer' or the tag scheme", c.where)
	}
	imageRef := ref
	if strings.HasPrefix(ref, "oci:") {
		imageRef = "" // a layout has no docker identity; Match explains
	}
	if err := req.SignedIdentity.Match(imageRef, mine.identity); err != nil {
		return nil, fail(rankImageIdentity, policy.ReasonIdentityMismatch, "%s: %v", c.where, err)
	}
	tr.add("%s: signed identity %s matches %s (%s)", c.where, mine.identity, ref, identityType(req.SignedIdentity))
	return signer, nil
}

func whenWord(logged bool) string {
	if logged {
		return "logged"
	}
	return "checked"
}

func identityType(si *policy.SignedIdentity) policy.IdentityType {
	if si == nil {
		return policy.MatchRepoDigestOrExact
	}
	return si.Type
}

// checkKeys finds the trusted key the signature verifies with. When none
// does, it tells "another key" (KEY_UNTRUSTED) from "altered"
// (SIGNATURE_INVALID) with what the signature says about its signer: a
// certificate, or a KeyID hint. Without either the two cannot be told apart
// (any ECDSA signature verifies under some key), and the refusal says so.
func checkKeys(c *candidate, m *material) (*trustedKey, *failure) {
	for i := range m.keys {
		if m.keys[i].verifier.VerifySignature(bytes.NewReader(c.sig), bytes.NewReader(c.signed)) == nil {
			return &m.keys[i], nil
		}
	}
	trusted := make([]string, len(m.keys))
	for i, k := range m.keys {
		trusted[i] = k.name
		if c.keyHint != "" && c.keyHint == k.id {
			return nil, fail(rankBadSignature, policy.ReasonSignatureInvalid,
				"%s: made with trusted key %s (%s) but does not verify: the payload or the signature was altered after signing", c.where, k.name, k.id)
		}
	}
	if c.cert != nil {
		if cv, err := signature.LoadVerifier(c.cert.PublicKey, crypto.SHA256); err == nil &&
			cv.VerifySignature(bytes.NewReader(c.sig), bytes.NewReader(c.signed)) == nil {
			return nil, fail(rankUntrustedKey, policy.ReasonKeyUntrusted,
				"%s: signed with the key of certificate %q, which is none of the trusted keys (%s)", c.where, certSubject(c.cert), strings.Join(trusted, ", "))
		}
		return nil, fail(rankBadSignature, policy.ReasonSignatureInvalid,
			"%s: does not verify with the key of its own certificate %q: the payload or the signature was altered", c.where, certSubject(c.cert))
	}
	if c.keyHint != "" {
		return nil, fail(rankUntrustedKey, policy.ReasonKeyUntrusted,
			"%s: signed with key %s, which is none of the trusted keys (%s)", c.where, c.keyHint, strings.Join(trusted, ", "))
	}
	return nil, fail(rankUntrustedKey, policy.ReasonKeyUntrusted,
		"%s: verifies with none of the trusted keys (%s): signed with another key (or altered after signing; a signature that does not name its key cannot tell)", c.where, strings.Join(trusted, ", "))
}

// checkCert verifies a certificate-based (pki, fulcio) signature.
func (v *SigstoreVerifier) checkCert(c *candidate, m *material, signer *policy.Signer, tr *Trace) *failure {
	cr := m.certs
	kind := "pki"
	if cr.fulcio {
		kind = "fulcio"
	}
	if c.cert == nil {
		return fail(rankUntrustedCert, policy.ReasonCertificateUntrusted,
			"%s: carries no certificate; the %s requirement accepts only signatures certified by %s", c.where, kind, strings.Join(cr.rootNames, ", "))
	}
	// First: does the CA vouch for the certificate at all? Checked at
	// its issuance, as cosign does, because when it was used is a
	// separate question (below).
	cert := stripSANCritical(c.cert)
	inter := cr.intermediates.Clone()
	for _, ic := range c.chain {
		inter.AddCert(ic)
	}
	verifyAt := func(t time.Time) ([][]*x509.Certificate, error) {
		return cert.Verify(x509.VerifyOptions{
			Roots:         cr.roots,
			Intermediates: inter,
			CurrentTime:   t,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		})
	}
	chains, err := verifyAt(cert.NotBefore)
	if err != nil {
		return fail(rankUntrustedCert, policy.ReasonCertificateUntrusted,
			"%s: certificate %q does not chain to the %s CA (%s): %v", c.where, certSubject(cert), kind, strings.Join(cr.rootNames, ", "), err)
	}
	rootCert := chains[0][len(chains[0])-1]
	tr.add("%s: certificate %q chains to %q", c.where, certSubject(cert), rootCert.Subject.String())

	// Then: when was it used? The Rekor integration time when the policy
	// names a Rekor key (a short-lived Fulcio certificate has expired
	// since), else now.
	at := time.Now()
	if m.rekor != nil {
		t, err := verifyRekor(c, m, nil)
		if err != nil {
			return fail(rankBadSignature, policy.ReasonSignatureInvalid,
				"%s: the transparency-log proof the policy requires (rekorPublicKey) is missing or does not verify: %v", c.where, err)
		}
		at = t
		tr.add("%s: Rekor entry verified offline, integrated at %s", c.where, t.UTC().Format(time.RFC3339))
	}
	if _, err := verifyAt(at); err != nil {
		return fail(rankUntrustedCert, policy.ReasonCertificateUntrusted,
			"%s: certificate %q (valid %s to %s) was not valid at %s, when the signature was %s: %v", c.where, certSubject(cert),
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339), whenWord(m.rekor != nil), err)
	}
	cv, err := signature.LoadVerifier(cert.PublicKey, crypto.SHA256)
	if err != nil {
		return fail(rankUntrustedCert, policy.ReasonCertificateUntrusted, "%s: certificate key: %v", c.where, err)
	}
	if err := cv.VerifySignature(bytes.NewReader(c.sig), bytes.NewReader(c.signed)); err != nil {
		return fail(rankBadSignature, policy.ReasonSignatureInvalid,
			"%s: does not verify with the key of its certificate %q: the payload or the signature was altered after signing", c.where, certSubject(cert))
	}
	if cr.email != "" && !slices.Contains(cert.EmailAddresses, cr.email) {
		return fail(rankSignerIdentity, policy.ReasonIdentityMismatch,
			"%s: certificate is for %s, the %s requirement wants subjectEmail %s", c.where, strings.Join(sans(cert), ", "), kind, cr.email)
	}
	if cr.hostname != "" && !slices.Contains(cert.DNSNames, cr.hostname) {
		return fail(rankSignerIdentity, policy.ReasonIdentityMismatch,
			"%s: certificate is for %s, the %s requirement wants subjectHostname %s", c.where, strings.Join(sans(cert), ", "), kind, cr.hostname)
	}
	issuer := rootCert.Subject.String()
	if cr.fulcio {
		issuer = oidcIssuer(cert)
		if issuer != cr.oidcIssuer {
			return fail(rankSignerIdentity, policy.ReasonIdentityMismatch,
				"%s: certificate was issued for OIDC issuer %q, the fulcio requirement wants %q", c.where, issuer, cr.oidcIssuer)
		}
	}
	signer.Subject = strings.Join(sans(cert), ", ")
	signer.Issuer = issuer
	if id, err := KeyID(cert.PublicKey); err == nil {
		signer.KeyID = id
	}
	signer.Key = "certificate " + certSubject(cert)
	return nil
}

var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// oidcIssuer reads the Fulcio OIDC issuer extension (the DER-encoded v2
// one, else the raw v1 one).
func oidcIssuer(cert *x509.Certificate) string {
	var v1 string
	for _, e := range cert.Extensions {
		switch {
		case e.Id.Equal(oidIssuerV2):
			var s string
			if _, err := asn1.Unmarshal(e.Value, &s); err == nil {
				return s
			}
		case e.Id.Equal(oidIssuerV1):
			v1 = string(e.Value)
		}
	}
	return v1
}

// stripSANCritical copies cert without the SAN in its unhandled critical
// extensions: Fulcio marks a SAN holding only an OtherName critical, which
// Go cannot parse but which carries nothing chain validation needs (cosign
// does the same).
func stripSANCritical(cert *x509.Certificate) *x509.Certificate {
	if len(cert.UnhandledCriticalExtensions) == 0 {
		return cert
	}
	cp := *cert
	cp.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(cert.UnhandledCriticalExtensions), func(o asn1.ObjectIdentifier) bool {
		return o.Equal(cryptoutils.SANOID)
	})
	return &cp
}

func sans(cert *x509.Certificate) []string {
	s := cryptoutils.GetSubjectAlternateNames(cert)
	if len(s) == 0 {
		return []string{"(no subject alternative name)"}
	}
	return s
}

func certSubject(cert *x509.Certificate) string {
	if s := cryptoutils.GetSubjectAlternateNames(cert); len(s) > 0 {
		return s[0]
	}
	return cert.Subject.String()
}

var errNoRekorProof = errors.New("the signature carries no Rekor entry")

// verifyRekor checks the signature's transparency-log entry offline
// against the trusted Rekor keys (its signed entry timestamp), and that the
// entry is about this very signature and key. It returns the entry's
// integration time. keyVerifier is the trusted key for key-based
// signatures, nil for certificate-based ones.
func verifyRekor(c *candidate, m *material, keyVerifier signature.Verifier) (time.Time, error) {
	switch {
	case c.rekorBundle != nil:
		opts := []static.Option{static.WithBundle(c.rekorBundle)}
		if c.certPEM != nil {
			opts = append(opts, static.WithCertChain(c.certPEM, c.chainPM))
		}
		sig, err := static.NewSignature(c.payload, c.b64sig, opts...)
		if err != nil {
			return time.Time{}, err
		}
		co := &cosign.CheckOpts{RekorPubKeys: m.rekor, SigVerifier: keyVerifier}
		ok, err := cosign.VerifyBundle(sig, co)
		if err != nil {
			return time.Time{}, err
		}
		if !ok {
			return time.Time{}, errNoRekorProof
		}
		return time.Unix(c.rekorBundle.Payload.IntegratedTime, 0), nil
	case len(c.tlogEntries) > 0:
		logs := map[string]*root.TransparencyLog{}
		for _, pub := range m.rekorKeys {
			id, err := cosign.GetTransparencyLogID(pub)
			if err != nil {
				return time.Time{}, err
			}
			raw, _ := hex.DecodeString(id)
			logs[id] = &root.TransparencyLog{
				ID: raw, PublicKey: pub, HashFunc: crypto.SHA256, SignatureHashFunc: crypto.SHA256,
				ValidityPeriodStart: time.Unix(1, 0),
			}
		}
		var errs []error
		for _, e := range c.tlogEntries {
			if err := tlog.VerifySET(e, logs); err != nil {
				errs = append(errs, err)
				continue
			}
			if !bytes.Equal(e.Signature(), c.sig) {
				errs = append(errs, errors.New("the Rekor entry is about another signature"))
				continue
			}
			if !sameKey(entryKey(e), c, keyVerifier) {
				errs = append(errs, errors.New("the Rekor entry names another key or certificate"))
				continue
			}
			return e.IntegratedTime(), nil
		}
		return time.Time{}, errors.Join(errs...)
	}
	return time.Time{}, errNoRekorProof
}

// entryKey is the key or certificate a Rekor entry names; it guards
// against the sigstore-go helper's panic on an entry without PEM.
func entryKey(e *tlog.Entry) (k any) {
	defer func() {
		if recover() != nil {
			k = nil
		}
	}()
	return e.PublicKey()
}

func sameKey(k any, c *candidate, keyVerifier signature.Verifier) bool {
	switch k := k.(type) {
	case *x509.Certificate:
		return c.cert != nil && bytes.Equal(k.Raw, c.cert.Raw)
	case nil:
		return false
	default:
		if keyVerifier == nil {
			return false
		}
		pub, err := keyVerifier.PublicKey()
		return err == nil && cryptoutils.EqualKeys(pub, k) == nil
	}
}

func (m *material) describe() string {
	var parts []string
	for _, k := range m.keys {
		parts = append(parts, fmt.Sprintf("key %s (%s)", k.name, k.id))
	}
	if m.certs != nil {
		kind := "pki CA"
		if m.certs.fulcio {
			kind = "fulcio CA"
		}
		s := kind + " " + strings.Join(m.certs.rootNames, ", ")
		if m.certs.email != "" {
			s += ", subjectEmail " + m.certs.email
		}
		if m.certs.hostname != "" {
			s += ", subjectHostname " + m.certs.hostname
		}
		if m.certs.oidcIssuer != "" {
			s += ", oidcIssuer " + m.certs.oidcIssuer
		}
		parts = append(parts, s)
	}
	if m.rekor != nil {
		parts = append(parts, fmt.Sprintf("%d Rekor key(s), whose proof is required", len(m.rekorKeys)))
	}
	return strings.Join(parts, "; ")
}
