package resolve_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/reference"
	"github.com/sigil-project/sigil/runtime/registries"
	"github.com/sigil-project/sigil/runtime/remote"
	"github.com/sigil-project/sigil/runtime/resolve"
	"github.com/sigil-project/sigil/tests/testimage"
)

// recordingTransport remembers every host the client contacted.
type recordingTransport struct {
	mu    sync.Mutex
	hosts map[string]int
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.hosts[req.URL.Host]++
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recordingTransport) contacted() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for h, n := range r.hosts {
		out[h] = n
	}
	return out
}

func newClient() (*remote.Client, *recordingTransport) {
	rt := &recordingTransport{hosts: map[string]int{}}
	return remote.NewClient(remote.WithTransport(rt)), rt
}

func parseRef(t *testing.T, s string) reference.Ref {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func parseConf(t *testing.T, format string, args ...any) *registries.Config {
	t.Helper()
	conf, err := registries.Parse([]byte(fmt.Sprintf(format, args...)))
	if err != nil {
		t.Fatalf("registries.Parse: %v", err)
	}
	return conf
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startWith starts a registry holding a busybox image at repo:tag.
func startWith(t *testing.T, repoTag string) (*testimage.Registry, digest.Digest) {
	t.Helper()
	reg := testimage.NewRegistry()
	t.Cleanup(reg.Close)
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	h, err := testimage.Push(context.Background(), reg.Host+"/"+repoTag, img)
	if err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	return reg, digest.Digest(h.String())
}

func TestResolveDirect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg, want := startWith(t, "team/app:1.0")
	c, rt := newClient()
	r := resolve.New(c, nil, nil)

	for _, s := range []string{
		reg.Host + "/team/app:1.0",
		reg.Host + "/team/app@" + want.String(),
		reg.Host + "/team/app:ignored-tag@" + want.String(), // the digest decides
	} {
		ref := parseRef(t, s)
		res, err := r.Resolve(ctx, ref)
		if err != nil {
			t.Fatalf("Resolve(%s) = %v", s, err)
		}
		if res.Target.Digest != want || digest.FromBytes(res.Manifest) != want || res.Target.MediaType != ocispec.MediaTypeImageManifest {
			t.Errorf("Resolve(%s) = %s %s, want %s %s", s, res.Target.MediaType, res.Target.Digest, ocispec.MediaTypeImageManifest, want)
		}
		if res.Name != ref.String() || res.Source != reg.Host+"/team/app" || res.Fetcher == nil {
			t.Errorf("Resolve(%s) = name %q source %q, want %q and %q", s, res.Name, res.Source, ref.String(), reg.Host+"/team/app")
		}
		if err := res.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	}
	if hosts := rt.contacted(); len(hosts) != 1 {
		t.Errorf("hosts contacted = %v, want only %s", hosts, reg.Host)
	}

	// An unknown tag is not found, and the message says where it looked.
	_, err := r.Resolve(ctx, parseRef(t, reg.Host+"/team/app:nope"))
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), reg.Host+"/team/app") || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Resolve(unknown tag) = %v, want ErrNotFound naming %s/team/app and the tag", err, reg.Host)
	}
}

func TestResolveMirror(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg, want := startWith(t, "pause:3.9")
	conf := parseConf(t, `
[[registry]]
prefix = "registry.k8s.io"
location = "registry.k8s.io"

[[registry.mirror]]
location = %q
`, reg.Host)
	c, rt := newClient()
	res, err := resolve.New(c, conf, nil).Resolve(ctx, parseRef(t, "registry.k8s.io/pause:3.9"))
	if err != nil {
		t.Fatalf("Resolve(registry.k8s.io/pause:3.9) through a mirror = %v", err)
	}
	if res.Target.Digest != want {
		t.Errorf("Resolve(registry.k8s.io/pause:3.9) = %s, want %s", res.Target.Digest, want)
	}
	if res.Name != "registry.k8s.io/pause:3.9" {
		t.Errorf("Name = %q, want the name asked for, not the mirror's", res.Name)
	}
	if wantSrc := reg.Host + "/pause (mirror)"; res.Source != wantSrc {
		t.Errorf("Source = %q, want %q", res.Source, wantSrc)
	}
	if hosts := rt.contacted(); len(hosts) != 1 || hosts[reg.Host] == 0 {
		t.Errorf("hosts contacted = %v, want only the mirror %s", hosts, reg.Host)
	}
	if n := reg.Count("GET", "/v2/pause/manifests/3.9"); n != 1 {
		t.Errorf("mirror manifest GETs = %d, want 1", n)
	}
	// The fetcher reads blobs from the mirror too.
	rc, err := res.Fetcher.FetchBlob(ctx, configOf(t, res.Manifest))
	if err != nil {
		t.Fatalf("FetchBlob from the mirror = %v", err)
	}
	rc.Close()
}

func configOf(t *testing.T, manifest []byte) ocispec.Descriptor {
	t.Helper()
	m, err := v1.ParseManifest(strings.NewReader(string(manifest)))
	if err != nil {
		t.Fatal(err)
	}
	return ocispec.Descriptor{Digest: digest.Digest(m.Config.Digest.String()), Size: m.Config.Size}
}

func TestResolveMirrorFallthrough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	good, want := startWith(t, "team/app:1")
	empty := testimage.NewRegistry() // a mirror that has nothing: 404
	t.Cleanup(empty.Close)
	down := closedPort(t) // a mirror that is down

	tests := []struct {
		name       string
		conf       string
		ref        string
		wantSource string
		wantErr    error // nil: resolves to want
		emptyHits  int   // manifest GETs the empty mirror should see
	}{
		{
			name: "404 mirror, then a good mirror",
			conf: fmt.Sprintf(`
[[registry]]
prefix = "example.test"
location = "example.test"
[[registry.mirror]]
location = %q
[[registry.mirror]]
location = %q
`, empty.Host, good.Host),
			ref: "example.test/team/app:1", wantSource: good.Host + "/team/app (mirror)", emptyHits: 1,
		},
		{
			name: "down mirror, 404 mirror, then the primary",
			conf: fmt.Sprintf(`
[[registry]]
prefix = "example.test/team"
location = %q
[[registry.mirror]]
location = %q
[[registry.mirror]]
location = "%s/team"
`, good.Host+"/team", down, empty.Host),
			ref: "example.test/team/app:1", wantSource: good.Host + "/team/app", emptyHits: 1,
		},
		{
			name: "digest-only mirror is not asked for a tag",
			conf: fmt.Sprintf(`
[[registry]]
prefix = "example.test"
location = %q
[[registry.mirror]]
location = %q
pull-from-mirror = "digest-only"
`, good.Host, empty.Host),
			ref: "example.test/team/app:1", wantSource: good.Host + "/team/app", emptyHits: 0,
		},
		{
			name: "digest-only mirror is asked for a digest",
			conf: fmt.Sprintf(`
[[registry]]
prefix = "example.test"
location = %q
[[registry.mirror]]
location = %q
pull-from-mirror = "digest-only"
`, good.Host, empty.Host),
			ref: "example.test/team/app@" + want.String(), wantSource: good.Host + "/team/app", emptyHits: 1,
		},
		{
			name: "every endpoint 404s",
			conf: fmt.Sprintf(`
[[registry]]
prefix = "example.test"
location = %q
[[registry.mirror]]
location = %q
`, good.Host, empty.Host),
			ref: "example.test/team/app:no-such-tag", wantErr: errdefs.ErrNotFound, emptyHits: 1,
		},
		{
			name: "every endpoint down",
			conf: fmt.Sprintf(`
[[registry]]
prefix = "example.test"
location = %q
[[registry.mirror]]
location = %q
`, down, down+"/other"),
			ref: "example.test/team/app:1", wantErr: errdefs.ErrUnavailable,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			empty.Reset()
			good.Reset()
			c, rt := newClient()
			res, err := resolve.New(c, parseConf(t, "%s", tc.conf), nil).Resolve(ctx, parseRef(t, tc.ref))
			if n := empty.Count("GET", "/v2/team/app/manifests/"); n != tc.emptyHits {
				t.Errorf("manifest GETs at the empty mirror = %d, want %d", n, tc.emptyHits)
			}
			for h := range rt.contacted() {
				if h != good.Host && h != empty.Host && h != down {
					t.Errorf("contacted %s, which is not configured", h)
				}
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Resolve(%s) = %v, want %v", tc.ref, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "every endpoint failed") {
					t.Errorf("Resolve(%s) error %q, want 'every endpoint failed'", tc.ref, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%s) = %v", tc.ref, err)
			}
			if res.Target.Digest != want || res.Source != tc.wantSource {
				t.Errorf("Resolve(%s) = %s from %q, want %s from %q", tc.ref, res.Target.Digest, res.Source, want, tc.wantSource)
			}
		})
	}
}

func TestResolveBlocked(t *testing.T) {
	t.Parallel()
	reg, _ := startWith(t, "team/app:1")
	conf := parseConf(t, `
[[registry]]
location = %q
blocked = true
`, reg.Host)
	c, rt := newClient()
	_, err := resolve.New(c, conf, nil).Resolve(context.Background(), parseRef(t, reg.Host+"/team/app:1"))
	if !errors.Is(err, registries.ErrBlocked) {
		t.Errorf("Resolve(blocked registry) = %v, want registries.ErrBlocked", err)
	}
	if hosts := rt.contacted(); len(hosts) != 0 {
		t.Errorf("hosts contacted for a blocked registry = %v, want none", hosts)
	}
}

func TestResolveCancelled(t *testing.T) {
	t.Parallel()
	reg, _ := startWith(t, "team/app:1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, _ := newClient()
	_, err := resolve.New(c, nil, nil).Resolve(ctx, parseRef(t, reg.Host+"/team/app:1"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Resolve(cancelled context) = %v, want context.Canceled", err)
	}
}

func TestResolveLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: "1.0"})); err != nil {
		t.Fatal(err)
	}
	c, rt := newClient()
	r := resolve.New(c, nil, nil)

	res, err := r.Resolve(ctx, parseRef(t, "oci:"+dir+":1.0"))
	if err != nil {
		t.Fatalf("Resolve(oci:%s:1.0) = %v", dir, err)
	}
	if res.Target.Digest.String() != want.String() || res.Source != dir || res.Name != "oci:"+dir+":1.0" {
		t.Errorf("Resolve(oci layout) = %s from %q named %q, want %s from %q", res.Target.Digest, res.Source, res.Name, want, dir)
	}
	rc, err := res.Fetcher.FetchBlob(ctx, configOf(t, res.Manifest))
	if err != nil {
		t.Fatalf("FetchBlob from the layout = %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if cfg := configOf(t, res.Manifest); digest.FromBytes(b) != cfg.Digest {
		t.Errorf("config from the layout hashes to %s, want %s", digest.FromBytes(b), cfg.Digest)
	}
	if err := res.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if hosts := rt.contacted(); len(hosts) != 0 {
		t.Errorf("hosts contacted for an OCI layout = %v, want none", hosts)
	}

	if _, err := r.Resolve(ctx, parseRef(t, "oci:"+dir+":2.0")); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "1.0") {
		t.Errorf("Resolve(oci layout, unknown tag) = %v, want ErrNotFound listing the tag it has", err)
	}
	if _, err := r.Resolve(ctx, parseRef(t, "oci:"+t.TempDir()+":1.0")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Resolve(oci: a directory that is no layout) = %v, want ErrInvalidArgument", err)
	}
}

// TestResolveLayoutDefaultTag: "oci:DIR" without a name means the only
// image of a one-image layout, whatever it is tagged, as containers/image
// does; a typed name, or a layout of several images, gets no such guess.
func TestResolveLayoutDefaultTag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	other, err := testimage.Busybox(testimage.Docker)
	if err != nil {
		t.Fatal(err)
	}
	write := func(imgs map[v1.Image]map[string]string) string {
		dir := filepath.Join(t.TempDir(), "layout")
		lp, err := layout.Write(dir, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		for i, ann := range imgs {
			if err := lp.AppendImage(i, layout.WithAnnotations(ann)); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	untagged := write(map[v1.Image]map[string]string{img: nil})
	tagged := write(map[v1.Image]map[string]string{img: {ocispec.AnnotationRefName: "1.0"}})
	two := write(map[v1.Image]map[string]string{img: {ocispec.AnnotationRefName: "1.0"}, other: nil})

	c, _ := newClient()
	r := resolve.New(c, nil, nil)
	for _, tc := range []struct {
		ref string
		ok  bool
	}{
		{"oci:" + untagged, true},
		{"oci:" + tagged, true},
		{"oci:" + tagged + ":1.0", true},
		{"oci:" + untagged + ":latest", false}, // typed: no guessing
		{"oci:" + tagged + ":latest", false},
		{"oci:" + two, false}, // which one?
	} {
		res, err := r.Resolve(ctx, parseRef(t, tc.ref))
		if !tc.ok {
			if !errdefs.IsNotFound(err) {
				t.Errorf("Resolve(%s) = %v, want ErrNotFound", tc.ref, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%s) = %v, want the layout's only image", tc.ref, err)
			continue
		}
		if res.Target.Digest.String() != want.String() {
			t.Errorf("Resolve(%s) = %s, want %s", tc.ref, res.Target.Digest, want)
		}
		res.Close()
	}
}

// TestResolveErrorClass: when every endpoint fails, the error is classed
// by the primary location, which is the last word: a mirror that lacks
// the image does not make a registry that is down look like "not found".
func TestResolveErrorClass(t *testing.T) {
	t.Parallel()
	empty := testimage.NewRegistry()
	t.Cleanup(empty.Close)
	down := closedPort(t)
	for _, tc := range []struct {
		name             string
		mirror, location string
		want             error
	}{
		{"mirror 404, primary down", empty.Host, down, errdefs.ErrUnavailable},
		{"mirror down, primary 404", down, empty.Host, errdefs.ErrNotFound},
		{"both 404", empty.Host, empty.Host + "/again", errdefs.ErrNotFound},
	} {
		conf := parseConf(t, `
[[registry]]
prefix = "example.test"
location = %q
[[registry.mirror]]
location = %q
`, tc.location, tc.mirror)
		c, _ := newClient()
		_, err := resolve.New(c, conf, nil).Resolve(context.Background(), parseRef(t, "example.test/team/app:1"))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Resolve = %v, want %v", tc.name, err, tc.want)
		}
	}
}
