package auth_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dauth "github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/sirupsen/logrus"

	"github.com/sigil-project/sigil/auth"
)

var aliceAccess = []auth.ResourceActions{{Type: "repository", Name: "team-a/app", Actions: []string{"pull", "push"}}}

func TestTokenAcceptedByDistribution(t *testing.T) {
	ti := newIssuer(t, auth.TokenOptions{})
	ac := distributionVerifier(t, ti.Issuer(), ti.Service(), ti.RootCertBundle())
	tok, exp, err := ti.Issue(&auth.Identity{Name: "alice"}, aliceAccess)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 4*time.Minute || d > 5*time.Minute {
		t.Errorf("token expires in %s, want the default 5m", d)
	}
	for _, tc := range []struct {
		repo    string
		actions []string
		ok      bool
	}{
		{"team-a/app", []string{"pull"}, true},
		{"team-a/app", []string{"pull", "push"}, true},
		{"team-a/app", []string{"delete"}, false},
		{"team-a/other", []string{"pull"}, false},
		{"team-a/app", nil, true}, // GET /v2/: any valid token
	} {
		err := authorize(ac, tok, tc.repo, tc.actions...)
		if (err == nil) != tc.ok {
			t.Errorf("distribution Authorized(%s %q) = %v, want ok=%v", tc.repo, tc.actions, err, tc.ok)
		}
	}
	if err := authorize(distributionJWKSVerifier(t, ti), tok, "team-a/app", "push"); err != nil {
		t.Errorf("distribution with the JWKS refused the token: %v", err)
	}
	claims, err := ti.VerifyAccess(tok)
	if err != nil || claims.Subject != "alice" || len(claims.Access) != 1 {
		t.Errorf("VerifyAccess = %+v, %v", claims, err)
	}
}

func TestTokenRefusedByDistribution(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "token.key")
	good := newIssuer(t, auth.TokenOptions{KeyFile: key})
	ac := distributionVerifier(t, good.Issuer(), good.Service(), good.RootCertBundle())
	// distribution says why only in its log.
	var why bytes.Buffer
	logrus.SetOutput(&why)
	t.Cleanup(func() { logrus.SetOutput(os.Stderr) })
	for _, tc := range []struct {
		name string
		ti   *auth.TokenIssuer
		why  string
	}{
		{"another audience", newIssuer(t, auth.TokenOptions{KeyFile: key, CertFile: filepath.Join(dir, "b.crt"), Service: "other-registry"}), "another audience"},
		{"another issuer", newIssuer(t, auth.TokenOptions{KeyFile: key, CertFile: filepath.Join(dir, "c.crt"), Issuer: "mallory"}), "untrusted issuer"},
		{"expired beyond the leeway", newIssuer(t, auth.TokenOptions{KeyFile: key, CertFile: filepath.Join(dir, "d.crt"),
			Now: func() time.Time { return time.Now().Add(-7 * time.Minute) }}), "not to be used after"},
		{"not yet valid beyond the leeway", newIssuer(t, auth.TokenOptions{KeyFile: key, CertFile: filepath.Join(dir, "e.crt"),
			Now: func() time.Time { return time.Now().Add(3 * time.Minute) }}), "not to be used before"},
		{"another key", newIssuer(t, auth.TokenOptions{}), "untrusted key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, _, err := tc.ti.Issue(&auth.Identity{Name: "alice"}, aliceAccess)
			if err != nil {
				t.Fatal(err)
			}
			why.Reset()
			if err := authorize(ac, tok, "team-a/app", "pull"); err == nil {
				t.Error("distribution accepted the token")
			}
			if !strings.Contains(why.String(), tc.why) {
				t.Errorf("distribution refused it for another reason: %s, want %q", why.String(), tc.why)
			}
		})
	}
	// The control: the good issuer's token passes the same check.
	tok, _, _ := good.Issue(&auth.Identity{Name: "alice"}, aliceAccess)
	if err := authorize(ac, tok, "team-a/app", "pull"); err != nil {
		t.Errorf("good token refused: %v", err)
	}
}

func TestTokenKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "keys", "token.key")
	first := newIssuer(t, auth.TokenOptions{KeyFile: key})
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatalf("key not created: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode = %o, want 600", fi.Mode().Perm())
	}
	if want := filepath.Join(dir, "keys", "token.crt"); first.RootCertBundle() != want {
		t.Errorf("RootCertBundle = %s, want %s", first.RootCertBundle(), want)
	}
	cert1, err := os.ReadFile(first.RootCertBundle())
	if err != nil {
		t.Fatal(err)
	}

	// A restart (or a replica) uses the same key and certificate: tokens
	// of one are accepted with the other's bundle.
	second := newIssuer(t, auth.TokenOptions{KeyFile: key})
	cert2, _ := os.ReadFile(second.RootCertBundle())
	if string(cert1) != string(cert2) {
		t.Error("certificate rewritten on restart")
	}
	ac := distributionVerifier(t, second.Issuer(), second.Service(), second.RootCertBundle())
	tok, _, _ := first.Issue(&auth.Identity{Name: "alice"}, aliceAccess)
	if err := authorize(ac, tok, "team-a/app", "push"); err != nil {
		t.Errorf("token of the first instance refused after restart: %v", err)
	}

	// A certificate for another key is replaced.
	if err := os.WriteFile(first.RootCertBundle(), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	third := newIssuer(t, auth.TokenOptions{KeyFile: key})
	ac = distributionVerifier(t, third.Issuer(), third.Service(), third.RootCertBundle())
	if err := authorize(ac, tok, "team-a/app", "push"); err != nil {
		t.Errorf("token refused after the certificate was rewritten: %v", err)
	}
}

func TestTokenKeyTypes(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	weakRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	pkcs8 := func(k crypto.Signer) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, _ := x509.MarshalECPrivateKey(p384)
	for _, tc := range []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{"RSA PKCS#1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), ""},
		{"RSA PKCS#8", pkcs8(rsaKey), ""},
		{"ECDSA P-384 SEC 1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), ""},
		{"Ed25519", pkcs8(edKey), ""},
		{"weak RSA", pkcs8(weakRSA), "too weak"},
		{"not PEM", []byte("hello"), "no PEM private key"},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), "encrypted"},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "move it away"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := filepath.Join(t.TempDir(), "token.pem")
			if err := os.WriteFile(key, tc.pem, 0o600); err != nil {
				t.Fatal(err)
			}
			ti, err := auth.NewTokenIssuer(auth.TokenOptions{Issuer: "sigil", Service: "registry.test", KeyFile: key})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), key) {
					t.Fatalf("NewTokenIssuer = %v, want an error naming %s and %q", err, key, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tok, _, err := ti.Issue(&auth.Identity{Name: "alice"}, aliceAccess)
			if err != nil {
				t.Fatal(err)
			}
			for trust, ac := range map[string]dauth.AccessController{
				"rootcertbundle": distributionVerifier(t, ti.Issuer(), ti.Service(), ti.RootCertBundle()),
				"jwks":           distributionJWKSVerifier(t, ti),
			} {
				if err := authorize(ac, tok, "team-a/app", "push"); err != nil {
					t.Errorf("distribution with %s refused a %s token: %v", trust, tc.name, err)
				}
			}
		})
	}
}

// KeyID must be distribution's thumbprint exactly, leading zero bytes of
// the coordinates included, or distribution cannot find the key by kid.
func TestKeyIDMatchesDistribution(t *testing.T) {
	for i := range 300 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := auth.KeyID(k.Public()), token.GetJWKThumbprint(k.Public()); got != want {
			t.Fatalf("key %d: KeyID = %s, distribution = %s", i, got, want)
		}
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, k := range []crypto.PublicKey{rsaKey.Public(), pub} {
		if got, want := auth.KeyID(k), token.GetJWKThumbprint(k); got != want || got == "" {
			t.Errorf("%T: KeyID = %q, distribution = %q", k, got, want)
		}
	}
}

func TestNewTokenIssuerErrors(t *testing.T) {
	key := filepath.Join(t.TempDir(), "k")
	for _, tc := range []struct {
		opts auth.TokenOptions
		want string
	}{
		{auth.TokenOptions{Service: "s", KeyFile: key}, "no issuer"},
		{auth.TokenOptions{Issuer: "i", KeyFile: key}, "no service"},
		{auth.TokenOptions{Issuer: "i", Service: "s"}, "no key file"},
		{auth.TokenOptions{Issuer: "i", Service: "s", KeyFile: key, Expiration: -time.Second}, "negative"},
	} {
		if _, err := auth.NewTokenIssuer(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewTokenIssuer(%+v) = %v, want %q", tc.opts, err, tc.want)
		}
	}
	if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
		t.Error("a key was written although the options were refused")
	}
}
