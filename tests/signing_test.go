package tests

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sigil-project/sigil/tests/testimage"
)

// The signing tests run the real sigil binary and the real cosign v2 CLI
// against registries on loopback. cosign is kept off the network: it
// reaches for the public TUF CDN even with --key, so every run gets a
// closed proxy and its own TUF_ROOT (see /work/shared/peers/README.md).

const testPassword = "sigil-test-password"

// cosignBinary finds cosign on PATH or where `make deps` installs it.
func cosignBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "cosign")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("cosign v2 is not installed: run 'make deps' (go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5)")
	return ""
}

// signingEnv is an env plus a working directory for keys and the cosign
// sandbox.
type signingEnv struct {
	*env
	dir    string
	cosign string
}

func newSigningEnv(t *testing.T) *signingEnv {
	t.Helper()
	e := newEnv(t)
	return &signingEnv{env: e, dir: t.TempDir(), cosign: cosignBinary(t)}
}

func (s *signingEnv) environ() []string {
	return append(os.Environ(), "SIGIL_PASSWORD="+testPassword, "COSIGN_PASSWORD="+testPassword)
}

// run runs sigil with the password in the environment.
func (s *signingEnv) run(args ...string) result {
	s.t.Helper()
	return s.sigilEnv(s.environ(), nil, args...)
}

func (s *signingEnv) mustRun(args ...string) result {
	s.t.Helper()
	r := s.run(args...)
	if r.code != 0 {
		s.t.Fatalf("sigil %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// cosignRun runs the cosign CLI sandboxed: no network but loopback.
func (s *signingEnv) cosignRun(args ...string) (string, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.cosign, args...)
	cmd.Dir = s.dir
	cmd.Env = append(s.environ(),
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1,localhost",
		"TUF_ROOT="+filepath.Join(s.dir, "tuf"), "HOME="+s.dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (s *signingEnv) mustCosign(args ...string) string {
	s.t.Helper()
	out, err := s.cosignRun(args...)
	if err != nil {
		s.t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// key makes a key pair with sigil and returns the paths of .key and .pub.
func (s *signingEnv) key(name string) (priv, pub string) {
	s.t.Helper()
	prefix := filepath.Join(s.dir, name)
	s.mustRun("key", "generate", prefix)
	return prefix + ".key", prefix + ".pub"
}

// pushBusybox pushes a distinct busybox image (its config differs by
// label) as host/repo:1 and returns the tag reference, the digest and the
// image.
func (s *signingEnv) pushBusybox(repo string) (ref string, d v1.Hash, img v1.Image) {
	s.t.Helper()
	files, err := testimage.BaseFiles()
	if err != nil {
		s.t.Fatal(err)
	}
	l, err := testimage.Layer(files...)
	if err != nil {
		s.t.Fatal(err)
	}
	img, err = testimage.Build(testimage.OCI, testimage.Config{Cmd: []string{"sh"}, Env: []string{"IMAGE=" + repo}}, "amd64", l)
	if err != nil {
		s.t.Fatal(err)
	}
	ref = s.reg.Host + "/" + repo + ":1"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err = testimage.Push(ctx, ref, img)
	if err != nil {
		s.t.Fatal(err)
	}
	return ref, d, img
}

// verifyJSON runs sigil verify -o json and decodes its report.
type verifyOut struct {
	Image    string `json:"image"`
	Digest   string `json:"digest"`
	Scope    string `json:"scope"`
	Accepted bool   `json:"accepted"`
	Code     string `json:"code"`
	Error    string `json:"error"`
	Signers  []struct {
		Key            string `json:"key"`
		KeyID          string `json:"keyID"`
		Subject        string `json:"subject"`
		SignedIdentity string `json:"signedIdentity"`
	} `json:"signers"`
}

func (s *signingEnv) verifyJSON(args ...string) (verifyOut, result) {
	s.t.Helper()
	r := s.run(append([]string{"verify", "-o", "json"}, args...)...)
	var v verifyOut
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		s.t.Fatalf("sigil verify -o json %v: %v\n%s", args, err, r)
	}
	return v, r
}

func TestSigningCosignSignedAcceptedByVerifyAndRun(t *testing.T) {
	s := newSigningEnv(t)
	ref, d, _ := s.pushBusybox("signed/cosign")
	s.mustCosign("generate-key-pair")
	s.mustCosign("sign", "--yes", "--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry", s.reg.Host+"/signed/cosign@"+d.String())
	s.mustRun("trust", "add", "--scope", s.reg.Host+"/signed", "--key", filepath.Join(s.dir, "cosign.pub"))

	r := s.mustRun("verify", ref)
	for _, want := range []string{d.String(), `scope "` + s.reg.Host + `/signed"`, filepath.Join(s.dir, "cosign.pub"), "Verdict:  accepted"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sigil verify %s output lacks %q:\n%s", ref, want, r.stdout)
		}
	}
	v, _ := s.verifyJSON(ref)
	if !v.Accepted || v.Digest != d.String() || len(v.Signers) != 1 || v.Signers[0].SignedIdentity != s.reg.Host+"/signed/cosign" {
		t.Errorf("verify -o json = %+v, want accepted, digest %s, signed as the repository", v, d)
	}
	if r := s.run("run", "--rm", "-q", ref, "true"); r.code != 0 {
		t.Fatalf("sigil run of a cosign-signed image: %s", r)
	}
	// Explain replays the steps, naming the tag it read.
	r = s.mustRun("verify", "--explain", ref)
	if !strings.Contains(r.stdout, "sha256-"+d.Hex+".sig") || !strings.Contains(r.stdout, "verdict: accepted") {
		t.Errorf("verify --explain:\n%s", r.stdout)
	}
}

func TestSigningSigilSignVerifiedByCosign(t *testing.T) {
	s := newSigningEnv(t)
	ref, d, _ := s.pushBusybox("signed/sigil")
	priv, pub := s.key("team")
	r := s.mustRun("sign", "--key", priv, ref)
	if strings.TrimSpace(r.stdout) != d.String() {
		t.Errorf("sigil sign printed %q, want the digest %s", r.stdout, d)
	}
	out := s.mustCosign("verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", ref)
	if !strings.Contains(out, d.String()) {
		t.Errorf("cosign verify output lacks the digest:\n%s", out)
	}
	// The key format is cosign's both ways: cosign signs with sigil's key.
	ref2, d2, _ := s.pushBusybox("signed/sigil-key-by-cosign")
	s.mustCosign("sign", "--yes", "--key", priv, "--tlog-upload=false", "--allow-http-registry", s.reg.Host+"/signed/sigil-key-by-cosign@"+d2.String())
	if v, r := s.verifyJSON("--key", pub, ref2); !v.Accepted {
		t.Errorf("sigil verify --key of cosign's signature with sigil's key: %s", r)
	}
	// Signing again with the same key pushes nothing new.
	if r := s.mustRun("sign", "--key", priv, ref); !strings.Contains(r.stderr, "already signed") {
		t.Errorf("second sigil sign: %s", r)
	}
}

func TestSigningReferrer(t *testing.T) {
	for _, api := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrers-api=%v", api), func(t *testing.T) {
			s := newSigningEnv(t)
			if api {
				s.reg.Close()
				s.reg = testimage.NewReferrersRegistry()
				t.Cleanup(s.reg.Close)
			}
			ref, d, _ := s.pushBusybox("signed/referrer")
			priv, pub := s.key("team")
			signed := s.mustRun("sign", "--referrer", "--key", priv, ref)
			_, after, _ := strings.Cut(signed.stderr, "(referrer ")
			referrer, _, _ := strings.Cut(after, ")")
			if !strings.HasPrefix(referrer, "sha256:") {
				t.Fatalf("sigil sign --referrer does not name the referrer: %s", signed)
			}
			if n := s.reg.Count("PUT", "/v2/signed/referrer/manifests/sha256-"+d.Hex+".sig"); n != 0 {
				t.Errorf("--referrer pushed the .sig tag (%d times)", n)
			}
			out := s.mustCosign("tree", "--experimental-oci11", "--allow-http-registry", ref)
			// The artifact type cosign shows is the registry's (the
			// in-memory registry reports the config's); the referrer is ours.
			if !strings.Contains(out, "via OCI referrer: "+s.reg.Host+"/signed/referrer@"+referrer) {
				t.Errorf("cosign tree does not show the referrer %s:\n%s", referrer, out)
			}
			// cosign verifies bundles only against a trusted root; an empty
			// one is enough with --key, and keeps it offline.
			root := filepath.Join(s.dir, "trusted_root.json")
			if err := os.WriteFile(root, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o644); err != nil {
				t.Fatal(err)
			}
			s.mustCosign("verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", "--trusted-root", root, ref)
			s.mustRun("trust", "add", "--scope", s.reg.Host+"/signed/referrer", "--key", pub)
			if v, r := s.verifyJSON(ref); !v.Accepted {
				t.Errorf("sigil verify of the referrer signature: %s", r)
			}
			if api && s.reg.Count("GET", "/v2/signed/referrer/referrers/") == 0 {
				t.Error("sigil verify did not use the referrers API")
			}
		})
	}
}

// testPKI is a CA made by the test and a leaf for an email, as PEM files
// in dir, the leaf's key imported into cosign's format.
func (s *signingEnv) testPKI(name, email string) (caPEM, leafPEM, cosignKey string) {
	s.t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		s.t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafT := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: email},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		EmailAddresses: []string{email},
		KeyUsage:       x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, ca, &key.PublicKey, caKey)
	if err != nil {
		s.t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(file, typ string, der []byte, mode os.FileMode) string {
		p := filepath.Join(s.dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
			s.t.Fatal(err)
		}
		return p
	}
	caPEM = write(name+"-ca.pem", "CERTIFICATE", caDER, 0o644)
	leafPEM = write(name+"-leaf.pem", "CERTIFICATE", leafDER, 0o644)
	ecPEM := write(name+"-leaf-ec.pem", "EC PRIVATE KEY", keyDER, 0o600)
	s.mustCosign("import-key-pair", "--key", ecPEM, "--output-key-prefix", name+"-leaf")
	return caPEM, leafPEM, filepath.Join(s.dir, name+"-leaf.key")
}

func TestSigningPKI(t *testing.T) {
	s := newSigningEnv(t)
	ref, d, _ := s.pushBusybox("pki/app")
	caPEM, leafPEM, leafKey := s.testPKI("team", "dev@example.com")
	otherCA, _, _ := s.testPKI("other", "dev@example.com")
	s.mustCosign("sign", "--yes", "--key", leafKey, "--certificate", leafPEM, "--certificate-chain", caPEM,
		"--tlog-upload=false", "--allow-http-registry", s.reg.Host+"/pki/app@"+d.String())

	pkiPolicy := func(ca, email string) string {
		return fmt.Sprintf(`{"default":[{"type":"reject"}],"transports":{"docker":{%q:[{"type":"sigstoreSigned","pki":{"caRootsPath":%q,"subjectEmail":%q},"signedIdentity":{"type":"matchRepository"}}]}}}`,
			s.reg.Host+"/pki", ca, email)
	}
	for _, c := range []struct {
		name, ca, email, want string
	}{
		{"accepted", caPEM, "dev@example.com", ""},
		{"another-ca", otherCA, "dev@example.com", "CERTIFICATE_UNTRUSTED"},
		{"another-email", caPEM, "ops@example.com", "IDENTITY_MISMATCH"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(s.policy, []byte(pkiPolicy(c.ca, c.email)), 0o644); err != nil {
				t.Fatal(err)
			}
			v, r := s.verifyJSON(ref)
			if v.Code != c.want || v.Accepted != (c.want == "") {
				t.Fatalf("verify under pki %s = %q (accepted %v), want %q\n%s", c.name, v.Code, v.Accepted, c.want, r)
			}
			if c.want == "" && (len(v.Signers) != 1 || v.Signers[0].Subject != "dev@example.com") {
				t.Errorf("signer = %+v, want subject dev@example.com", v.Signers)
			}
		})
	}
}

// TestSigningRefusals: each image is refused by sigil verify with its
// reason code, and by sigil fetch with the same code before any of its
// blobs is requested.
func TestSigningRefusals(t *testing.T) {
	s := newSigningEnv(t)
	ctx := context.Background()
	priv, pub := s.key("trusted")
	otherPriv, _ := s.key("other")
	s.mustRun("trust", "add", "--scope", s.reg.Host+"/team", "--key", pub)
	if err := s.setScopeReject(s.reg.Host + "/team/rejected"); err != nil {
		t.Fatal(err)
	}

	type tc struct {
		repo  string
		setup func(ref string, d v1.Hash, img v1.Image)
		want  string
	}
	host := s.reg.Host
	cases := []tc{
		{"team/unsigned", func(string, v1.Hash, v1.Image) {}, "SIGNATURE_MISSING"},
		{"team/wrong-key", func(ref string, _ v1.Hash, _ v1.Image) { s.mustRun("sign", "--key", otherPriv, ref) }, "KEY_UNTRUSTED"},
		{"team/tampered", func(ref string, d v1.Hash, _ v1.Image) {
			s.mustRun("sign", "--key", priv, ref)
			err := testimage.RewriteSignatures(ctx, host+"/team/tampered", d, host+"/team/tampered", d, func(p []byte) []byte {
				return bytes.Replace(p, []byte(`"optional":null`), []byte(`"optional":{"approved":"yes"}`), 1)
			})
			if err != nil {
				t.Fatal(err)
			}
		}, "SIGNATURE_INVALID"},
		{"team/copied", func(_ string, d v1.Hash, _ v1.Image) {
			// A validly signed image in the same repository lends its
			// signature to this one.
			_, otherD, _ := s.pushBusybox("team/copied-source")
			s.mustRun("sign", "--key", priv, host+"/team/copied-source@"+otherD.String())
			if err := testimage.RewriteSignatures(ctx, host+"/team/copied-source", otherD, host+"/team/copied", d, func(p []byte) []byte { return p }); err != nil {
				t.Fatal(err)
			}
		}, "SIGNATURE_INVALID"},
		{"team/elsewhere", func(_ string, d v1.Hash, img v1.Image) {
			// The same image, signed as team/original, copied here with
			// its signature.
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if _, err := testimage.Push(pctx, host+"/team/original:1", img); err != nil {
				t.Fatal(err)
			}
			s.mustRun("sign", "--key", priv, host+"/team/original@"+d.String())
			if err := testimage.RewriteSignatures(ctx, host+"/team/original", d, host+"/team/elsewhere", d, func(p []byte) []byte { return p }); err != nil {
				t.Fatal(err)
			}
		}, "IDENTITY_MISMATCH"},
		{"team/rejected", func(ref string, _ v1.Hash, _ v1.Image) { s.mustRun("sign", "--key", priv, ref) }, "POLICY_REJECT"},
	}
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.repo, "team/"), func(t *testing.T) {
			ref, d, img := s.pushBusybox(c.repo)
			c.setup(ref, d, img)
			blobs, err := testimage.BlobPaths(c.repo, img)
			if err != nil {
				t.Fatal(err)
			}
			s.reg.Reset()
			v, r := s.verifyJSON(ref)
			if v.Accepted || v.Code != c.want || r.code != 125 {
				t.Fatalf("verify = %q (accepted %v, exit %d), want %q and exit 125\n%s", v.Code, v.Accepted, r.code, c.want, r)
			}
			for _, want := range []string{d.String(), c.want, "scope"} {
				if !strings.Contains(v.Error, want) || !strings.Contains(r.stderr, want) {
					t.Errorf("refusal does not name %q in JSON and on stderr:\n%s", want, r)
				}
			}
			f := s.run("fetch", "-q", ref)
			if f.code != 125 || !strings.Contains(f.stderr, c.want) || !strings.Contains(f.stderr, d.String()) {
				t.Errorf("fetch = %s, want exit 125 naming %s and the digest", f, c.want)
			}
			for _, b := range blobs {
				if n := s.reg.Count("GET", b); n != 0 {
					t.Errorf("blob %s was requested %d times for a refused image", b, n)
				}
			}
		})
	}
}

// setScopeReject adds a reject scope to the policy file, as an
// administrator would by hand.
func (s *signingEnv) setScopeReject(scope string) error {
	b, err := os.ReadFile(s.policy)
	if err != nil {
		return err
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	docker := p["transports"].(map[string]any)["docker"].(map[string]any)
	docker[scope] = []any{map[string]any{"type": "reject"}}
	out, _ := json.Marshal(p)
	return os.WriteFile(s.policy, out, 0o644)
}

// TestSigningKeyRotation: a new key is added, images are re-signed, the
// old key is removed; an image signed only by the old key is then refused,
// even though it is stored and its acceptance was cached.
func TestSigningKeyRotation(t *testing.T) {
	s := newSigningEnv(t)
	oldPriv, oldPub := s.key("old")
	newPriv, newPub := s.key("new")
	scope := s.reg.Host + "/rot"
	s.mustRun("trust", "add", "--scope", scope, "--key", oldPub)
	kept, _, _ := s.pushBusybox("rot/resigned")
	stale, _, _ := s.pushBusybox("rot/stale")
	for _, ref := range []string{kept, stale} {
		s.mustRun("sign", "--key", oldPriv, ref)
		s.mustRun("fetch", "-q", ref)
	}
	s.mustRun("trust", "add", "--scope", scope, "--key", newPub)
	list := s.mustRun("trust", "list")
	if !strings.Contains(list.stdout, oldPub) || !strings.Contains(list.stdout, newPub) {
		t.Errorf("trust list during rotation lacks a key:\n%s", list.stdout)
	}
	s.mustRun("sign", "--key", newPriv, kept)
	s.mustRun("trust", "rm", scope, "--key", oldPub)

	if v, r := s.verifyJSON(kept); !v.Accepted {
		t.Errorf("re-signed image refused after rotation: %s", r)
	}
	if v, r := s.verifyJSON(stale); v.Code != "KEY_UNTRUSTED" {
		t.Errorf("image signed only by the rotated-out key: %q, want KEY_UNTRUSTED\n%s", v.Code, r)
	}
	// The stored image is judged again by the new policy before it runs.
	r := s.run("run", "--rm", "-q", "--pull", "never", stale, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "KEY_UNTRUSTED") {
		t.Errorf("run of a stored image whose key was rotated out = %s, want exit 125 KEY_UNTRUSTED", r)
	}
	if r := s.run("run", "--rm", "-q", "--pull", "never", kept, "true"); r.code != 0 {
		t.Errorf("run of the re-signed stored image: %s", r)
	}
	if r := s.run("trust", "rm", scope); r.code != 0 {
		t.Errorf("trust rm %s: %s", scope, r)
	}
}

// TestSigningCachedRun: once an image is accepted, a warm run uses the
// cached verdict and asks the registry nothing; a policy change drops it.
func TestSigningCachedRun(t *testing.T) {
	s := newSigningEnv(t)
	priv, pub := s.key("k")
	ref, d, _ := s.pushBusybox("cache/app")
	s.mustRun("trust", "add", "--scope", s.reg.Host+"/cache", "--key", pub)
	s.mustRun("sign", "--key", priv, ref)
	s.mustRun("fetch", "-q", ref)
	s.reg.Reset()
	if r := s.run("run", "--rm", "-q", ref, "true"); r.code != 0 {
		t.Fatal(r)
	}
	if n := s.reg.Count("GET", "/v2/"); n != 0 {
		t.Errorf("a warm run with a cached verdict made %d registry requests", n)
	}
	// Editing the policy (here: a second, unrelated scope) invalidates it.
	_, pub2 := s.key("k2")
	s.mustRun("trust", "add", "--scope", s.reg.Host+"/elsewhere", "--key", pub2)
	if r := s.run("run", "--rm", "-q", ref, "true"); r.code != 0 {
		t.Fatal(r)
	}
	if n := s.reg.Count("GET", "/v2/cache/app/manifests/sha256-"+d.Hex+".sig"); n != 1 {
		t.Errorf("after a policy change the signatures were read %d times, want 1", n)
	}
}
