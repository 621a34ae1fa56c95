package signing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/empty"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/sigil-project/sigil/runtime/remote"
)

// testRegistry is go-containerregistry's in-memory registry on loopback,
// counting requests.
type testRegistry struct {
	host string
	mu   sync.Mutex
	reqs []string
}

func newTestRegistry(t testing.TB, referrers bool) *testRegistry {
	t.Helper()
	r := &testRegistry{}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(referrers))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func (r *testRegistry) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.reqs {
		if strings.HasPrefix(q, prefix) {
			n++
		}
	}
	return n
}

// pushRandom pushes a random image as repo:tag and returns its descriptor.
func (r *testRegistry) pushRandom(t testing.TB, repo string) ocispec.Descriptor {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(r.host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := ggcrremote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	return ocispec.Descriptor{MediaType: string(mt), Digest: digest.Digest(d.String()), Size: int64(len(raw))}
}

func (r *testRegistry) repo(t testing.TB, repository string) *remote.Repository {
	t.Helper()
	rp, err := remote.NewClient().Repository(context.Background(), remote.Endpoint{Registry: r.host, Repository: repository}, "pull", "push")
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

func newKeySigner(t testing.TB) (*KeySigner, []byte) {
	t.Helper()
	priv, pub, err := GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadKeySigner(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	return s, pub
}

// attach appends a hand-made signature to the tag scheme, as an attacker
// or another tool could.
func attach(t testing.TB, p Pusher, d digest.Digest, sig oci.Signature) {
	t.Helper()
	ctx := context.Background()
	tag := SignatureTag(d)
	existing, err := readSignatureLayers(ctx, p, tag)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := mutate.AppendSignatures(empty.Signatures(), false, append(existing, sig)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := pushImage(ctx, p, tag, sigs); err != nil {
		t.Fatal(err)
	}
}

// simplePayload is cosign's payload for repo@d claiming identity.
func simplePayload(t testing.TB, repo string, d digest.Digest, identity string) []byte {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	b, err := payload.Cosign{Image: r.Digest(d.String()), ClaimedIdentity: identity}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testCA is a CA made in the test, as dist's token tests do.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"sigil test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p, _ := cryptoutils.MarshalCertificateToPEM(cert)
	return &testCA{cert: cert, key: key, pem: p}
}

// leafOptions shape a code-signing leaf certificate.
type leafOptions struct {
	email, dns, oidcIssuer string
	notBefore, notAfter    time.Time
}

// leaf issues a code-signing certificate and returns it with its key.
func (ca *testCA) leaf(t testing.TB, o leafOptions) (*x509.Certificate, []byte, signature.SignerVerifier) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if o.notBefore.IsZero() {
		o.notBefore, o.notAfter = time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "signer"},
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	if o.email != "" {
		tmpl.EmailAddresses = []string{o.email}
	}
	if o.dns != "" {
		tmpl.DNSNames = []string{o.dns}
	}
	if o.oidcIssuer != "" {
		v, _ := asn1.Marshal(o.oidcIssuer)
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidIssuerV2, Value: v}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p, _ := cryptoutils.MarshalCertificateToPEM(cert)
	sv, err := signature.LoadECDSASignerVerifier(key, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return cert, p, sv
}

// testRekor signs entry timestamps like a Rekor log, offline.
type testRekor struct {
	key *ecdsa.PrivateKey
	pem []byte
}

func newTestRekor(t testing.TB) *testRekor {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cryptoutils.MarshalPublicKeyToPEM(&key.PublicKey)
	return &testRekor{key: key, pem: p}
}

// bundle makes the Rekor bundle of a hashedrekord entry for (payload,
// signature, signer PEM) integrated at when.
func (r *testRekor) bundle(t testing.TB, pl []byte, b64sig string, signerPEM []byte, when time.Time) *cbundle.RekorBundle {
	t.Helper()
	sum := sha256.Sum256(pl)
	body := map[string]any{
		"apiVersion": "0.0.1",
		"kind":       "hashedrekord",
		"spec": map[string]any{
			"data": map[string]any{"hash": map[string]any{"algorithm": "sha256", "value": hexString(sum[:])}},
			"signature": map[string]any{
				"content":   b64sig,
				"publicKey": map[string]any{"content": base64.StdEncoding.EncodeToString(signerPEM)},
			},
		},
	}
	bodyJSON, _ := json.Marshal(body)
	logID, err := cosign.GetTransparencyLogID(&r.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rp := cbundle.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(bodyJSON),
		IntegratedTime: when.Unix(),
		LogIndex:       42,
		LogID:          logID,
	}
	contents, _ := json.Marshal(rp)
	canon, err := jsoncanonicalizer.Transform(contents)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(canon)
	set, err := ecdsa.SignASN1(rand.Reader, r.key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return &cbundle.RekorBundle{SignedEntryTimestamp: set, Payload: rp}
}

type cbundleRekor = cbundle.RekorBundle

func newClient() *remote.Client { return remote.NewClient() }

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// certSignature signs pl with sv and wraps it with its certificate (and an
// optional Rekor bundle), as cosign does for keyless signatures.
func certSignature(t testing.TB, pl []byte, sv signature.SignerVerifier, certPEM, chainPEM []byte, rb func(b64 string) *cbundle.RekorBundle) oci.Signature {
	t.Helper()
	raw, err := sv.SignMessage(strings.NewReader(string(pl)))
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	opts := []static.Option{static.WithCertChain(certPEM, chainPEM)}
	if rb != nil {
		opts = append(opts, static.WithBundle(rb(b64)))
	}
	sig, err := static.NewSignature(pl, b64, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// mapFiles serves policy files from memory.
func mapFiles(files map[string][]byte) ReadFileFunc {
	return func(p string) ([]byte, error) {
		if b, ok := files[p]; ok {
			return b, nil
		}
		return nil, &fileNotFound{p}
	}
}

type fileNotFound struct{ path string }

func (e *fileNotFound) Error() string { return "open " + e.path + ": no such file" }
