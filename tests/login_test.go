package tests

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigil-project/sigil/tests/testimage"
)

// sigilEnv runs sigil like e.sigilIn, but with environ as its whole
// environment; a failure to start it fails the test.
func (e *env) sigilEnv(environ []string, stdin []byte, args ...string) result {
	e.t.Helper()
	r, err := e.sigilWith(environ, stdin, args...)
	if err != nil {
		e.t.Fatalf("sigil %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// credentialEnviron is this process's environment without any of the
// variables that say where registry credentials live or how registries are
// reached, with HOME set to home (so the machine's ~/.docker/config.json
// plays no part), plus extra.
func credentialEnviron(home string, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HOME", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
			"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "SIGIL_REGISTRIES_CONF":
			continue
		}
		out = append(out, kv)
	}
	return append(append(out, "HOME="+home), extra...)
}

func TestLoginBasicAuthRegistry(t *testing.T) {
	e := newEnv(t)
	const user, password = "alice", "s3cret-Pa55"
	reg := testimage.NewAuthRegistry(user, password)
	t.Cleanup(reg.Close)
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/private/app:1"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := testimage.PushAuth(ctx, ref, img, user, password)
	if err != nil {
		t.Fatalf("push %s with credentials: %v", ref, err)
	}
	pushed := h.String()
	if _, err := testimage.Push(ctx, reg.Host+"/private/anon:1", img); err == nil {
		t.Fatalf("push to the auth registry without credentials succeeded; the registry does not check auth")
	}

	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	authDir := filepath.Join(dir, "auth")
	if err := os.MkdirAll(authDir, 0o700); err != nil {
		t.Fatal(err)
	}
	authFile := filepath.Join(authDir, "auth.json")
	// What was there before: another registry's login and a setting
	// sigil knows nothing about.
	before := []byte(`{
	"auths": {
		"quay.example.com": {"auth": "Ym9iOmh1bnRlcjI="}
	},
	"psFormat": "table {{.ID}}\t{{.Image}}"
}
`)
	if err := os.WriteFile(authFile, before, 0o600); err != nil {
		t.Fatal(err)
	}
	environ := credentialEnviron(home, "REGISTRY_AUTH_FILE="+authFile)

	// No credentials for this registry: refused, and told how to log in.
	r := e.sigilEnv(environ, nil, "fetch", "-q", ref)
	if r.code != 125 || !strings.Contains(r.stderr, "sigil login") || !strings.Contains(r.stderr, reg.Host) {
		t.Errorf("fetch without credentials = %v, want exit 125 with 'sigil login %s'", r, reg.Host)
	}
	if out := e.mustSigil("images", "-q"); strings.TrimSpace(out.stdout) != "" {
		t.Errorf("images after a refused fetch = %q, want none", out.stdout)
	}

	// A wrong password is refused by the registry and nothing is saved.
	r = e.sigilEnv(environ, []byte("wrong-password\n"), "login", "-u", user, "--password-stdin", reg.Host)
	if r.code != 125 || !strings.Contains(r.stderr, "credentials refused") {
		t.Errorf("login with a wrong password = %v, want exit 125 with 'credentials refused'", r)
	}
	if strings.Contains(r.stdout, "Login Succeeded") {
		t.Errorf("login with a wrong password printed %q", r.stdout)
	}
	if got, err := os.ReadFile(authFile); err != nil || !bytes.Equal(got, before) {
		t.Errorf("auth file after a refused login = %q, %v; want it unchanged: %q", got, err, before)
	}
	if entries, _ := os.ReadDir(authDir); len(entries) != 1 {
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		t.Errorf("auth file directory after a refused login holds %q, want only auth.json", names)
	}
	// Neither does a refused login create a missing file.
	missing := filepath.Join(dir, "none", "auth.json")
	r = e.sigilEnv(credentialEnviron(home, "REGISTRY_AUTH_FILE="+missing), []byte("wrong-password\n"), "login", "-u", user, "--password-stdin", reg.Host)
	if r.code != 125 {
		t.Errorf("login with a wrong password (no auth file yet) = %v, want exit 125", r)
	}
	if _, err := os.Stat(filepath.Dir(missing)); err == nil {
		t.Errorf("a refused login created %s, want nothing written", filepath.Dir(missing))
	}

	// The right password: saved, mode 0600, next to what was there.
	reg.Reset()
	r = e.sigilEnv(environ, []byte(password+"\n"), "login", "-u", user, "--password-stdin", reg.Host)
	if r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("login with the right password = %v, want exit 0 and Login Succeeded", r)
	}
	if reg.Count("GET", "/v2/") == 0 {
		t.Errorf("login made no request to the registry; the password was not checked")
	}
	fi, err := os.Stat(authFile)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("auth file mode = %o, want 600", m)
	}
	var doc struct {
		Auths    map[string]map[string]any `json:"auths"`
		PSFormat string                    `json:"psFormat"`
	}
	b, _ := os.ReadFile(authFile)
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("auth file after login is not JSON: %v\n%s", err, b)
	}
	if got, want := doc.Auths[reg.Host]["auth"], base64.StdEncoding.EncodeToString([]byte(user+":"+password)); got != want {
		t.Errorf("auth file auths[%q].auth = %v, want %q\n%s", reg.Host, got, want, b)
	}
	if got := doc.Auths["quay.example.com"]["auth"]; got != "Ym9iOmh1bnRlcjI=" {
		t.Errorf("auth file auths[quay.example.com].auth = %v, want the earlier login kept\n%s", got, b)
	}
	if doc.PSFormat != "table {{.ID}}\t{{.Image}}" {
		t.Errorf("auth file psFormat = %q, want the earlier setting kept\n%s", doc.PSFormat, b)
	}

	// The saved login is used by fetch.
	r = e.sigilEnv(environ, nil, "fetch", "-q", ref)
	if r.code != 0 {
		t.Fatalf("fetch after login = %v, want exit 0", r)
	}
	if got := strings.TrimSpace(r.stdout); got != pushed {
		t.Errorf("fetch after login printed %q, want the pushed digest %s", got, pushed)
	}
	if out := e.sigilEnv(environ, nil, "run", "--rm", ref, "echo", "ok"); out.code != 0 || out.stdout != "ok\n" {
		t.Errorf("run of the fetched private image = %v, want ok", out)
	}

	// A user who also has a docker config: $REGISTRY_AUTH_FILE, where
	// login wrote, is still where fetch reads, as podman does.
	t.Run("REGISTRY_AUTH_FILE beside ~/.docker/config.json", func(t *testing.T) {
		// go-containerregistry's default keychain reads only
		// ~/.docker/config.json when it exists; credentials.Keychain
		// reads $REGISTRY_AUTH_FILE first, as podman does.
		e.mustSigil("image", "rm", ref)
		dockerHome := filepath.Join(dir, "dockerhome")
		if err := os.MkdirAll(filepath.Join(dockerHome, ".docker"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dockerHome, ".docker", "config.json"), []byte(`{"auths":{"quay.example.com":{"auth":"Ym9iOmh1bnRlcjI="}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		env2 := credentialEnviron(dockerHome, "REGISTRY_AUTH_FILE="+authFile)
		if r := e.sigilEnv(env2, nil, "fetch", "-q", ref); r.code != 0 {
			t.Errorf("fetch with $REGISTRY_AUTH_FILE holding the login and an unrelated ~/.docker/config.json = %v, want exit 0", r)
		}
	})
}

// fakeDockerHub serves reg over TLS as index.docker.io (a certificate from
// a CA made here), reached through an HTTPS proxy on loopback that sends
// every CONNECT to index.docker.io:443 there. It returns the environment
// that points sigil at it and the CONNECT targets the proxy saw.
func fakeDockerHub(t *testing.T, reg *testimage.Registry) (environ []string, connects func() []string) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sigil e2e test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "index.docker.io"},
		DNSNames:  []string{"index.docker.io"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	hub := httptest.NewUnstartedServer(reg.Handler())
	hub.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}
	hub.StartTLS()
	t.Cleanup(hub.Close)

	var mu sync.Mutex
	var seen []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Host)
		mu.Unlock()
		if r.Method != http.MethodConnect || r.Host != "index.docker.io:443" {
			http.Error(w, "this proxy only reaches index.docker.io:443", http.StatusBadGateway)
			return
		}
		up, err := net.Dial("tcp", hub.Listener.Addr().String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		done := make(chan struct{}, 2)
		go func() { io.Copy(up, buf); done <- struct{}{} }()
		go func() { io.Copy(conn, up); done <- struct{}{} }()
		<-done
		conn.Close()
		up.Close()
	}))
	t.Cleanup(proxy.Close)
	proxyURL := "http://" + strings.TrimPrefix(proxy.URL, "http://")
	environ = []string{"HTTPS_PROXY=" + proxyURL, "https_proxy=" + proxyURL, "SSL_CERT_FILE=" + caFile}
	return environ, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// Docker Hub is the registry whose auth file key is not its name.
func TestLoginDockerHub(t *testing.T) {
	e := newEnv(t)
	const user, password = "alice", "hub-Pa55"
	reg := testimage.NewAuthRegistry(user, password)
	t.Cleanup(reg.Close)
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := testimage.PushAuth(ctx, reg.Host+"/library/private:1", img, user, password)
	if err != nil {
		t.Fatal(err)
	}
	hubEnv, connects := fakeDockerHub(t, reg)
	home := t.TempDir()
	conf := writeFile(t, "# no mirrors\n")
	environ := credentialEnviron(home, append(hubEnv, "SIGIL_REGISTRIES_CONF="+conf)...)

	// Not logged in: the fake hub is reached, and refuses.
	r := e.sigilEnv(environ, nil, "fetch", "-q", "private:1")
	if r.code != 125 || !strings.Contains(r.stderr, "sigil login") {
		t.Errorf("fetch private:1 before login = %v, want exit 125 with 'sigil login'", r)
	}
	if n := reg.Count("GET", "/v2/library/private/manifests/1"); n == 0 {
		t.Fatalf("fetch private:1 never reached the fake Docker Hub (proxy saw %q); the test's plumbing is broken", connects())
	}

	r = e.sigilEnv(environ, []byte(password+"\n"), "login", "-u", user, "--password-stdin", "docker.io")
	if r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("login docker.io = %v, want Login Succeeded", r)
	}
	authFile := filepath.Join(home, ".docker", "config.json")
	b, err := os.ReadFile(authFile)
	if err != nil {
		t.Fatalf("login docker.io with HOME=%s: %v, want ~/.docker/config.json written", home, err)
	}
	r = e.sigilEnv(environ, nil, "fetch", "-q", "private:1")
	if r.code != 0 || strings.TrimSpace(r.stdout) != h.String() {
		t.Errorf("fetch private:1 after login docker.io = %v, want exit 0 and %s\nauth file:\n%s", r, h, b)
	}
	for _, c := range connects() {
		if c != "CONNECT index.docker.io:443" {
			t.Errorf("proxy saw %q, want only CONNECT index.docker.io:443", c)
		}
	}
}
