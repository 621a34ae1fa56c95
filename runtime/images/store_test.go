package images_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/images"
)

// hexDigest makes a sha256 digest whose hex starts with prefix, so tests
// can choose which IDs share a prefix.
func hexDigest(prefix string) digest.Digest {
	return digest.Digest("sha256:" + prefix + strings.Repeat("0", 64-len(prefix)))
}

func testImage(name, configHex, manifestHex string) *images.Image {
	diffIDs := []digest.Digest{digest.FromString(name + "/diff0"), digest.FromString(name + "/diff1")}
	return &images.Image{
		Name:     name,
		Target:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString(name + "/index"), Size: 300},
		Manifest: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: hexDigest(manifestHex), Size: 500},
		Config:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: hexDigest(configHex), Size: 1000},
		Layers: []ocispec.Descriptor{
			{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(name + "/layer0"), Size: 10000},
			{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(name + "/layer1"), Size: 20000},
		},
		DiffIDs:  diffIDs,
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Created:  time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC),
	}
}

func newImageStore(t *testing.T) (*images.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "images")
	s, err := images.NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func names(imgs []*images.Image) []string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.Name)
	}
	return out
}

func TestImageAccessors(t *testing.T) {
	t.Parallel()
	img := testImage("example.com/a:1", "abcd", "ef01")
	if got, want := img.ID(), hexDigest("abcd"); got != want {
		t.Errorf("ID() = %s, want the config digest %s", got, want)
	}
	if got, want := img.Size(), int64(1000+10000+20000); got != want {
		t.Errorf("Size() = %d, want config + layers = %d", got, want)
	}
	if got, want := img.ChainIDs(), images.ChainIDs(img.DiffIDs); !reflect.DeepEqual(got, want) {
		t.Errorf("ChainIDs() = %v, want %v", got, want)
	}
}

func TestStorePutGetListDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, dir := newImageStore(t)
	a := testImage("registry.example.com/team/app:1.0", "aaaa", "1111")
	b := testImage("docker.io/library/busybox:latest", "bbbb", "2222")
	for _, img := range []*images.Image{a, b} {
		if err := s.Put(ctx, img); err != nil {
			t.Fatalf("Put(%s) = %v", img.Name, err)
		}
	}
	for _, want := range []*images.Image{a, b} {
		got, err := s.Get(ctx, want.Name)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Get(%s) = %+v, %v; want %+v", want.Name, got, err, want)
		}
	}
	if _, err := s.Get(ctx, "docker.io/library/busybox:other"); !errdefs.IsNotFound(err) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}

	// Put replaces.
	a2 := testImage(a.Name, "cccc", "3333")
	if err := s.Put(ctx, a2); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, a.Name); err != nil || got.ID() != a2.ID() {
		t.Errorf("Get after second Put = %v, %v; want ID %s", got, err, a2.ID())
	}

	// List is sorted by name and ignores temporary files and strangers.
	for _, junk := range []string{".tmp-123", ".tmp-456.json", "README"} {
		if err := os.WriteFile(filepath.Join(dir, junk), []byte("not a record"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(all), []string{b.Name, a.Name}; !reflect.DeepEqual(got, want) {
		t.Errorf("List() = %q, want %q", got, want)
	}

	if err := s.Delete(ctx, a.Name); err != nil {
		t.Errorf("Delete(%s) = %v", a.Name, err)
	}
	if err := s.Delete(ctx, a.Name); !errdefs.IsNotFound(err) {
		t.Errorf("second Delete(%s) = %v, want ErrNotFound", a.Name, err)
	}
	if _, err := s.Get(ctx, a.Name); !errdefs.IsNotFound(err) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	all, _ = s.List(ctx)
	if got, want := names(all), []string{b.Name}; !reflect.DeepEqual(got, want) {
		t.Errorf("List() after Delete = %q, want %q", got, want)
	}
	// No temporary record is left behind by Put.
	left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	sort.Strings(left)
	if want := []string{filepath.Join(dir, ".tmp-123"), filepath.Join(dir, ".tmp-456.json")}; !reflect.DeepEqual(left, want) {
		t.Errorf("temporary files = %q, want only the planted %q", left, want)
	}
}

func TestStoreLookup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newImageStore(t)
	// app:1 and app:2 share a config prefix "abcd"; tool's manifest starts
	// like app:1's config so a prefix can match both kinds of digest.
	app1 := testImage("example.com/app:1", "abcd1", "f00d1")
	app2 := testImage("example.com/app:2", "abcd2", "f00d2")
	tool := testImage("example.com/tool:1", "9999", "abcd1e")
	for _, img := range []*images.Image{app1, app2, tool} {
		if err := s.Put(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		key  string
		want []string // names, sorted; nil for not found
	}{
		{"example.com/app:1", []string{app1.Name}},
		{"example.com/tool:1", []string{tool.Name}},
		{app2.ID().String(), []string{app2.Name}},            // full ID
		{app2.ID().Encoded(), []string{app2.Name}},           // full hex
		{"abcd2", []string{app2.Name}},                       // ID prefix
		{"sha256:abcd2", []string{app2.Name}},                // ID prefix with algorithm
		{"9999", []string{tool.Name}},                        // exactly 4 hex digits
		{"abcd", []string{app1.Name, app2.Name, tool.Name}},  // two IDs and a manifest
		{"abcd1", []string{app1.Name, tool.Name}},            // ID of one, manifest of the other
		{"f00d1", []string{app1.Name}},                       // manifest digest prefix
		{app2.Manifest.Digest.String(), []string{app2.Name}}, // full manifest digest
		{"f00d", []string{app1.Name, app2.Name}},
		{"abc", nil},        // too short
		{"sha256:abc", nil}, // too short after the algorithm
		{"", nil},
		{"sha256:", nil},
		{"example.com/app:3", nil},
		{"example.com/app", nil}, // names are exact
		{"dead", nil},
	}
	for _, tc := range tests {
		got, err := s.Lookup(ctx, tc.key)
		if tc.want == nil {
			if !errdefs.IsNotFound(err) || got != nil {
				t.Errorf("Lookup(%q) = %q, %v; want ErrNotFound", tc.key, names(got), err)
			} else if !strings.Contains(err.Error(), "sigil images") {
				t.Errorf("Lookup(%q) error %q, want it to point at 'sigil images'", tc.key, err)
			}
			continue
		}
		n := names(got)
		sort.Strings(n)
		if err != nil || !reflect.DeepEqual(n, tc.want) {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tc.key, n, err, tc.want)
		}
	}
}

func TestStoreCorruptRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, dir := newImageStore(t)
	good := testImage("example.com/good:1", "aaaa", "bbbb")
	bad := testImage("example.com/bad:1", "cccc", "dddd")
	for _, img := range []*images.Image{good, bad} {
		if err := s.Put(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	record := filepath.Join(dir, digest.FromString(bad.Name).Encoded()+".json")
	if err := os.WriteFile(record, []byte(`{"name": "example.com/bad:1", "target": {`), 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := s.Get(ctx, bad.Name)
	if err == nil || errdefs.IsNotFound(err) {
		t.Fatalf("Get(corrupt record) = %v, want a corruption error, not not-found", err)
	}
	for _, want := range []string{record, bad.Name, "corrupt", "fetch the image again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Get(corrupt record) error %q, want it to mention %q", err, want)
		}
	}
	_, err = s.List(ctx)
	if err == nil || !strings.Contains(err.Error(), filepath.Base(record)) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("List with a corrupt record = %v, want an error naming %s", err, filepath.Base(record))
	}
	if _, err := s.Lookup(ctx, "aaaa"); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("Lookup with a corrupt record = %v, want the corruption reported", err)
	}
	// The good record is still readable by name, and Delete clears the bad one.
	if got, err := s.Get(ctx, good.Name); err != nil || got.ID() != good.ID() {
		t.Errorf("Get(good) next to a corrupt record = %v, %v", got, err)
	}
	if err := s.Delete(ctx, bad.Name); err != nil {
		t.Fatalf("Delete(corrupt record) = %v", err)
	}
	if all, err := s.List(ctx); err != nil || len(all) != 1 {
		t.Errorf("List after deleting the corrupt record = %q, %v; want [%s]", names(all), err, good.Name)
	}
}
