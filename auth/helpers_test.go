package auth_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	dauth "github.com/distribution/distribution/v3/registry/auth"
	_ "github.com/distribution/distribution/v3/registry/auth/token" // registers "token"
	"golang.org/x/crypto/bcrypt"

	"github.com/sigil-project/sigil/auth"
)

// distributionVerifier is distribution's own token access controller,
// configured the way the registry configures it from an issuer.
func distributionVerifier(t *testing.T, issuer, service, rootCertBundle string) dauth.AccessController {
	t.Helper()
	return distributionVerifierAt(t, "https://registry.test/auth/token", issuer, service, rootCertBundle)
}

// distributionVerifierAt is distributionVerifier with the realm its
// challenges send clients to.
func distributionVerifierAt(t *testing.T, realm, issuer, service, rootCertBundle string) dauth.AccessController {
	t.Helper()
	ac, err := dauth.GetAccessController("token", map[string]any{
		"realm":          realm,
		"issuer":         issuer,
		"service":        service,
		"rootcertbundle": rootCertBundle,
	})
	if err != nil {
		t.Fatalf("distribution token access controller: %v", err)
	}
	return ac
}

// distributionJWKSVerifier is distribution's token access controller
// trusting the issuer's JWKS file only.
func distributionJWKSVerifier(t *testing.T, ti *auth.TokenIssuer) dauth.AccessController {
	t.Helper()
	ac, err := dauth.GetAccessController("token", map[string]any{
		"realm":   "https://registry.test/auth/token",
		"issuer":  ti.Issuer(),
		"service": ti.Service(),
		"jwks":    ti.JWKSFile(),
	})
	if err != nil {
		t.Fatalf("distribution token access controller with jwks: %v", err)
	}
	return ac
}

// authorize asks distribution whether token allows action on repo.
func authorize(ac dauth.AccessController, token, repo string, actions ...string) error {
	r := httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/tags/list", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	var access []dauth.Access
	for _, a := range actions {
		access = append(access, dauth.Access{Resource: dauth.Resource{Type: "repository", Name: repo}, Action: a})
	}
	_, err := ac.Authorized(r, access...)
	return err
}

func newIssuer(t *testing.T, opts auth.TokenOptions) *auth.TokenIssuer {
	t.Helper()
	if opts.Issuer == "" {
		opts.Issuer = "sigil-test"
	}
	if opts.Service == "" {
		opts.Service = "registry.test"
	}
	if opts.KeyFile == "" {
		opts.KeyFile = filepath.Join(t.TempDir(), "token.key")
	}
	ti, err := auth.NewTokenIssuer(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ti
}

// writeHtpasswd writes user:bcrypt lines (minimum cost: tests need speed,
// not strength) and returns the path.
func writeHtpasswd(t *testing.T, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// logBuffer collects log output (JSON lines) for inspection and mirrors
// it to the test's output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	out io.Writer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	return l.out.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{out: t.Output()}
	return slog.New(slog.NewJSONHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// newServer serves h at /auth/token on a loopback httptest server.
func newServer(t *testing.T, h http.Handler) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("/auth/token", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}
