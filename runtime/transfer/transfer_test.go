package transfer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/content"
	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/transfer"
	"github.com/sigil-project/sigil/tests/testimage"
)

func busybox(t *testing.T) v1.Image {
	t.Helper()
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func imageDigest(t *testing.T, img v1.Image) digest.Digest {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(h.String())
}

// writeLayout writes img into a new OCI layout under ref.name tag.
func writeLayout(t *testing.T, img v1.Image, annotations map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(annotations)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tarEntry is one member of a hand-built archive.
type tarEntry struct {
	name     string
	typeflag byte
	body     string
	linkname string
}

func writeTar(t *testing.T, entries []tarEntry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typeflag
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Linkname: e.linkname, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "archive.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// tarLayout makes an oci-archive of a layout directory, as skopeo writes one.
func tarLayout(t *testing.T, dir string) string {
	t.Helper()
	var entries []tarEntry
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.IsDir() {
			entries = append(entries, tarEntry{name: rel + "/", typeflag: tar.TypeDir})
			return nil
		}
		b, err := os.ReadFile(p)
		entries = append(entries, tarEntry{name: rel, body: string(b)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return writeTar(t, entries)
}

func assertEmptyDir(t *testing.T, dir, what string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %q, want it empty", what, names)
	}
}

func TestLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	img := busybox(t)
	want := imageDigest(t, img)
	dir := writeLayout(t, img, map[string]string{ocispec.AnnotationRefName: "1.0"})

	l, err := transfer.OpenLayout(dir)
	if err != nil {
		t.Fatalf("OpenLayout(%s) = %v", dir, err)
	}
	defer l.Close()
	for _, tag := range []string{"1.0", ""} { // "" picks the only image
		desc, b, err := l.Resolve(ctx, tag)
		if err != nil {
			t.Fatalf("Resolve(%q) = %v", tag, err)
		}
		if desc.Digest != want || desc.MediaType != ocispec.MediaTypeImageManifest || digest.FromBytes(b) != want || desc.Size != int64(len(b)) {
			t.Errorf("Resolve(%q) = %s %s (%d bytes), want %s %s", tag, desc.MediaType, desc.Digest, len(b), ocispec.MediaTypeImageManifest, want)
		}
	}
	if _, _, err := l.Resolve(ctx, "2.0"); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), `"1.0"`) {
		t.Errorf("Resolve(2.0) = %v, want ErrNotFound listing the tag 1.0", err)
	}

	m, _ := img.Manifest()
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		desc := ocispec.Descriptor{Digest: digest.Digest(d.Digest.String()), Size: d.Size}
		rc, err := l.FetchBlob(ctx, desc)
		if err != nil {
			t.Fatalf("FetchBlob(%s) = %v", desc.Digest, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if digest.FromBytes(b) != desc.Digest || int64(len(b)) != desc.Size {
			t.Errorf("FetchBlob(%s) read %d bytes hashing to %s", desc.Digest, len(b), digest.FromBytes(b))
		}
	}
	if _, err := l.FetchBlob(ctx, ocispec.Descriptor{Digest: digest.FromString("absent")}); err == nil {
		t.Errorf("FetchBlob(absent) = nil error")
	}
	if _, err := l.FetchBlob(ctx, ocispec.Descriptor{Digest: "sha256:../../oci-layout"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("FetchBlob(invalid digest) = %v, want ErrInvalidArgument", err)
	}
	manifestDesc := ocispec.Descriptor{Digest: want, Size: mustSize(t, img)}
	if _, err := l.FetchManifest(ctx, manifestDesc); err != nil {
		t.Errorf("FetchManifest(%s) = %v", want, err)
	}
	short := manifestDesc
	short.Size--
	if _, err := l.FetchManifest(ctx, short); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("FetchManifest(wrong size) = %v, want a mismatch error", err)
	}
}

func mustSize(t *testing.T, img v1.Image) int64 {
	t.Helper()
	n, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLayoutInvalid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	img := busybox(t)
	tests := []struct {
		name    string
		setup   func(dir string) error
		open    bool // OpenLayout succeeds, Resolve/FetchBlob fail
		wantErr error
		wantMsg string
	}{
		{name: "no marker", setup: func(dir string) error { return os.Remove(filepath.Join(dir, "oci-layout")) },
			wantErr: errdefs.ErrInvalidArgument, wantMsg: "no oci-layout marker"},
		{name: "marker of another version", setup: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"2.0.0"}`), 0o644)
		}, wantErr: errdefs.ErrInvalidArgument, wantMsg: "unsupported oci-layout"},
		{name: "marker not JSON", setup: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`1.0.0`), 0o644)
		}, wantErr: errdefs.ErrInvalidArgument, wantMsg: "unsupported oci-layout"},
		{name: "not a directory", setup: func(dir string) error {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			return os.WriteFile(dir, []byte("file"), 0o644)
		}, wantMsg: "OCI layout"},
		{name: "index.json missing", open: true, setup: func(dir string) error { return os.Remove(filepath.Join(dir, "index.json")) },
			wantMsg: "index.json"},
		{name: "index.json wrong version", open: true, setup: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":1,"manifests":[]}`), 0o644)
		}, wantErr: errdefs.ErrInvalidArgument, wantMsg: "schemaVersion 1"},
		{name: "manifest blob replaced", open: true, setup: func(dir string) error {
			h, _ := img.Digest()
			p := filepath.Join(dir, "blobs", "sha256", h.Hex)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, bytes.Replace(b, []byte(`"size"`), []byte(`"Size"`), 1), 0o644)
		}, wantMsg: "tampered"},
		{name: "manifest blob links outside", open: true, setup: func(dir string) error {
			h, _ := img.Digest()
			p := filepath.Join(dir, "blobs", "sha256", h.Hex)
			outside := filepath.Join(filepath.Dir(dir), "outside-manifest")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(outside, b, 0o644); err != nil {
				return err
			}
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink(outside, p)
		}, wantMsg: "escapes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := writeLayout(t, img, map[string]string{ocispec.AnnotationRefName: "1.0"})
			if err := tc.setup(dir); err != nil {
				t.Fatal(err)
			}
			l, err := transfer.OpenLayout(dir)
			if tc.open {
				if err != nil {
					t.Fatalf("OpenLayout = %v, want it to open", err)
				}
				defer l.Close()
				_, _, err = l.Resolve(ctx, "1.0")
			}
			if err == nil {
				t.Fatalf("%s: got no error", tc.name)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), dir) {
				t.Errorf("%s: error %q, want it to name %s and say %q", tc.name, err, dir, tc.wantMsg)
			}
		})
	}
}

func TestOpenDockerArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	img := busybox(t)
	tag, err := name.NewTag("registry.example.com/team/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "app.tar")
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	a, err := transfer.OpenArchive(ctx, file, tmp)
	if err != nil {
		t.Fatalf("OpenArchive(docker-archive) = %v", err)
	}
	if a.Format != transfer.DockerArchive || len(a.Images) != 1 {
		t.Fatalf("OpenArchive = %s with %d images, want docker-archive with 1", a.Format, len(a.Images))
	}
	im := a.Images[0]
	if im.Name != "registry.example.com/team/app:1.0" {
		t.Errorf("image name = %q, want registry.example.com/team/app:1.0", im.Name)
	}
	checkImported(t, im, img)
	if err := a.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	assertEmptyDir(t, tmp, "tmpDir after Close")

	// Without RepoTags the image has no name; it is still importable.
	untagged := filepath.Join(t.TempDir(), "untagged.tar")
	f, err := os.Create(untagged)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.MultiRefWrite(map[name.Reference]v1.Image{mustDigestRef(t, img): img}, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	a, err = transfer.OpenArchive(ctx, untagged, tmp)
	if err != nil {
		t.Fatalf("OpenArchive(untagged docker-archive) = %v", err)
	}
	defer a.Close()
	if len(a.Images) != 1 || a.Images[0].Name != "" {
		t.Fatalf("untagged archive images = %+v, want one without a name", a.Images)
	}
	checkImported(t, a.Images[0], img)
}

func mustDigestRef(t *testing.T, img v1.Image) name.Reference {
	t.Helper()
	h, _ := img.Digest()
	d, err := name.NewDigest("registry.example.com/team/app@" + h.String())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkImported resolves an imported image and compares it with the source:
// a docker-archive keeps the config (so the image ID) and the layers' diff
// IDs, though not always the manifest bytes.
func checkImported(t *testing.T, im transfer.Imported, src v1.Image) {
	t.Helper()
	ctx := context.Background()
	desc, b, err := im.Layout.Resolve(ctx, im.Tag)
	if err != nil {
		t.Fatalf("Resolve(%q) in the imported layout = %v", im.Tag, err)
	}
	if !images.IsManifest(desc.MediaType) {
		t.Errorf("imported media type = %s, want a manifest", desc.MediaType)
	}
	m, err := images.ParseManifest(b)
	if err != nil {
		t.Fatalf("imported manifest: %v", err)
	}
	wantCfg, _ := src.ConfigName()
	if m.Config.Digest.String() != wantCfg.String() {
		t.Errorf("imported config = %s, want %s", m.Config.Digest, wantCfg)
	}
	srcLayers, _ := src.Layers()
	if len(m.Layers) != len(srcLayers) {
		t.Fatalf("imported %d layers, want %d", len(m.Layers), len(srcLayers))
	}
	for _, l := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		rc, err := im.Layout.FetchBlob(ctx, l)
		if err != nil {
			t.Fatalf("FetchBlob(%s) = %v", l.Digest, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if digest.FromBytes(got) != l.Digest {
			t.Errorf("imported blob %s hashes to %s", l.Digest, digest.FromBytes(got))
		}
	}
}

func TestOpenOCIArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	img := busybox(t)
	want := imageDigest(t, img)
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		wantName    string
	}{
		{"ref.name only", map[string]string{ocispec.AnnotationRefName: "1.0"}, "1.0"},
		{"containerd name", map[string]string{ocispec.AnnotationRefName: "1.0", "io.containerd.image.name": "registry.example.com/team/app:1.0"}, "registry.example.com/team/app:1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tarLayout(t, writeLayout(t, img, tc.annotations))
			tmp := t.TempDir()
			a, err := transfer.OpenArchive(ctx, file, tmp)
			if err != nil {
				t.Fatalf("OpenArchive(oci-archive) = %v", err)
			}
			if a.Format != transfer.OCIArchive || len(a.Images) != 1 {
				t.Fatalf("OpenArchive = %s with %d images, want oci-archive with 1", a.Format, len(a.Images))
			}
			im := a.Images[0]
			if im.Name != tc.wantName || im.Tag != "1.0" {
				t.Errorf("image = name %q tag %q, want %q and 1.0", im.Name, im.Tag, tc.wantName)
			}
			desc, _, err := im.Layout.Resolve(ctx, im.Tag)
			if err != nil || desc.Digest != want {
				t.Errorf("Resolve(%s) = %s, %v; want %s (an oci-archive keeps the manifest)", im.Tag, desc.Digest, err, want)
			}
			checkImported(t, im, img)
			a.Close()
			assertEmptyDir(t, tmp, "tmpDir after Close")
		})
	}
}

// TestOpenArchiveHostile feeds archives whose entries try to leave the
// scratch directory or are not plain files. Each is refused, nothing is
// written outside, and the scratch copy is removed.
func TestOpenArchiveHostile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	marker := tarEntry{name: "oci-layout", body: `{"imageLayoutVersion":"1.0.0"}`}
	tests := []struct {
		name    string
		entries []tarEntry
		wantMsg string
	}{
		{"parent", []tarEntry{marker, {name: "../escaped", body: "x"}}, "escapes"},
		{"dot parent", []tarEntry{marker, {name: "./../escaped", body: "x"}}, "escapes"},
		{"nested parent", []tarEntry{marker, {name: "blobs/../../escaped", body: "x"}}, "escapes"},
		{"deep parent", []tarEntry{marker, {name: "a/b/../../../../escaped", body: "x"}}, "escapes"},
		{"bare parent", []tarEntry{{name: "..", typeflag: tar.TypeDir}}, "escapes"},
		{"parent dir", []tarEntry{{name: "../escaped-dir/", typeflag: tar.TypeDir}}, "escapes"},
		{"absolute", []tarEntry{marker, {name: "/tmp/escaped", body: "x"}}, "escapes"},
		{"absolute dir", []tarEntry{{name: "/escaped-dir/", typeflag: tar.TypeDir}}, "escapes"},
		{"char device", []tarEntry{marker, {name: "dev", typeflag: tar.TypeChar}}, "unsupported type"},
		{"fifo", []tarEntry{marker, {name: "fifo", typeflag: tar.TypeFifo}}, "unsupported type"},
		{"duplicate file", []tarEntry{marker, {name: "index.json", body: "{}"}, {name: "index.json", body: "{}"}}, "index.json"},
		// A symlink is skipped, so a file "through" it lands in a real
		// directory inside the scratch copy, never at the link's target.
		{"file through a symlink", []tarEntry{{name: "link", typeflag: tar.TypeSymlink, linkname: "../.."}, {name: "link/escaped", body: "x"}}, "neither a docker-archive"},
		{"hard link", []tarEntry{{name: "hl", typeflag: tar.TypeLink, linkname: "/etc/passwd"}}, "neither a docker-archive"},
		{"empty", nil, "neither a docker-archive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := writeTar(t, tc.entries)
			base := t.TempDir()
			tmp := filepath.Join(base, "a", "b", "tmp") // room below base for ../ to land in
			if err := os.MkdirAll(tmp, 0o700); err != nil {
				t.Fatal(err)
			}
			a, err := transfer.OpenArchive(ctx, file, tmp)
			if err == nil {
				a.Close()
				t.Fatalf("OpenArchive(%s) = nil error, want it refused", tc.name)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), file) {
				t.Errorf("OpenArchive(%s) error %q, want it to name the file and say %q", tc.name, err, tc.wantMsg)
			}
			if tc.wantMsg != "index.json" && !errdefs.IsInvalidArgument(err) {
				t.Errorf("OpenArchive(%s) = %v, want ErrInvalidArgument", tc.name, err)
			}
			assertEmptyDir(t, tmp, "tmpDir after a refused archive")
			// Nothing was created anywhere under base but the tmp chain.
			filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
				if err == nil && strings.Contains(fi.Name(), "escaped") {
					t.Errorf("%s was created outside the scratch directory", p)
				}
				return nil
			})
		})
	}

	t.Run("not a tar", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "junk.tar")
		if err := os.WriteFile(file, bytes.Repeat([]byte("junk"), 300), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := t.TempDir()
		if _, err := transfer.OpenArchive(ctx, file, tmp); err == nil || !strings.Contains(err.Error(), "not a valid tar archive") {
			t.Errorf("OpenArchive(junk) = %v, want 'not a valid tar archive'", err)
		}
		assertEmptyDir(t, tmp, "tmpDir after junk")
	})
}

// storeImage puts img's manifest, config and layers into cs and returns
// the record a pull would have made.
func storeImage(t *testing.T, cs *content.Store, img v1.Image, imgName string) *images.Image {
	t.Helper()
	ctx := context.Background()
	put := func(b []byte, mt string) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
		if err := cs.Write(ctx, d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		return d
	}
	rawManifest, _ := img.RawManifest()
	rawConfig, _ := img.RawConfigFile()
	manifest := put(rawManifest, ocispec.MediaTypeImageManifest)
	m, err := images.ParseManifest(rawManifest)
	if err != nil {
		t.Fatal(err)
	}
	put(rawConfig, m.Config.MediaType)
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		put(b, ocispec.MediaTypeImageLayerGzip)
	}
	cfg, err := images.ParseConfig(rawConfig, m)
	if err != nil {
		t.Fatal(err)
	}
	return &images.Image{
		Name: imgName, Target: manifest, Manifest: manifest, Config: m.Config, Layers: m.Layers,
		DiffIDs: cfg.RootFS.DiffIDs, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
	}
}

func TestExportRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs, err := content.NewStore(filepath.Join(t.TempDir(), "content"))
	if err != nil {
		t.Fatal(err)
	}
	src := busybox(t)
	rec := storeImage(t, cs, src, "registry.example.com/team/app:1.0")

	for _, f := range []transfer.Format{transfer.OCIArchive, transfer.DockerArchive} {
		t.Run(string(f), func(t *testing.T) {
			out := t.TempDir()
			file := filepath.Join(out, "app.tar")
			tmp := t.TempDir()
			if err := transfer.Export(ctx, cs, rec, file, f, tmp); err != nil {
				t.Fatalf("Export(%s) = %v", f, err)
			}
			assertEmptyDir(t, tmp, "tmpDir after Export")
			if entries, _ := os.ReadDir(out); len(entries) != 1 {
				t.Errorf("output dir after Export holds %d entries, want only the archive", len(entries))
			}
			a, err := transfer.OpenArchive(ctx, file, tmp)
			if err != nil {
				t.Fatalf("OpenArchive(exported %s) = %v", f, err)
			}
			defer a.Close()
			if a.Format != f || len(a.Images) != 1 {
				t.Fatalf("OpenArchive(exported %s) = %s with %d images", f, a.Format, len(a.Images))
			}
			im := a.Images[0]
			if im.Name != rec.Name {
				t.Errorf("exported %s name = %q, want %q", f, im.Name, rec.Name)
			}
			desc, _, err := im.Layout.Resolve(ctx, im.Tag)
			if err != nil {
				t.Fatal(err)
			}
			if f == transfer.OCIArchive && desc.Digest != rec.Manifest.Digest {
				t.Errorf("oci-archive round trip manifest = %s, want %s", desc.Digest, rec.Manifest.Digest)
			}
			checkImported(t, im, src)
		})
	}

	t.Run("failures leave no file", func(t *testing.T) {
		out := t.TempDir()
		file := filepath.Join(out, "app.tar")
		if err := transfer.Export(ctx, cs, rec, file, "tarball", t.TempDir()); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Export(unknown format) = %v, want ErrInvalidArgument", err)
		}
		missing := *rec
		missing.Layers = append([]ocispec.Descriptor{{Digest: digest.FromString("not stored"), Size: 10}}, rec.Layers...)
		if err := transfer.Export(ctx, cs, &missing, file, transfer.OCIArchive, t.TempDir()); !errdefs.IsNotFound(err) {
			t.Errorf("Export(missing blob) = %v, want ErrNotFound", err)
		}
		assertEmptyDir(t, out, "output dir after failed Exports")
	})
}
