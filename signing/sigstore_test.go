package signing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/sigil-project/sigil/signing/policy"
	"github.com/sigil-project/sigil/signing/verdicts"
)

// verifyCode runs the verifier and returns "" for an acceptance or the
// refusal's reason code; other errors fail the test.
func verifyCode(t *testing.T, v *SigstoreVerifier, ref string, d digest.Digest, req *policy.SigstoreSigned) (policy.ReasonCode, string) {
	t.Helper()
	tr := &Trace{}
	_, err := v.VerifySigstore(WithTrace(context.Background(), tr), ref, d, req)
	if err == nil {
		return "", ""
	}
	var ve *policy.VerificationError
	if !errors.As(err, &ve) {
		t.Fatalf("VerifySigstore(%s) = %v, want a verdict", ref, err)
	}
	return ve.Code, ve.Detail + "\ntrace:\n  " + strings.Join(tr.Steps(), "\n  ")
}

func matchRepository() *policy.SignedIdentity {
	return &policy.SignedIdentity{Type: policy.MatchRepository}
}

// TestVerifyKeys is the table of key-based outcomes, including the hostile
// cases: each signature below is attached to the image under test.
func TestVerifyKeys(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t, false)
	signer, pub := newKeySigner(t)
	other, otherPub := newKeySigner(t)
	files := map[string][]byte{"/k.pub": pub, "/other.pub": otherPub}
	v := NewSigstoreVerifier(NewRegistryLocator(newClient(), nil), WithReadFile(mapFiles(files)))
	req := &policy.SigstoreSigned{KeyPath: "/k.pub", SignedIdentity: matchRepository()}
	ctx := context.Background()

	type tc struct {
		name  string
		setup func(t *testing.T, repo string) digest.Digest
		req   *policy.SigstoreSigned
		want  policy.ReasonCode
	}
	signWith := func(s *KeySigner, referrer bool) func(t *testing.T, repo string) digest.Digest {
		return func(t *testing.T, repo string) digest.Digest {
			desc := reg.pushRandom(t, repo+":1")
			if _, err := Sign(ctx, reg.repo(t, repo), reg.host+"/"+repo+":1", desc, s, SignOptions{Referrer: referrer}); err != nil {
				t.Fatal(err)
			}
			return desc.Digest
		}
	}
	cases := []tc{
		{name: "signed", setup: signWith(signer, false), want: ""},
		{name: "signed-referrer-tag-schema", setup: signWith(signer, true), want: ""},
		{name: "unsigned", setup: func(t *testing.T, repo string) digest.Digest {
			return reg.pushRandom(t, repo+":1").Digest
		}, want: policy.ReasonSignatureMissing},
		{name: "wrong-key", setup: signWith(other, false), want: policy.ReasonKeyUntrusted},
		{name: "wrong-key-referrer", setup: signWith(other, true), want: policy.ReasonKeyUntrusted},
		{name: "rotated-in", setup: signWith(other, false), req: &policy.SigstoreSigned{KeyPaths: []string{"/k.pub", "/other.pub"}, SignedIdentity: matchRepository()}, want: ""},
		{name: "tampered-payload", setup: func(t *testing.T, repo string) digest.Digest {
			desc := reg.pushRandom(t, repo+":1")
			pl := simplePayload(t, reg.host+"/"+repo, desc.Digest, reg.host+"/"+repo+":1")
			raw, _ := signer.sign(pl)
			tampered := []byte(strings.Replace(string(pl), `"optional":null`, `"optional":{"evil":"yes"}`, 1))
			sig, _ := static.NewSignature(tampered, base64.StdEncoding.EncodeToString(raw), static.WithAnnotations(map[string]string{AnnotationKeyID: signer.KeyID()}))
			attach(t, reg.repo(t, repo), desc.Digest, sig)
			return desc.Digest
		}, want: policy.ReasonSignatureInvalid},
		{name: "garbage-signature", setup: func(t *testing.T, repo string) digest.Digest {
			desc := reg.pushRandom(t, repo+":1")
			pl := simplePayload(t, reg.host+"/"+repo, desc.Digest, reg.host+"/"+repo+":1")
			sig, _ := static.NewSignature(pl, "not base64!")
			attach(t, reg.repo(t, repo), desc.Digest, sig)
			return desc.Digest
		}, want: policy.ReasonSignatureInvalid},
		{name: "copied-from-another-image", setup: func(t *testing.T, repo string) digest.Digest {
			signed := signWith(signer, false)(t, repo+"-src")
			desc := reg.pushRandom(t, repo+":1")
			// The valid signature of the other image, under this one's tag.
			src := reg.repo(t, repo+"-src")
			sigs, err := readSignatureLayers(ctx, src, SignatureTag(signed))
			if err != nil || len(sigs) != 1 {
				t.Fatal(err)
			}
			attach(t, reg.repo(t, repo), desc.Digest, sigs[0])
			return desc.Digest
		}, want: policy.ReasonSignatureInvalid},
		{name: "signed-for-another-repository", setup: func(t *testing.T, repo string) digest.Digest {
			desc := reg.pushRandom(t, repo+":1")
			pl := simplePayload(t, reg.host+"/elsewhere/app", desc.Digest, reg.host+"/elsewhere/app:1")
			raw, _ := signer.sign(pl)
			sig, _ := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw))
			attach(t, reg.repo(t, repo), desc.Digest, sig)
			return desc.Digest
		}, want: policy.ReasonIdentityMismatch},
		{name: "tag-differs-exact", setup: signWith(signer, false),
			req:  &policy.SigstoreSigned{KeyPath: "/k.pub", SignedIdentity: &policy.SignedIdentity{Type: policy.MatchExact}},
			want: policy.ReasonIdentityMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := "keys/" + c.name
			d := c.setup(t, repo)
			r := req
			if c.req != nil {
				r = c.req
			}
			ref := reg.host + "/" + repo + ":1"
			if c.name == "tag-differs-exact" {
				ref = reg.host + "/" + repo + ":2"
			}
			got, detail := verifyCode(t, v, ref, d, r)
			if got != c.want {
				t.Errorf("VerifySigstore = %q, want %q\n%s", got, c.want, detail)
			}
		})
	}
}

func TestVerifyReferrersAPI(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t, true)
	signer, pub := newKeySigner(t)
	v := NewSigstoreVerifier(NewRegistryLocator(newClient(), nil), WithReadFile(mapFiles(map[string][]byte{"/k.pub": pub})))
	desc := reg.pushRandom(t, "ref/app:1")
	if _, err := Sign(context.Background(), reg.repo(t, "ref/app"), reg.host+"/ref/app:1", desc, signer, SignOptions{Referrer: true}); err != nil {
		t.Fatal(err)
	}
	if n := reg.count("GET /v2/ref/app/manifests/sha256-"); n != 0 {
		t.Errorf("signing against a registry with the referrers API read the tag schema %d times", n)
	}
	req := &policy.SigstoreSigned{KeyPath: "/k.pub", SignedIdentity: matchRepository()}
	if code, detail := verifyCode(t, v, reg.host+"/ref/app:1", desc.Digest, req); code != "" {
		t.Fatalf("referrer signature refused: %s %s", code, detail)
	}
	if reg.count("GET /v2/ref/app/referrers/") == 0 {
		t.Error("the referrers API was not used")
	}
}

// TestVerifyKeyTypes: ECDSA, RSA and ed25519 public keys, given as files
// or inline data.
func TestVerifyKeyTypes(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t, false)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for name, key := range map[string]crypto.Signer{"ecdsa-p384": ecKey, "rsa": rsaKey, "ed25519": edKey} {
		t.Run(name, func(t *testing.T) {
			sv, err := signature.LoadSignerVerifier(key, crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			pubPEM, _ := cryptoutils.MarshalPublicKeyToPEM(key.Public())
			repo := "types/" + name
			desc := reg.pushRandom(t, repo+":1")
			pl := simplePayload(t, reg.host+"/"+repo, desc.Digest, reg.host+"/"+repo+":1")
			raw, err := sv.SignMessage(strings.NewReader(string(pl)))
			if err != nil {
				t.Fatal(err)
			}
			sig, _ := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw))
			attach(t, reg.repo(t, repo), desc.Digest, sig)
			v := NewSigstoreVerifier(NewRegistryLocator(newClient(), nil))
			for _, req := range []*policy.SigstoreSigned{
				{KeyData: pubPEM},
				{KeyDatas: [][]byte{pubPEM}},
			} {
				if code, detail := verifyCode(t, v, reg.host+"/"+repo+":1", desc.Digest, req); code != "" {
					t.Errorf("%s key refused: %s %s", name, code, detail)
				}
			}
		})
	}
}

// TestVerifyPKI: a CA generated here certifies a leaf with an email SAN.
func TestVerifyPKI(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t, false)
	ca := newTestCA(t, "Sigil Test Root")
	otherCA := newTestCA(t, "Another Root")
	files := map[string][]byte{"/ca.pem": ca.pem, "/other-ca.pem": otherCA.pem}
	v := NewSigstoreVerifier(NewRegistryLocator(newClient(), nil), WithReadFile(mapFiles(files)))
	key, _ := newKeySigner(t)
	keyPub := key.PublicKeyPEM()

	signed := func(t *testing.T, repo string, o leafOptions, byCA *testCA) digest.Digest {
		desc := reg.pushRandom(t, repo+":1")
		_, certPEM, sv := byCA.leaf(t, o)
		pl := simplePayload(t, reg.host+"/"+repo, desc.Digest, reg.host+"/"+repo)
		attach(t, reg.repo(t, repo), desc.Digest, certSignature(t, pl, sv, certPEM, nil, nil))
		return desc.Digest
	}
	pki := func(roots, email, host string) *policy.SigstoreSigned {
		return &policy.SigstoreSigned{PKI: &policy.PKI{CARootsPath: roots, SubjectEmail: email, SubjectHostname: host}}
	}
	cases := []struct {
		name string
		opts leafOptions
		ca   *testCA
		req  *policy.SigstoreSigned
		want policy.ReasonCode
	}{
		{"accepted", leafOptions{email: "dev@example.com"}, ca, pki("/ca.pem", "dev@example.com", ""), ""},
		{"hostname", leafOptions{dns: "ci.example.com"}, ca, pki("/ca.pem", "", "ci.example.com"), ""},
		{"other-ca", leafOptions{email: "dev@example.com"}, otherCA, pki("/ca.pem", "dev@example.com", ""), policy.ReasonCertificateUntrusted},
		{"other-email", leafOptions{email: "mallory@example.com"}, ca, pki("/ca.pem", "dev@example.com", ""), policy.ReasonIdentityMismatch},
		{"expired", leafOptions{email: "dev@example.com", notBefore: time.Now().Add(-2 * time.Hour), notAfter: time.Now().Add(-time.Hour)}, ca, pki("/ca.pem", "dev@example.com", ""), policy.ReasonCertificateUntrusted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := "pki/" + c.name
			d := signed(t, repo, c.opts, c.ca)
			got, detail := verifyCode(t, v, reg.host+"/"+repo+"@"+d.String(), d, c.req)
			if got != c.want {
				t.Errorf("VerifySigstore = %q, want %q\n%s", got, c.want, detail)
			}
		})
	}
	t.Run("no-certificate", func(t *testing.T) {
		repo := "pki/nocert"
		desc := reg.pushRandom(t, repo+":1")
		if _, err := Sign(context.Background(), reg.repo(t, repo), reg.host+"/"+repo, desc, key, SignOptions{}); err != nil {
			t.Fatal(err)
		}
		_ = keyPub
		got, detail := verifyCode(t, v, reg.host+"/"+repo+":1", desc.Digest, pki("/ca.pem", "dev@example.com", ""))
		if got != policy.ReasonCertificateUntrusted {
			t.Errorf("VerifySigstore = %q, want %q\n%s", got, policy.ReasonCertificateUntrusted, detail)
		}
	})
}

// TestVerifyFulcioRekor: a Fulcio-like CA and a Rekor log made here; the
// certificate has expired by now but was valid when the log integrated
// the signature, which is what the offline SET check proves.
func TestVerifyFulcioRekor(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t, false)
	ca := newTestCA(t, "Test Fulcio")
	rekor := newTestRekor(t)
	otherRekor := newTestRekor(t)
	files := map[string][]byte{"/fulcio.pem": ca.pem, "/rekor.pub": rekor.pem, "/other-rekor.pub": otherRekor.pem}
	v := NewSigstoreVerifier(NewRegistryLocator(newClient(), nil), WithReadFile(mapFiles(files)))
	signedAt := time.Now().Add(-30 * time.Minute)
	leafOpts := leafOptions{email: "dev@example.com", oidcIssuer: "https://issuer.example.com", notBefore: signedAt.Add(-time.Minute), notAfter: signedAt.Add(9 * time.Minute)}

	sign := func(t *testing.T, repo string, withRekor bool, when time.Time) digest.Digest {
		desc := reg.pushRandom(t, repo+":1")
		_, certPEM, sv := ca.leaf(t, leafOpts)
		pl := simplePayload(t, reg.host+"/"+repo, desc.Digest, reg.host+"/"+repo)
		var rb func(string) *cbundleRekor
		if withRekor {
			rb = func(b64 string) *cbundleRekor { return rekor.bundle(t, pl, b64, certPEM, when) }
		}
		attach(t, reg.repo(t, repo), desc.Digest, certSignature(t, pl, sv, certPEM, nil, rb))
		return desc.Digest
	}
	fulcio := func(rekorKey, issuer string) *policy.SigstoreSigned {
		return &policy.SigstoreSigned{
			Fulcio:             &policy.Fulcio{CAPath: "/fulcio.pem", OIDCIssuer: issuer, SubjectEmail: "dev@example.com"},
			RekorPublicKeyPath: rekorKey,
			SignedIdentity:     matchRepository(),
		}
	}
	cases := []struct {
		name      string
		withRekor bool
		when      time.Time
		req       *policy.SigstoreSigned
		want      policy.ReasonCode
	}{
		{"accepted", true, signedAt, fulcio("/rekor.pub", "https://issuer.example.com"), ""},
		{"other-issuer", true, signedAt, fulcio("/rekor.pub", "https://accounts.google.com"), policy.ReasonIdentityMismatch},
		{"other-rekor-key", true, signedAt, fulcio("/other-rekor.pub", "https://issuer.example.com"), policy.ReasonSignatureInvalid},
		{"no-rekor-entry", false, signedAt, fulcio("/rekor.pub", "https://issuer.example.com"), policy.ReasonSignatureInvalid},
		{"logged-after-expiry", true, time.Now(), fulcio("/rekor.pub", "https://issuer.example.com"), policy.ReasonCertificateUntrusted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := "fulcio/" + c.name
			d := sign(t, repo, c.withRekor, c.when)
			got, detail := verifyCode(t, v, reg.host+"/"+repo+":1", d, c.req)
			if got != c.want {
				t.Errorf("VerifySigstore = %q, want %q\n%s", got, c.want, detail)
			}
		})
	}
}

// TestVerifyCache: an acceptance is cached; the cache is keyed by the
// policy's digest, the key material and the name, and is not consulted
// for a write-only cache.
func TestVerifyCache(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t, false)
	signer, pub := newKeySigner(t)
	_, otherPub := newKeySigner(t)
	files := map[string][]byte{"/k.pub": pub}
	dir := t.TempDir()
	ctx := context.Background()
	desc := reg.pushRandom(t, "cache/app:1")
	if _, err := Sign(ctx, reg.repo(t, "cache/app"), reg.host+"/cache/app:1", desc, signer, SignOptions{}); err != nil {
		t.Fatal(err)
	}
	req := &policy.SigstoreSigned{KeyPath: "/k.pub", SignedIdentity: matchRepository()}
	ref := reg.host + "/cache/app:1"
	verifier := func(c *verdicts.Cache) *SigstoreVerifier {
		return NewSigstoreVerifier(NewRegistryLocator(newClient(), nil), WithReadFile(mapFiles(files)), WithVerdictCache(c))
	}
	sigReads := func() int { return reg.count("GET /v2/cache/app/manifests/sha256-") }

	cache := verdicts.New(dir, digest.FromString("policy v1"))
	if _, err := verifier(cache).VerifySigstore(ctx, ref, desc.Digest, req); err != nil {
		t.Fatal(err)
	}
	before := sigReads()
	s, err := verifier(cache).VerifySigstore(ctx, ref, desc.Digest, req)
	if err != nil || s.KeyID != signer.KeyID() {
		t.Fatalf("cached verify = %+v, %v", s, err)
	}
	if sigReads() != before {
		t.Error("a cached verdict read the registry")
	}

	// The cache-only Lookup (what the runtime shim judges stored images
	// with) finds exactly what the full verifier cached, and nothing once
	// the policy or a key file differs.
	lookup := func(c *verdicts.Cache) (*policy.Signer, error) {
		return (&verdicts.Lookup{Cache: c, ReadFile: mapFiles(files)}).VerifySigstore(ctx, ref, desc.Digest, req)
	}
	if s, err := lookup(cache); err != nil || s.KeyID != signer.KeyID() {
		t.Errorf("Lookup of what SigstoreVerifier cached = %+v, %v", s, err)
	}
	if _, err := lookup(verdicts.New(dir, digest.FromString("policy v2"))); !errors.Is(err, verdicts.ErrNotCached) {
		t.Errorf("Lookup under another policy = %v, want ErrNotCached", err)
	}
	if _, err := lookup(nil); !errors.Is(err, verdicts.ErrNotCached) {
		t.Errorf("Lookup without a cache = %v, want ErrNotCached", err)
	}
	files["/k.pub"] = append(append([]byte{}, pub...), otherPub...)
	if _, err := lookup(cache); !errors.Is(err, verdicts.ErrNotCached) {
		t.Errorf("Lookup after the key file changed = %v, want ErrNotCached", err)
	}
	files["/k.pub"] = pub

	for name, c := range map[string]struct {
		cache *verdicts.Cache
		ref   string
		mod   func()
	}{
		"policy-changed":  {cache: verdicts.New(dir, digest.FromString("policy v2")), ref: ref},
		"other-name":      {cache: cache, ref: reg.host + "/cache/app:2"},
		"write-only":      {cache: cache.WriteOnly(), ref: ref},
		"key-file-edited": {cache: cache, ref: ref, mod: func() { files["/k.pub"] = append(append([]byte{}, pub...), otherPub...) }},
	} {
		if c.mod != nil {
			c.mod()
		}
		before := sigReads()
		if _, err := verifier(c.cache).VerifySigstore(ctx, c.ref, desc.Digest, req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if sigReads() == before {
			t.Errorf("%s: the cached verdict was used", name)
		}
		files["/k.pub"] = pub
	}
	if verdicts.New(dir, "") != nil {
		t.Error("a policy without a digest got a cache")
	}
}

func TestSignIdempotentAndAppends(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t, false)
	a, _ := newKeySigner(t)
	b, _ := newKeySigner(t)
	ctx := context.Background()
	desc := reg.pushRandom(t, "multi/app:1")
	repo := reg.repo(t, "multi/app")
	ident := reg.host + "/multi/app:1"
	for i, s := range []*KeySigner{a, a, b} {
		res, err := Sign(ctx, repo, ident, desc, s, SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := i == 1; res.Unchanged != want {
			t.Errorf("sign #%d: Unchanged = %v, want %v", i, res.Unchanged, want)
		}
	}
	sigs, err := readSignatureLayers(ctx, repo, SignatureTag(desc.Digest))
	if err != nil || len(sigs) != 2 {
		t.Fatalf("signature layers = %d, %v; want 2 (one per key)", len(sigs), err)
	}
}

func TestLoadKeySignerWrongPassword(t *testing.T) {
	t.Parallel()
	priv, _, err := GenerateKeyPair([]byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeySigner(priv, []byte("wrong")); !errors.Is(err, ErrKeyDecrypt) {
		t.Errorf("LoadKeySigner(wrong password) = %v, want ErrKeyDecrypt", err)
	}
	if strings.Contains(string(priv), "PRIVATE KEY-----") && !strings.Contains(string(priv), "ENCRYPTED SIGSTORE PRIVATE KEY") {
		t.Errorf("private key is not in cosign's encrypted format:\n%s", priv)
	}
}

func TestClaims(t *testing.T) {
	t.Parallel()
	d := digest.FromString("image")
	cases := []struct {
		name    string
		c       candidate
		want    []subject
		wantErr string
	}{
		{"simple-signing", candidate{format: formatSimpleSigning, payload: []byte(`{"critical":{"identity":{"docker-reference":"r.io/a/b:1"},"image":{"docker-manifest-digest":"` + d.String() + `"},"type":"cosign container image signature"},"optional":null}`)},
			[]subject{{digest: d, identity: "r.io/a/b:1"}}, ""},
		{"wrong-type", candidate{format: formatSimpleSigning, payload: []byte(`{"critical":{"identity":{"docker-reference":"r.io/a/b"},"image":{"docker-manifest-digest":"` + d.String() + `"},"type":"atomic container signature"}}`)},
			nil, "payload type"},
		{"bad-digest", candidate{format: formatSimpleSigning, payload: []byte(`{"critical":{"identity":{"docker-reference":"r.io/a/b"},"image":{"docker-manifest-digest":"sha256:zz"},"type":"cosign container image signature"}}`)},
			nil, "docker-manifest-digest"},
		{"not-json", candidate{format: formatSimpleSigning, payload: []byte(`{`)}, nil, "not a simple-signing"},
		{"in-toto", candidate{format: formatBundle, payload: []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"r.io/a/b","digest":{"sha256":"` + d.Encoded() + `"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1"}`)},
			[]subject{{digest: d, identity: "r.io/a/b"}}, ""},
		{"in-toto-provenance", candidate{format: formatBundle, payload: []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + d.Encoded() + `"}}],"predicateType":"https://slsa.dev/provenance/v1"}`)},
			nil, "not a cosign image signature"},
	}
	for _, c := range cases {
		got, err := c.c.claims()
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: claims() error = %v, want one containing %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0] != c.want[0] {
			t.Errorf("%s: claims() = %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestSignatureTag(t *testing.T) {
	d := digest.Digest("sha256:" + strings.Repeat("ab", 32))
	if got, want := SignatureTag(d), "sha256-"+strings.Repeat("ab", 32)+".sig"; got != want {
		t.Errorf("SignatureTag = %s, want %s", got, want)
	}
}
