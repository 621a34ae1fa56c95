package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/tests/testimage"
)

// hostileImage is the parts of an image a hostile registry serves; each
// case spoils one of them.
type hostileImage struct {
	layer        []byte // compressed as served
	layerDesc    ocispec.Descriptor
	config       []byte
	configDesc   ocispec.Descriptor
	manifestType string
	// blobBody, when set, is served instead of layer (the descriptor still
	// describes layer).
	blobBody      []byte
	blobLength    int // declared Content-Length, when not 0
	manifestBytes []byte
}

func tarOf(t *testing.T, entries ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = 5
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// newHostile builds a well-formed image around one uncompressed layer tar.
func newHostile(t *testing.T, layerTar []byte) *hostileImage {
	t.Helper()
	h := &hostileImage{layer: gz(layerTar)}
	h.layerDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(h.layer), Size: int64(len(h.layer))}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layerTar)}},
	}
	h.config, _ = json.Marshal(cfg)
	h.configDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(h.config), Size: int64(len(h.config))}
	h.manifestType = ocispec.MediaTypeImageManifest
	return h
}

func (h *hostileImage) manifestJSON() []byte {
	if h.manifestBytes != nil {
		return h.manifestBytes
	}
	m := ocispec.Manifest{MediaType: h.manifestType, Config: h.configDesc, Layers: []ocispec.Descriptor{h.layerDesc}}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	return b
}

func (h *hostileImage) serve(reg *testimage.StaticRegistry, repo string) {
	reg.Set("/v2/"+repo+"/manifests/latest", testimage.Response{ContentType: h.manifestType, Body: h.manifestJSON()})
	reg.Set("/v2/"+repo+"/blobs/"+h.configDesc.Digest.String(), testimage.Response{Body: h.config})
	body := h.layer
	if h.blobBody != nil {
		body = h.blobBody
	}
	reg.Set("/v2/"+repo+"/blobs/"+h.layerDesc.Digest.String(), testimage.Response{Body: body, ContentLength: h.blobLength})
}

// TestHostileImagesAreRefused serves broken and malicious images and checks
// that each is refused with an error that names the problem, that nothing
// lands outside the store, and that the store holds nothing half-done.
func TestHostileImagesAreRefused(t *testing.T) {
	e := newEnv(t)
	reg := testimage.NewStaticRegistry()
	t.Cleanup(reg.Close)
	outside := filepath.Join(filepath.Dir(e.root), "outside")
	reg2 := filepath.Join(filepath.Dir(e.root), "escaped")

	cases := []struct {
		name  string
		build func(t *testing.T) *hostileImage
		flags []string
		want  string // in stderr
	}{
		{"path traversal", func(t *testing.T) *hostileImage {
			return newHostile(t, tarOf(t, &tar.Header{Name: "../../escaped", Typeflag: tar.TypeReg}))
		}, nil, "escaped"},
		{"absolute path", func(t *testing.T) *hostileImage {
			return newHostile(t, tarOf(t, &tar.Header{Name: reg2, Typeflag: tar.TypeReg}))
		}, nil, "escaped"},
		{"symlink escape then write through it", func(t *testing.T) *hostileImage {
			return newHostile(t, tarOf(t,
				&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: filepath.Dir(e.root)},
				&tar.Header{Name: "link/escaped", Typeflag: tar.TypeReg}))
		}, nil, "link/escaped"},
		{"hardlink to a file outside", func(t *testing.T) *hostileImage {
			return newHostile(t, tarOf(t, &tar.Header{Name: "passwd", Typeflag: tar.TypeLink, Linkname: "../../../../../../etc/passwd"}))
		}, nil, "passwd"},
		{"whiteout escaping the layer", func(t *testing.T) *hostileImage {
			return newHostile(t, tarOf(t, &tar.Header{Name: "etc/.wh...", Typeflag: tar.TypeReg}))
		}, nil, ".wh.."},
		{"device node", func(t *testing.T) *hostileImage {
			return newHostile(t, tarOf(t, &tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Mode: 0o660}))
		}, nil, "dev/sda"},
		{"digest mismatch", func(t *testing.T) *hostileImage {
			h := newHostile(t, tarOf(t, &tar.Header{Name: "ok", Typeflag: tar.TypeReg}))
			h.blobBody = append([]byte{}, h.layer...)
			h.blobBody[len(h.blobBody)/2] ^= 0xff
			return h
		}, nil, "digest mismatch"},
		{"size mismatch", func(t *testing.T) *hostileImage {
			h := newHostile(t, tarOf(t, &tar.Header{Name: "ok", Typeflag: tar.TypeReg}))
			h.blobBody = append(append([]byte{}, h.layer...), "trailing"...)
			return h
		}, nil, "size mismatch"},
		{"truncated blob", func(t *testing.T) *hostileImage {
			h := newHostile(t, tarOf(t, &tar.Header{Name: "ok", Typeflag: tar.TypeReg}))
			h.blobBody = h.layer[:len(h.layer)/2]
			return h
		}, nil, "size mismatch"},
		{"oversized manifest", func(t *testing.T) *hostileImage {
			h := newHostile(t, tarOf(t, &tar.Header{Name: "ok", Typeflag: tar.TypeReg}))
			h.manifestBytes = append([]byte(`{"schemaVersion":2,"pad":"`), bytes.Repeat([]byte("a"), 5<<20)...)
			h.manifestBytes = append(h.manifestBytes, `"}`...)
			return h
		}, nil, "refusing a manifest that large"},
		{"malformed JSON", func(t *testing.T) *hostileImage {
			h := newHostile(t, tarOf(t, &tar.Header{Name: "ok", Typeflag: tar.TypeReg}))
			h.manifestBytes = []byte(`{"schemaVersion":2,"config":{`)
			return h
		}, nil, "not valid JSON"},
		{"unknown media type", func(t *testing.T) *hostileImage {
			h := newHostile(t, tarOf(t, &tar.Header{Name: "ok", Typeflag: tar.TypeReg}))
			h.layerDesc.MediaType = "application/vnd.example.mystery"
			return h
		}, nil, "application/vnd.example.mystery"},
		{"decompression bomb", func(t *testing.T) *hostileImage {
			return newHostile(t, tarOf(t, &tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Size: 8 << 20}))
		}, []string{"--max-layer-size", "1MiB"}, "decompression bomb"},
		{"diff ID mismatch", func(t *testing.T) *hostileImage {
			h := newHostile(t, tarOf(t, &tar.Header{Name: "ok", Typeflag: tar.TypeReg}))
			var cfg ocispec.Image
			json.Unmarshal(h.config, &cfg)
			cfg.RootFS.DiffIDs[0] = digest.FromString("something else")
			h.config, _ = json.Marshal(cfg)
			h.configDesc.Digest, h.configDesc.Size = digest.FromBytes(h.config), int64(len(h.config))
			return h
		}, nil, "tampered"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := "hostile/" + strings.ToLower(strings.ReplaceAll(c.name, " ", "-"))
			c.build(t).serve(reg, repo)
			_ = i
			args := append([]string{"fetch", "-q"}, c.flags...)
			r, err := e.sigil(append(args, reg.Host+"/"+repo)...)
			if err != nil {
				t.Fatal(err)
			}
			if r.code != 125 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("fetch of %q = %v\nwant exit 125 and %q in the message", c.name, r, c.want)
			}
			for _, p := range []string{outside, reg2, filepath.Join(filepath.Dir(e.root), "link")} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s: %s was written outside the store", c.name, p)
				}
			}
			assertStoreConsistent(t, e)
		})
	}
}

// assertStoreConsistent checks that failed fetches left no image record,
// no partial download and no half-unpacked layer.
func assertStoreConsistent(t *testing.T, e *env) {
	t.Helper()
	if list := e.mustSigil("images", "-q"); strings.TrimSpace(list.stdout) != "" {
		t.Errorf("images after refused fetches = %q, want none", list.stdout)
	}
	for _, dir := range []string{"content/ingest", "snapshots/tmp"} {
		entries, _ := os.ReadDir(filepath.Join(e.root, dir))
		if len(entries) != 0 {
			t.Errorf("%s holds %d leftovers after a refused fetch, want 0", dir, len(entries))
		}
	}
	entries, _ := os.ReadDir(filepath.Join(e.root, "snapshots/committed"))
	for _, en := range entries {
		sub, _ := os.ReadDir(filepath.Join(e.root, "snapshots/committed", en.Name(), "fs"))
		for _, s := range sub {
			if s.Name() != "ok" && s.Name() != "zeros" {
				t.Errorf("committed snapshot %s holds %q from a refused layer", en.Name(), s.Name())
			}
		}
	}
}
