package remote_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/remote"
	"github.com/sigil-project/sigil/tests/testimage"
)

// pushed is one image pushed to the shared registry.
type pushed struct {
	repo   string
	digest digest.Digest
	mt     string
	img    v1.Image // nil for an index
}

var shared = sync.OnceValues(func() (map[string]pushed, error) {
	reg := testimage.NewRegistry() // lives as long as the test binary
	sharedHost = reg.Host
	out := map[string]pushed{}
	ctx := context.Background()
	for _, tc := range []struct {
		key, repo string
		mt        string
		build     func() (any, error)
	}{
		{"oci", "demo/busybox", ocispec.MediaTypeImageManifest, func() (any, error) { return testimage.Busybox(testimage.OCI) }},
		{"docker", "demo/docker", images.MediaTypeDockerManifest, func() (any, error) { return testimage.Busybox(testimage.Docker) }},
		{"index", "demo/multi", ocispec.MediaTypeImageIndex, func() (any, error) { return testimage.MultiPlatform(testimage.OCI) }},
		{"list", "demo/list", images.MediaTypeDockerManifestList, func() (any, error) { return testimage.MultiPlatform(testimage.Docker) }},
	} {
		what, err := tc.build()
		if err != nil {
			return nil, err
		}
		var h v1.Hash
		p := pushed{repo: tc.repo, mt: tc.mt}
		switch w := what.(type) {
		case v1.Image:
			h, err = testimage.Push(ctx, reg.Host+"/"+tc.repo+":1", w)
			p.img = w
		case v1.ImageIndex:
			h, err = testimage.Push(ctx, reg.Host+"/"+tc.repo+":1", w)
		}
		if err != nil {
			return nil, err
		}
		p.digest = digest.Digest(h.String())
		out[tc.key] = p
	}
	return out, nil
})

var sharedHost string

func sharedImages(t *testing.T) map[string]pushed {
	t.Helper()
	m, err := shared()
	if err != nil {
		t.Fatalf("pushing test images: %v", err)
	}
	return m
}

func repoAt(t *testing.T, c *remote.Client, host, repo string) *remote.Repository {
	t.Helper()
	r, err := c.Repository(context.Background(), remote.Endpoint{Registry: host, Repository: repo})
	if err != nil {
		t.Fatalf("Repository(%s/%s) = %v", host, repo, err)
	}
	return r
}

func TestResolve(t *testing.T) {
	t.Parallel()
	imgs := sharedImages(t)
	ctx := context.Background()
	c := remote.NewClient()
	for key, p := range imgs {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			repo := repoAt(t, c, sharedHost, p.repo)
			for _, ref := range []string{"1", p.digest.String()} {
				desc, b, err := repo.Resolve(ctx, ref)
				if err != nil {
					t.Fatalf("Resolve(%s) = %v", ref, err)
				}
				if desc.Digest != p.digest || desc.MediaType != p.mt || desc.Size != int64(len(b)) || digest.FromBytes(b) != p.digest {
					t.Errorf("Resolve(%s) = {%s %s %d} (%d bytes hashing to %s), want {%s %s}",
						ref, desc.MediaType, desc.Digest, desc.Size, len(b), digest.FromBytes(b), p.mt, p.digest)
				}
			}
		})
	}
}

func TestResolveNotFound(t *testing.T) {
	t.Parallel()
	imgs := sharedImages(t)
	ctx := context.Background()
	c := remote.NewClient()
	for _, tc := range []struct{ repo, ref string }{
		{imgs["oci"].repo, "no-such-tag"},
		{imgs["oci"].repo, digest.FromString("no such manifest").String()},
		{"demo/no-such-repo", "1"},
	} {
		repo := repoAt(t, c, sharedHost, tc.repo)
		_, _, err := repo.Resolve(ctx, tc.ref)
		if !errdefs.IsNotFound(err) {
			t.Errorf("Resolve(%s:%s) = %v, want ErrNotFound", tc.repo, tc.ref, err)
			continue
		}
		if ep := sharedHost + "/" + tc.repo; !strings.Contains(err.Error(), ep) || !strings.Contains(err.Error(), tc.ref) {
			t.Errorf("Resolve(%s:%s) error %q, want it to name the endpoint %s and the reference", tc.repo, tc.ref, err, ep)
		}
	}
}

func TestFetch(t *testing.T) {
	t.Parallel()
	imgs := sharedImages(t)
	ctx := context.Background()
	c := remote.NewClient()

	t.Run("index child manifest", func(t *testing.T) {
		repo := repoAt(t, c, sharedHost, imgs["index"].repo)
		_, b, err := repo.Resolve(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		idx, err := images.ParseIndex(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range idx.Manifests {
			got, err := repo.FetchManifest(ctx, m)
			if err != nil || digest.FromBytes(got) != m.Digest {
				t.Errorf("FetchManifest(%s) = %d bytes, %v; want bytes hashing to it", m.Digest, len(got), err)
			}
			bad := m
			bad.Size++
			if _, err := repo.FetchManifest(ctx, bad); err == nil || !strings.Contains(err.Error(), "does not match") {
				t.Errorf("FetchManifest(%s with size %d) = %v, want a mismatch error", m.Digest, bad.Size, err)
			}
			huge := m
			huge.Size = images.MaxManifestSize + 1
			if _, err := repo.FetchManifest(ctx, huge); err == nil || !strings.Contains(err.Error(), "refusing") {
				t.Errorf("FetchManifest(size %d) = %v, want it refused", huge.Size, err)
			}
		}
	})

	t.Run("blobs", func(t *testing.T) {
		p := imgs["oci"]
		repo := repoAt(t, c, sharedHost, p.repo)
		m, err := p.img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			desc := ocispec.Descriptor{Digest: digest.Digest(d.Digest.String()), Size: d.Size}
			rc, err := repo.FetchBlob(ctx, desc)
			if err != nil {
				t.Fatalf("FetchBlob(%s) = %v", desc.Digest, err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || int64(len(b)) != desc.Size || digest.FromBytes(b) != desc.Digest {
				t.Errorf("FetchBlob(%s) read %d bytes hashing to %s, %v; want %d bytes", desc.Digest, len(b), digest.FromBytes(b), err, desc.Size)
			}
		}
		absent := ocispec.Descriptor{Digest: digest.FromString("absent"), Size: 6}
		if _, err := repo.FetchBlob(ctx, absent); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), absent.Digest.String()) {
			t.Errorf("FetchBlob(absent) = %v, want ErrNotFound naming the digest", err)
		}
		if _, err := repo.FetchBlob(ctx, ocispec.Descriptor{Digest: "sha256:../../v2/_catalog"}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("FetchBlob(invalid digest) = %v, want ErrInvalidArgument", err)
		}
	})
}

// TestHostileManifests serves what no honest registry would.
func TestHostileManifests(t *testing.T) {
	t.Parallel()
	reg := testimage.NewStaticRegistry()
	defer reg.Close()
	ctx := context.Background()
	manifest := []byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `","config":{"mediaType":"` +
		ocispec.MediaTypeImageConfig + `","digest":"` + digest.FromString("c").String() + `","size":1},"layers":[]}`)
	other := bytes.Replace(manifest, []byte(`"size":1`), []byte(`"size":2`), 1)
	pinned := digest.FromBytes(manifest)
	big := append(append([]byte(`{"schemaVersion":2,"manifests":[],"x":"`), bytes.Repeat([]byte("a"), images.MaxManifestSize)...), `"}`...)
	long := strings.Repeat("very long error ", 50)

	tests := []struct {
		name    string
		ref     string
		resp    testimage.Response
		wantErr error  // errdefs class, or nil when only wantMsg is checked
		wantMsg string // substring of the error
	}{
		{"substituted by digest", pinned.String(), testimage.Response{ContentType: ocispec.MediaTypeImageManifest, Body: other}, nil, "tampered"},
		{"declared too large", "big-declared", testimage.Response{ContentType: ocispec.MediaTypeImageIndex, Body: manifest, ContentLength: images.MaxManifestSize + 1}, nil, "refusing a manifest that large"},
		{"streamed too large", "big-streamed", testimage.Response{ContentType: ocispec.MediaTypeImageIndex, Body: big}, nil, "refusing a manifest that large"},
		{"schema1", "old", testimage.Response{ContentType: "application/vnd.docker.distribution.manifest.v1+prettyjws", Body: []byte(`{"schemaVersion":1}`)}, images.ErrUnsupportedMediaType, "schema1"},
		{"html", "html", testimage.Response{ContentType: "text/html", Body: []byte("<html>")}, errdefs.ErrInvalidArgument, "not valid JSON"},
		{"401", "auth", testimage.Response{Status: 401, Body: []byte(`{"errors":[{"code":"UNAUTHORIZED","message":"log in first"}]}`)}, errdefs.ErrUnauthenticated, "UNAUTHORIZED: log in first"},
		{"403", "denied", testimage.Response{Status: 403, Body: []byte(`{"errors":[{"code":"DENIED","message":"no"}]}`)}, errdefs.ErrPermissionDenied, "access denied (DENIED: no)"},
		{"429", "busy", testimage.Response{Status: 429, Body: []byte("slow down")}, errdefs.ErrUnavailable, "rate limited by the registry (slow down)"},
		{"500 with a long body", "broken", testimage.Response{Status: 500, Body: []byte(long)}, errdefs.ErrUnknown, "HTTP 500 (" + long[:200] + "…)"},
	}
	c := remote.NewClient()
	repo := repoAt(t, c, reg.Host, "hostile/app")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg.Set("/v2/hostile/app/manifests/"+tc.ref, tc.resp)
			desc, b, err := repo.Resolve(ctx, tc.ref)
			if err == nil {
				t.Fatalf("Resolve(%s) = %v, %d bytes; want an error", tc.ref, desc, len(b))
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Resolve(%s) = %v, want %v", tc.ref, err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Resolve(%s) error %q, want it to contain %q", tc.ref, err, tc.wantMsg)
			}
			if !strings.Contains(err.Error(), reg.Host) {
				t.Errorf("Resolve(%s) error %q, want it to name the registry %s", tc.ref, err, reg.Host)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = remote.NewClient().Repository(context.Background(), remote.Endpoint{Registry: host, Repository: "a/b"})
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("Repository(closed port) = %v, want ErrUnavailable naming %s as unreachable", err, host)
	}
}

// basicAuthRegistry serves go-containerregistry's registry behind HTTP basic
// auth, and the same storage without auth on a second address for pushing.
type basicAuthRegistry struct {
	host, openHost string
}

const (
	testUser     = "alice"
	testPassword = "correct horse"
)

func newBasicAuthRegistry(t *testing.T) *basicAuthRegistry {
	t.Helper()
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	protected := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="sigil test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return
		}
		inner.ServeHTTP(w, r)
	}))
	open := httptest.NewServer(inner)
	t.Cleanup(protected.Close)
	t.Cleanup(open.Close)
	return &basicAuthRegistry{
		host:     strings.TrimPrefix(protected.URL, "http://"),
		openHost: strings.TrimPrefix(open.URL, "http://"),
	}
}

// staticKeychain hands out one user's password for one registry host.
type staticKeychain struct{ host, user, password string }

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() != k.host {
		return authn.Anonymous, nil
	}
	return &authn.Basic{Username: k.user, Password: k.password}, nil
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := newBasicAuthRegistry(t)
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	h, err := testimage.Push(ctx, reg.openHost+"/private/app:1", img)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		keychain authn.Keychain // nil: the default, anonymous
		ok       bool
	}{
		{"anonymous", nil, false},
		{"wrong password", staticKeychain{reg.host, testUser, "wrong"}, false},
		{"wrong user", staticKeychain{reg.host, "mallory", testPassword}, false},
		{"credentials for another registry", staticKeychain{reg.openHost, testUser, testPassword}, false},
		{"right credentials", staticKeychain{reg.host, testUser, testPassword}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []remote.Option
			if tc.keychain != nil {
				opts = append(opts, remote.WithKeychain(tc.keychain))
			}
			c := remote.NewClient(opts...)

			loginErr := c.Login(ctx, reg.host, false)
			repo, err := c.Repository(ctx, remote.Endpoint{Registry: reg.host, Repository: "private/app"})
			var desc ocispec.Descriptor
			if err == nil {
				desc, _, err = repo.Resolve(ctx, "1")
			}
			if tc.ok {
				if loginErr != nil {
					t.Errorf("Login = %v, want nil", loginErr)
				}
				if err != nil || desc.Digest.String() != h.String() {
					t.Fatalf("Resolve with credentials = %s, %v; want %s", desc.Digest, err, h)
				}
				m, _ := img.Manifest()
				rc, err := repo.FetchBlob(ctx, ocispec.Descriptor{Digest: digest.Digest(m.Layers[0].Digest.String())})
				if err != nil {
					t.Fatalf("FetchBlob with credentials = %v", err)
				}
				rc.Close()
				return
			}
			if !errors.Is(loginErr, errdefs.ErrUnauthenticated) {
				t.Errorf("Login = %v, want ErrUnauthenticated", loginErr)
			}
			if !errors.Is(err, errdefs.ErrUnauthenticated) {
				t.Fatalf("Resolve = %v, want ErrUnauthenticated", err)
			}
			if want := "'sigil login " + reg.host + "'"; !strings.Contains(err.Error(), want) {
				t.Errorf("Resolve error %q, want it to suggest %s", err, want)
			}
		})
	}

	// A registry without auth accepts an anonymous login.
	if err := remote.NewClient().Login(ctx, reg.openHost, false); err != nil {
		t.Errorf("Login(open registry, anonymous) = %v, want nil", err)
	}
}

// recordingTransport remembers every host contacted.
type recordingTransport struct {
	inner http.RoundTripper
	mu    sync.Mutex
	hosts map[string]int
	ua    []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.hosts[req.URL.Host]++
	r.ua = append(r.ua, req.Header.Get("User-Agent"))
	r.mu.Unlock()
	return r.inner.RoundTrip(req)
}

func TestClientOptions(t *testing.T) {
	t.Parallel()
	imgs := sharedImages(t)
	rt := &recordingTransport{inner: http.DefaultTransport, hosts: map[string]int{}}
	c := remote.NewClient(remote.WithTransport(rt), remote.WithUserAgent("sigil-test/1"))
	repo := repoAt(t, c, sharedHost, imgs["oci"].repo)
	if got := repo.Endpoint(); got.Registry != sharedHost || got.Repository != imgs["oci"].repo {
		t.Errorf("Endpoint() = %+v", got)
	}
	if _, _, err := repo.Resolve(context.Background(), "1"); err != nil {
		t.Fatal(err)
	}
	if len(rt.hosts) != 1 || rt.hosts[sharedHost] == 0 {
		t.Errorf("hosts contacted = %v, want only %s", rt.hosts, sharedHost)
	}
	for _, ua := range rt.ua {
		if !strings.HasPrefix(ua, "sigil-test/1") {
			t.Errorf("User-Agent = %q, want it to start with sigil-test/1", ua)
		}
	}
}

// tlsRegistry serves go-containerregistry's registry over HTTPS with a
// self-signed certificate under a name that is not loopback, the case
// --insecure-registry exists for. Every connection the returned transport
// makes goes to the test server, whatever host it asks for, so the name
// never needs to resolve. A plain-HTTP twin on loopback serves pushes.
func tlsRegistry(t *testing.T) (host string, base *http.Transport, openHost string) {
	t.Helper()
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewUnstartedServer(inner)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	open := httptest.NewServer(inner)
	t.Cleanup(srv.Close)
	t.Cleanup(open.Close)
	base = http.DefaultTransport.(*http.Transport).Clone()
	addr := srv.Listener.Addr().String()
	base.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return "registry.test", base, strings.TrimPrefix(open.URL, "http://")
}

func TestInsecureTLSRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host, base, openHost := tlsRegistry(t)
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	h, err := testimage.Push(ctx, openHost+"/team/app:1", img)
	if err != nil {
		t.Fatal(err)
	}
	c := remote.NewClient(remote.WithTransport(base))

	t.Run("verified TLS refuses a self-signed certificate", func(t *testing.T) {
		_, err := c.Repository(ctx, remote.Endpoint{Registry: host, Repository: "team/app"})
		if err == nil || !strings.Contains(err.Error(), "--insecure-registry "+host) {
			t.Errorf("Repository(self-signed, secure) = %v, want a TLS error suggesting --insecure-registry %s", err, host)
		}
		if err := c.Login(ctx, host, false); err == nil || !strings.Contains(err.Error(), "--insecure-registry "+host) {
			t.Errorf("Login(self-signed, secure) = %v, want a TLS error suggesting --insecure-registry %s", err, host)
		}
	})
	t.Run("insecure pulls and logs in", func(t *testing.T) {
		repo, err := c.Repository(ctx, remote.Endpoint{Registry: host, Repository: "team/app", Insecure: true})
		if err != nil {
			t.Fatalf("Repository(self-signed, insecure) = %v", err)
		}
		desc, _, err := repo.Resolve(ctx, "1")
		if err != nil || desc.Digest.String() != h.String() {
			t.Errorf("Resolve(self-signed, insecure) = %s, %v; want %s", desc.Digest, err, h)
		}
		if err := c.Login(ctx, host, true); err != nil {
			t.Errorf("Login(self-signed, insecure) = %v, want nil: login must accept what fetch accepts", err)
		}
	})
}

// TestPrivateAddressNeverOverPlainHTTP: an on-prem registry at a private
// (RFC 1918) address, where go-containerregistry's auth ping falls back
// to plain HTTP when HTTPS fails. Here the HTTPS attempt meets a
// plain-HTTP server (as when an attacker on that network answers), whose
// challenge names a token realm: the user's password must not be sent,
// and the error must say what was refused and how to allow it.
func TestPrivateAddressNeverOverPlainHTTP(t *testing.T) {
	t.Parallel()
	const host = "10.11.12.13:5000"
	var mu sync.Mutex
	var credentialsSeen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			mu.Lock()
			credentialsSeen = append(credentialsSeen, r.Method+" "+r.URL.Path)
			mu.Unlock()
		}
		if r.URL.Path == "/token" {
			w.Write([]byte(`{"token":"t"}`))
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+host+`/token",service="registry"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	base := http.DefaultTransport.(*http.Transport).Clone()
	addr := srv.Listener.Addr().String()
	base.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr) // every host is this server
	}
	c := remote.NewClient(remote.WithTransport(base), remote.WithKeychain(staticKeychain{host, testUser, testPassword}))
	ctx := context.Background()

	_, err := c.Repository(ctx, remote.Endpoint{Registry: host, Repository: "team/app"})
	if err == nil || !strings.Contains(err.Error(), "refusing plain HTTP to "+host) || !strings.Contains(err.Error(), "--insecure-registry "+host) {
		t.Errorf("Repository(private address, secure) = %v; want a refusal of plain HTTP naming --insecure-registry %s", err, host)
	}
	if err := c.Login(ctx, host, false); err == nil || !strings.Contains(err.Error(), "refusing plain HTTP") {
		t.Errorf("Login(private address, secure) = %v; want a refusal of plain HTTP", err)
	}
	mu.Lock()
	seen := credentialsSeen
	mu.Unlock()
	if len(seen) != 0 {
		t.Errorf("credentials were sent over plain HTTP: %v", seen)
	}
	// With --insecure-registry the user accepted plain HTTP for this host.
	if _, err := c.Repository(ctx, remote.Endpoint{Registry: host, Repository: "team/app", Insecure: true}); err != nil {
		t.Errorf("Repository(private address, insecure) = %v", err)
	}
}
