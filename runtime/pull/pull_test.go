package pull_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/content"
	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/local"
	"github.com/sigil-project/sigil/runtime/pull"
	"github.com/sigil-project/sigil/runtime/reference"
	sremote "github.com/sigil-project/sigil/runtime/remote"
	"github.com/sigil-project/sigil/runtime/resolve"
	"github.com/sigil-project/sigil/tests/testimage"
)

// requireRoot skips tests that unpack layers: archive.Apply chowns files and
// creates whiteout devices, which needs a real root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("pulling unpacks layers, which needs root (chown, mknod of whiteouts, trusted.overlay.* xattrs)")
	}
}

// verifier accepts or refuses every image and remembers what it judged.
type verifier struct {
	refuse error
	mu     sync.Mutex
	judged []string
}

func (v *verifier) VerifyImage(_ context.Context, name string, target ocispec.Descriptor) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.judged = append(v.judged, name+"@"+target.Digest.String())
	return v.refuse
}

// progress records the bytes reported per blob.
type progress struct {
	mu    sync.Mutex
	bytes map[digest.Digest]int64
	done  map[digest.Digest]error
}

func (p *progress) Start(desc ocispec.Descriptor) func(int) {
	return func(n int) {
		p.mu.Lock()
		p.bytes[desc.Digest] += int64(n)
		p.mu.Unlock()
	}
}

func (p *progress) Done(desc ocispec.Descriptor, err error) {
	p.mu.Lock()
	p.done[desc.Digest] = err
	p.mu.Unlock()
}

type env struct {
	reg    *testimage.Registry
	stores *local.Stores
}

func newEnv(t *testing.T) *env {
	t.Helper()
	reg := testimage.NewRegistry()
	t.Cleanup(reg.Close)
	return &env{reg: reg, stores: newStores(t)}
}

func newStores(t *testing.T) *local.Stores {
	t.Helper()
	s, err := local.Open(context.Background(), filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) push(t *testing.T, repoTag string, what remote.Taggable) digest.Digest {
	t.Helper()
	h, err := testimage.Push(context.Background(), e.reg.Host+"/"+repoTag, what)
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(h.String())
}

// resolve resolves ref against the test registry the way the CLI does.
func (e *env) resolve(t *testing.T, ref string) *resolve.Resolved {
	t.Helper()
	r, err := reference.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	res, err := resolve.New(sremote.NewClient(), nil, nil).Resolve(context.Background(), r)
	if err != nil {
		t.Fatalf("resolve %s: %v", ref, err)
	}
	return res
}

func pullWith(t *testing.T, s *local.Stores, res *resolve.Resolved, opts ...pull.Option) (*images.Image, error) {
	t.Helper()
	return pull.New(s.Content, s.Images, s.Snapshots, opts...).Pull(context.Background(), res.Name, res.Target, res.Manifest, res.Fetcher)
}

func blobCount(t *testing.T, s *local.Stores) int {
	t.Helper()
	n := 0
	if err := s.Content.Walk(context.Background(), func(content.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPullLayered(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	e := newEnv(t)
	src, err := testimage.Layered(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	want := e.push(t, "demo/layered:1", src)
	res := e.resolve(t, e.reg.Host+"/demo/layered:1")
	e.reg.Reset()
	v := &verifier{}
	pr := &progress{bytes: map[digest.Digest]int64{}, done: map[digest.Digest]error{}}
	img, err := pullWith(t, e.stores, res, pull.WithVerifier(v), pull.WithProgress(pr))
	if err != nil {
		t.Fatalf("Pull = %v", err)
	}

	if want := []string{res.Name + "@" + want.String()}; !reflect.DeepEqual(v.judged, want) {
		t.Errorf("verifier judged %q, want %q", v.judged, want)
	}
	cfgName, _ := src.ConfigName()
	if img.Name != res.Name || img.Target.Digest != want || img.Manifest.Digest != want || img.Config.Digest.String() != cfgName.String() {
		t.Errorf("Pull = {name %s target %s manifest %s config %s}, want {%s %s %s %s}",
			img.Name, img.Target.Digest, img.Manifest.Digest, img.Config.Digest, res.Name, want, want, cfgName)
	}
	if len(img.Layers) != 4 || len(img.DiffIDs) != 4 {
		t.Fatalf("Pull recorded %d layers and %d diff IDs, want 4 and 4", len(img.Layers), len(img.DiffIDs))
	}
	cf, _ := src.ConfigFile()
	for i, d := range cf.RootFS.DiffIDs {
		if img.DiffIDs[i].String() != d.String() {
			t.Errorf("DiffIDs[%d] = %s, want %s", i, img.DiffIDs[i], d)
		}
	}
	chain := img.ChainIDs()
	if len(chain) != 4 {
		t.Fatalf("ChainIDs() has %d entries, want 4", len(chain))
	}
	for i, c := range chain {
		if !e.stores.Snapshots.Has(c) {
			t.Errorf("snapshot %d (%s) not committed after Pull", i, c)
		}
	}
	committed, _ := e.stores.Snapshots.Committed(context.Background())
	if len(committed) != 4 {
		t.Errorf("Committed() after Pull = %d snapshots, want 4", len(committed))
	}
	// The top layer's own files are in its snapshot.
	top := filepath.Join(e.stores.Root, "snapshots", "committed", chain[3].Encoded(), "fs", "bin", "hello")
	if b, err := os.ReadFile(top); err != nil || !strings.Contains(string(b), "hello from layer4") {
		t.Errorf("top snapshot bin/hello = %q, %v; want the layer 4 script", b, err)
	}

	stored, err := e.stores.Images.Get(context.Background(), res.Name)
	if err != nil || !reflect.DeepEqual(stored, img) {
		t.Errorf("Images.Get(%s) = %+v, %v; want what Pull returned", res.Name, stored, err)
	}
	if n := blobCount(t, e.stores); n != 6 {
		t.Errorf("content store holds %d blobs, want 6 (manifest, config, 4 layers)", n)
	}
	for _, l := range img.Layers {
		if pr.bytes[l.Digest] != l.Size {
			t.Errorf("progress for layer %s = %d bytes, want %d", l.Digest, pr.bytes[l.Digest], l.Size)
		}
		if err, ok := pr.done[l.Digest]; !ok || err != nil {
			t.Errorf("progress Done for layer %s = %v (reported %v), want nil", l.Digest, err, ok)
		}
	}
	if n := e.reg.Count("GET", "/v2/demo/layered/blobs/"); n != 5 {
		t.Errorf("blob GETs = %d, want 5 (config and 4 layers, each once)", n)
	}

	// Pulling again fetches no blob and reports no transfer: everything
	// is stored.
	e.reg.Reset()
	pr2 := &progress{bytes: map[digest.Digest]int64{}, done: map[digest.Digest]error{}}
	again, err := pullWith(t, e.stores, res, pull.WithVerifier(v), pull.WithProgress(pr2))
	if err != nil {
		t.Fatalf("second Pull = %v", err)
	}
	if n := e.reg.Count("GET", "/v2/"); n != 0 {
		t.Errorf("requests during a second Pull = %d, want 0", n)
	}
	if len(pr2.done) != 0 {
		t.Errorf("second Pull reported %d transfers, want 0", len(pr2.done))
	}
	if again.Manifest.Digest != img.Manifest.Digest || !reflect.DeepEqual(again.ChainIDs(), chain) {
		t.Errorf("second Pull = %s %v, want %s %v", again.Manifest.Digest, again.ChainIDs(), img.Manifest.Digest, chain)
	}
}

func TestPullRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src, err := testimage.Layered(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	e.push(t, "demo/refused:1", src)
	res := e.resolve(t, e.reg.Host+"/demo/refused:1")
	e.reg.Reset()

	no := errors.New("signature does not verify")
	tests := []struct {
		name    string
		opts    []pull.Option
		wantErr error
	}{
		{"verifier refuses", []pull.Option{pull.WithVerifier(&verifier{refuse: no})}, no},
		{"no verifier configured", nil, errdefs.ErrFailedPrecondition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStores(t)
			img, err := pullWith(t, s, res, tc.opts...)
			if !errors.Is(err, tc.wantErr) || img != nil {
				t.Fatalf("Pull = %v, %v; want %v", img, err, tc.wantErr)
			}
			if n := e.reg.Count("GET", "/v2/demo/refused/blobs/"); n != 0 {
				t.Errorf("blob GETs for a refused image = %d, want 0", n)
			}
			if n := e.reg.Count("GET", "/v2/"); n != 0 {
				t.Errorf("requests after resolving a refused image = %d, want 0", n)
			}
			if n := blobCount(t, s); n != 0 {
				t.Errorf("content store holds %d blobs after a refusal, want 0", n)
			}
			if all, _ := s.Images.List(context.Background()); len(all) != 0 {
				t.Errorf("images recorded after a refusal: %d, want 0", len(all))
			}
		})
	}
}

// TestPullSerialEqualsParallel pulls the same image with one download at a
// time and with the default parallelism: the records and the snapshots
// must be the same.
func TestPullSerialEqualsParallel(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	e := newEnv(t)
	src, err := testimage.Layered(testimage.Docker)
	if err != nil {
		t.Fatal(err)
	}
	e.push(t, "demo/par:1", src)
	res := e.resolve(t, e.reg.Host+"/demo/par:1")

	var recs []*images.Image
	var trees []map[string]string
	for _, n := range []int{1, 4} {
		s := newStores(t)
		f := &countingFetcher{Fetcher: res.Fetcher}
		img, err := pull.New(s.Content, s.Images, s.Snapshots, pull.WithVerifier(&verifier{}), pull.WithParallel(n)).
			Pull(context.Background(), res.Name, res.Target, res.Manifest, f)
		if err != nil {
			t.Fatalf("Pull with WithParallel(%d) = %v", n, err)
		}
		if f.max > int32(n) || (n > 1 && f.max < 2) {
			want := "1"
			if n > 1 {
				want = fmt.Sprintf("between 2 and %d", n)
			}
			t.Errorf("Pull with WithParallel(%d): %d blob downloads open at once, want %s", n, f.max, want)
		}
		img.Created = time.Time{} // the only field that may differ
		recs = append(recs, img)
		trees = append(trees, snapshotTree(t, s))
	}
	if !reflect.DeepEqual(recs[0], recs[1]) {
		t.Errorf("Pull with WithParallel(1) = %+v\nwith WithParallel(4) = %+v\nwant the same record", recs[0], recs[1])
	}
	if !reflect.DeepEqual(trees[0], trees[1]) {
		t.Errorf("snapshots with WithParallel(1) = %v\nwith WithParallel(4) = %v\nwant the same files", trees[0], trees[1])
	}
	if len(trees[0]) == 0 {
		t.Errorf("no files in the snapshots")
	}
}

// countingFetcher tracks how many blob downloads are open at once.
type countingFetcher struct {
	pull.Fetcher
	mu        sync.Mutex
	open, max int32
}

func (c *countingFetcher) FetchBlob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	c.mu.Lock()
	c.open++
	c.max = max(c.max, c.open)
	c.mu.Unlock()
	done := func() { c.mu.Lock(); c.open--; c.mu.Unlock() }
	// A slow network: every download lasts long enough for the others
	// the limit allows to start.
	time.Sleep(50 * time.Millisecond)
	rc, err := c.Fetcher.FetchBlob(ctx, desc)
	if err != nil {
		done()
		return nil, err
	}
	return &closeHook{ReadCloser: rc, onClose: done}, nil
}

type closeHook struct {
	io.ReadCloser
	once    sync.Once
	onClose func()
}

func (h *closeHook) Close() error {
	h.once.Do(h.onClose)
	return h.ReadCloser.Close()
}

// snapshotTree maps every path under committed/ to its type and content.
func snapshotTree(t *testing.T, s *local.Stores) map[string]string {
	t.Helper()
	root := filepath.Join(s.Root, "snapshots", "committed")
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		desc := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + digest.FromBytes(b).String()
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPullPlatform(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	e := newEnv(t)
	idx, err := testimage.MultiPlatform(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	want := e.push(t, "demo/multi:1", idx)
	im, _ := idx.IndexManifest()
	children := map[string]v1.Hash{}
	for _, m := range im.Manifests {
		children[m.Platform.Architecture] = m.Digest
	}
	res := e.resolve(t, e.reg.Host+"/demo/multi:1")

	// The recorded platform is the index entry's, variant included (the
	// config of the arm64 image does not name one).
	for arch, wantPlatform := range map[string]string{"amd64": "linux/amd64", "arm64": "linux/arm64/v8"} {
		t.Run(arch, func(t *testing.T) {
			s := newStores(t)
			img, err := pullWith(t, s, res, pull.WithVerifier(&verifier{}), pull.WithPlatform(ocispec.Platform{OS: "linux", Architecture: arch}))
			if err != nil {
				t.Fatalf("Pull(linux/%s) = %v", arch, err)
			}
			if img.Target.Digest != want || img.Manifest.Digest.String() != children[arch].String() || images.FormatPlatform(img.Platform) != wantPlatform {
				t.Errorf("Pull(linux/%s) = target %s manifest %s platform %s, want %s %s %s",
					arch, img.Target.Digest, img.Manifest.Digest, images.FormatPlatform(img.Platform), want, children[arch], wantPlatform)
			}
			if img.Manifest.Platform != nil {
				t.Errorf("recorded manifest descriptor carries a platform %v, want it in Image.Platform only", img.Manifest.Platform)
			}
			top := filepath.Join(s.Root, "snapshots", "committed", img.ChainIDs()[1].Encoded(), "fs", "etc", "arch")
			if b, err := os.ReadFile(top); err != nil || string(b) != arch+"\n" {
				t.Errorf("etc/arch in the top snapshot = %q, %v; want %q", b, err, arch+"\n")
			}
		})
	}

	t.Run("missing platform", func(t *testing.T) {
		e.reg.Reset()
		s := newStores(t)
		_, err := pullWith(t, s, res, pull.WithVerifier(&verifier{}), pull.WithPlatform(ocispec.Platform{OS: "linux", Architecture: "s390x"}))
		if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), "linux/arm64/v8") {
			t.Errorf("Pull(linux/s390x) = %v, want ErrNotFound naming the wanted and the available platforms", err)
		}
		if n := e.reg.Count("GET", "/v2/demo/multi/blobs/"); n != 0 {
			t.Errorf("blob GETs for a missing platform = %d, want 0", n)
		}
	})
}

// TestPullTampered serves images whose bytes do not match what their
// manifest and config promise. Nothing may be committed or recorded.
func TestPullTampered(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	src, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	rawManifest, _ := src.RawManifest()
	rawConfig, _ := src.RawConfigFile()
	layers, _ := src.Layers()
	compressed, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	if _, err := layer.ReadFrom(compressed); err != nil {
		t.Fatal(err)
	}
	compressed.Close()
	var m ocispec.Manifest
	if err := json.Unmarshal(rawManifest, &m); err != nil {
		t.Fatal(err)
	}

	// withConfig returns a manifest pointing at config.
	withConfig := func(config []byte) []byte {
		mm := m
		mm.Config.Digest, mm.Config.Size = digest.FromBytes(config), int64(len(config))
		b, _ := json.Marshal(mm)
		return b
	}
	// A config that claims another diff ID for the layer.
	var cfg map[string]any
	_ = json.Unmarshal(rawConfig, &cfg)
	cfg["rootfs"] = map[string]any{"type": "layers", "diff_ids": []string{digest.FromString("other layer").String()}}
	lyingConfig, _ := json.Marshal(cfg)
	flipped := bytes.Clone(layer.Bytes())
	flipped[len(flipped)/2] ^= 0xff

	tests := []struct {
		name     string
		manifest []byte
		config   []byte
		layer    []byte
		wantErr  error
	}{
		{"layer bytes changed", rawManifest, rawConfig, flipped, content.ErrDigestMismatch},
		{"layer truncated", rawManifest, rawConfig, layer.Bytes()[:layer.Len()/2], content.ErrSizeMismatch},
		{"config changed", rawManifest, append(bytes.Clone(rawConfig[:len(rawConfig)-1]), ' '), layer.Bytes(), content.ErrDigestMismatch},
		{"config lies about the diff ID", withConfig(lyingConfig), lyingConfig, layer.Bytes(), content.ErrDigestMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := testimage.NewStaticRegistry()
			defer reg.Close()
			var mm ocispec.Manifest
			_ = json.Unmarshal(tc.manifest, &mm)
			reg.Set("/v2/evil/app/manifests/1", testimage.Response{ContentType: ocispec.MediaTypeImageManifest, Body: tc.manifest})
			reg.Set("/v2/evil/app/blobs/"+mm.Config.Digest.String(), testimage.Response{Body: tc.config})
			reg.Set("/v2/evil/app/blobs/"+mm.Layers[0].Digest.String(), testimage.Response{Body: tc.layer})
			r, _ := reference.Parse(reg.Host + "/evil/app:1")
			res, err := resolve.New(sremote.NewClient(), nil, nil).Resolve(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			s := newStores(t)
			img, err := pullWith(t, s, res, pull.WithVerifier(&verifier{}))
			if !errors.Is(err, tc.wantErr) || img != nil {
				t.Fatalf("Pull = %v, %v; want %v", img, err, tc.wantErr)
			}
			if c, _ := s.Snapshots.Committed(context.Background()); len(c) != 0 {
				t.Errorf("snapshots committed from a tampered image: %v", c)
			}
			if all, _ := s.Images.List(context.Background()); len(all) != 0 {
				t.Errorf("images recorded from a tampered image: %d", len(all))
			}
			if !bytes.Equal(tc.layer, layer.Bytes()) {
				if _, err := s.Content.Info(context.Background(), mm.Layers[0].Digest); !errdefs.IsNotFound(err) {
					t.Errorf("Info(tampered layer) = %v, want ErrNotFound: it must not be stored", err)
				}
			}
		})
	}
}
