package images_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/images"
)

const (
	ociManifest  = ocispec.MediaTypeImageManifest
	ociIndex     = ocispec.MediaTypeImageIndex
	dockerMan    = images.MediaTypeDockerManifest
	dockerList   = images.MediaTypeDockerManifestList
	schema1      = "application/vnd.docker.distribution.manifest.v1+json"
	schema1Sig   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	ociArtifact  = "application/vnd.oci.artifact.manifest.v1+json"
	helmConfig   = "application/vnd.cncf.helm.config.v1+json"
	anyDigestHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

var (
	configDigest = digest.FromString("config")
	layerDigest  = digest.FromString("layer")
)

// withField adds "mediaType": mt to a JSON object.
func withField(mt, doc string) string {
	return `{"mediaType":"` + mt + `",` + strings.TrimPrefix(doc, "{")
}

const (
	manifestShape = `{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + anyDigestHex + `","size":2},"layers":[]}`
	indexShape    = `{"schemaVersion":2,"manifests":[]}`
	schema1Doc    = `{"schemaVersion":1,"name":"library/busybox","tag":"latest","fsLayers":[{"blobSum":"sha256:` + anyDigestHex + `"}]}`
)

func TestDetectMediaType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		declared string
		doc      string
		want     string
		wantErr  error
	}{
		// The registry's Content-Type counts when the document has no field.
		{"declared OCI manifest, no field", ociManifest, manifestShape, ociManifest, nil},
		{"declared Docker manifest beats shape", dockerMan, manifestShape, dockerMan, nil},
		{"declared Docker list, no field", dockerList, indexShape, dockerList, nil},
		{"declared with charset", dockerMan + "; charset=utf-8", manifestShape, dockerMan, nil},
		{"declared with spaces and params", "  " + ociIndex + " ;charset=UTF-8;foo=bar", indexShape, ociIndex, nil},
		// The document's own field, covered by its digest, beats the header.
		{"field beats declared", dockerMan, withField(ociManifest, manifestShape), ociManifest, nil},
		{"field beats declared index", ociIndex, withField(dockerMan, manifestShape), dockerMan, nil},
		{"field, nothing declared", "", withField(dockerList, indexShape), dockerList, nil},
		// Neither: the shape decides (OCI allows the field to be absent).
		{"generic declared, manifest shape", "application/json", manifestShape, ociManifest, nil},
		{"nothing declared, index shape", "", indexShape, ociIndex, nil},
		{"octet-stream declared, index shape", "application/octet-stream", indexShape, ociIndex, nil},
		// Docker schema1, however it shows up.
		{"schema1 by version", "", schema1Doc, "", images.ErrUnsupportedMediaType},
		{"schema1 signed declared", schema1Sig, schema1Doc, "", images.ErrUnsupportedMediaType},
		{"schema1 declared over a v2 shape", schema1Sig, manifestShape, "", images.ErrUnsupportedMediaType},
		{"schema1 field", "", withField(schema1, `{"schemaVersion":2}`), "", images.ErrUnsupportedMediaType},
		{"schema1 version with OCI declared", ociManifest, schema1Doc, "", images.ErrUnsupportedMediaType},
		// Things that are not images.
		{"artifact manifest field", "", withField(ociArtifact, `{"schemaVersion":2,"blobs":[]}`), "", images.ErrUnsupportedMediaType},
		{"artifact declared, no shape", ociArtifact, `{"schemaVersion":2,"blobs":[]}`, "", images.ErrUnsupportedMediaType},
		{"config without layers", "", `{"schemaVersion":2,"config":{}}`, "", images.ErrUnsupportedMediaType},
		{"empty object", "", `{}`, "", images.ErrUnsupportedMediaType},
		{"html error page", "text/html", `{"schemaVersion":2}`, "", images.ErrUnsupportedMediaType},
		{"not JSON", ociManifest, `<html>rate limited</html>`, "", errdefs.ErrInvalidArgument},
		{"JSON array", ociManifest, `[]`, "", errdefs.ErrInvalidArgument},
		{"empty body", ociManifest, ``, "", errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := images.DetectMediaType(tc.declared, []byte(tc.doc))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("DetectMediaType(%q, %s) = %q, %v; want error %v", tc.declared, tc.doc, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("DetectMediaType(%q, %s) = %q, %v; want %q", tc.declared, tc.doc, got, err, tc.want)
			}
		})
	}
}

func TestDetectMediaTypeMessages(t *testing.T) {
	t.Parallel()
	_, err := images.DetectMediaType(schema1Sig, []byte(schema1Doc))
	if err == nil || !strings.Contains(err.Error(), "schema1") || !strings.Contains(err.Error(), "re-push") {
		t.Errorf("DetectMediaType(schema1) = %v, want a message naming schema1 and how to re-push", err)
	}
	_, err = images.DetectMediaType("text/html; charset=utf-8", []byte(`{"schemaVersion":2}`))
	if err == nil || !strings.Contains(err.Error(), `"text/html"`) {
		t.Errorf("DetectMediaType(text/html) = %v, want the declared type in the message", err)
	}
}

// manifestJSON builds a manifest document with the given parts.
type manifestDoc struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	Config        ocispec.Descriptor   `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
}

func goodManifest() manifestDoc {
	return manifestDoc{
		SchemaVersion: 2,
		MediaType:     ociManifest,
		Config:        ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: configDigest, Size: 100},
		Layers: []ocispec.Descriptor{
			{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: layerDigest, Size: 1000},
			{MediaType: ocispec.MediaTypeImageLayerZstd, Digest: digest.FromString("layer2"), Size: 0},
		},
	}
}

func TestParseManifest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		edit    func(m *manifestDoc)
		raw     string // used instead of the edited manifest when set
		wantErr error
		wantMsg string
	}{
		{name: "valid OCI", edit: func(*manifestDoc) {}},
		{name: "valid Docker", edit: func(m *manifestDoc) {
			m.MediaType = dockerMan
			m.Config.MediaType = images.MediaTypeDockerConfig
			for i := range m.Layers {
				m.Layers[i].MediaType = images.MediaTypeDockerLayerGzip
			}
		}},
		{name: "no layers", edit: func(m *manifestDoc) { m.Layers = nil }},
		{name: "not JSON", raw: "{", wantErr: errdefs.ErrInvalidArgument},
		{name: "schemaVersion 1", edit: func(m *manifestDoc) { m.SchemaVersion = 1 }, wantErr: errdefs.ErrInvalidArgument, wantMsg: "schemaVersion 1"},
		{name: "schemaVersion 3", edit: func(m *manifestDoc) { m.SchemaVersion = 3 }, wantErr: errdefs.ErrInvalidArgument, wantMsg: "schemaVersion 3"},
		{name: "schemaVersion missing", edit: func(m *manifestDoc) { m.SchemaVersion = 0 }, wantErr: errdefs.ErrInvalidArgument},
		{name: "config digest empty", edit: func(m *manifestDoc) { m.Config.Digest = "" }, wantErr: errdefs.ErrInvalidArgument, wantMsg: "config"},
		{name: "config digest short", edit: func(m *manifestDoc) { m.Config.Digest = "sha256:abc" }, wantErr: errdefs.ErrInvalidArgument},
		{name: "config digest traversal", edit: func(m *manifestDoc) { m.Config.Digest = "sha256:../../../etc/passwd" }, wantErr: errdefs.ErrInvalidArgument},
		{name: "config digest unknown algorithm", edit: func(m *manifestDoc) { m.Config.Digest = "md5:d41d8cd98f00b204e9800998ecf8427e" }, wantErr: errdefs.ErrInvalidArgument},
		{name: "config negative size", edit: func(m *manifestDoc) { m.Config.Size = -1 }, wantErr: errdefs.ErrInvalidArgument, wantMsg: "negative size"},
		{name: "layer negative size", edit: func(m *manifestDoc) { m.Layers[1].Size = -5 }, wantErr: errdefs.ErrInvalidArgument, wantMsg: "layer 1"},
		{name: "layer bad digest", edit: func(m *manifestDoc) { m.Layers[0].Digest = digest.Digest("sha256:" + strings.Repeat("z", 64)) }, wantErr: errdefs.ErrInvalidArgument, wantMsg: "layer 0"},
		{name: "artifact config", edit: func(m *manifestDoc) { m.Config.MediaType = helmConfig }, wantErr: images.ErrUnsupportedMediaType, wantMsg: "artifact"},
		{name: "empty config media type", edit: func(m *manifestDoc) { m.Config.MediaType = "" }, wantErr: images.ErrUnsupportedMediaType},
		{name: "unknown layer type", edit: func(m *manifestDoc) { m.Layers[1].MediaType = "application/vnd.example.layer+tar" }, wantErr: images.ErrUnsupportedMediaType, wantMsg: "layer 1"},
		{name: "manifest as a layer", edit: func(m *manifestDoc) { m.Layers[0].MediaType = ociManifest }, wantErr: images.ErrUnsupportedMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.raw)
			if tc.raw == "" {
				m := goodManifest()
				tc.edit(&m)
				var err error
				if b, err = json.Marshal(m); err != nil {
					t.Fatal(err)
				}
			}
			got, err := images.ParseManifest(b)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseManifest(%s) = %v, want nil", b, err)
				}
				var want manifestDoc
				_ = json.Unmarshal(b, &want)
				if got.Config.Digest != want.Config.Digest || len(got.Layers) != len(want.Layers) {
					t.Errorf("ParseManifest(%s) = config %s, %d layers; want %s, %d", b, got.Config.Digest, len(got.Layers), want.Config.Digest, len(want.Layers))
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || got != nil {
				t.Fatalf("ParseManifest(%s) = %v, %v; want nil, %v", b, got, err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("ParseManifest(%s) error %q, want it to mention %q", tc.name, err, tc.wantMsg)
			}
		})
	}
}

func TestParseIndex(t *testing.T) {
	t.Parallel()
	entry := func(d digest.Digest, size int64) string {
		return `{"mediaType":"` + ociManifest + `","digest":"` + string(d) + `","size":` + strconv.FormatInt(size, 10) + `,"platform":{"os":"linux","architecture":"amd64"}}`
	}
	tests := []struct {
		name    string
		doc     string
		wantN   int
		wantErr error
		wantMsg string
	}{
		{"valid", `{"schemaVersion":2,"manifests":[` + entry(configDigest, 10) + `,` + entry(layerDigest, 20) + `]}`, 2, nil, ""},
		{"empty", `{"schemaVersion":2,"manifests":[]}`, 0, nil, ""},
		{"not JSON", `{"schemaVersion":2,`, 0, errdefs.ErrInvalidArgument, ""},
		{"schemaVersion 1", `{"schemaVersion":1,"manifests":[]}`, 0, errdefs.ErrInvalidArgument, "schemaVersion 1"},
		{"schemaVersion missing", `{"manifests":[]}`, 0, errdefs.ErrInvalidArgument, "schemaVersion 0"},
		{"bad digest", `{"schemaVersion":2,"manifests":[` + entry(configDigest, 10) + `,` + entry("sha256:nothex", 20) + `]}`, 0, errdefs.ErrInvalidArgument, "entry 1"},
		{"empty digest", `{"schemaVersion":2,"manifests":[` + entry("", 10) + `]}`, 0, errdefs.ErrInvalidArgument, "entry 0"},
		{"negative size", `{"schemaVersion":2,"manifests":[` + entry(configDigest, -1) + `]}`, 0, errdefs.ErrInvalidArgument, "negative size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idx, err := images.ParseIndex([]byte(tc.doc))
			if tc.wantErr == nil {
				if err != nil || len(idx.Manifests) != tc.wantN {
					t.Fatalf("ParseIndex(%s) = %v, %v; want %d manifests", tc.doc, idx, err, tc.wantN)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || idx != nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("ParseIndex(%s) = %v, %v; want %v mentioning %q", tc.doc, idx, err, tc.wantErr, tc.wantMsg)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	twoLayers := &ocispec.Manifest{Layers: make([]ocispec.Descriptor, 2)}
	d1, d2 := digest.FromString("diff1"), digest.FromString("diff2")
	cfg := func(typ string, diffIDs ...digest.Digest) string {
		b, _ := json.Marshal(ocispec.Image{
			Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
			RootFS:   ocispec.RootFS{Type: typ, DiffIDs: diffIDs},
		})
		return string(b)
	}
	tests := []struct {
		name    string
		doc     string
		m       *ocispec.Manifest
		wantErr error
		wantMsg string
	}{
		{"valid", cfg("layers", d1, d2), twoLayers, nil, ""},
		{"no manifest to check against", cfg("layers", d1), nil, nil, ""},
		{"not JSON", "not json", twoLayers, errdefs.ErrInvalidArgument, ""},
		{"rootfs type", cfg("snapshot", d1, d2), twoLayers, errdefs.ErrInvalidArgument, `"snapshot"`},
		{"rootfs missing", `{"architecture":"amd64","os":"linux"}`, twoLayers, errdefs.ErrInvalidArgument, "rootfs"},
		{"fewer diff IDs than layers", cfg("layers", d1), twoLayers, errdefs.ErrInvalidArgument, "1 diff IDs for 2 layers"},
		{"more diff IDs than layers", cfg("layers", d1, d2, d1), twoLayers, errdefs.ErrInvalidArgument, "3 diff IDs for 2 layers"},
		{"bad diff ID", cfg("layers", d1, "sha256:1234"), twoLayers, errdefs.ErrInvalidArgument, "diff ID 1"},
		{"traversal diff ID", cfg("layers", "sha256:../../x", d2), twoLayers, errdefs.ErrInvalidArgument, "diff ID 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, err := images.ParseConfig([]byte(tc.doc), tc.m)
			if tc.wantErr == nil {
				if err != nil || img.RootFS.Type != "layers" {
					t.Fatalf("ParseConfig(%s) = %v, %v; want a config", tc.doc, img, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || img != nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("ParseConfig(%s) = %v, %v; want %v mentioning %q", tc.doc, img, err, tc.wantErr, tc.wantMsg)
			}
		})
	}
}

func TestSelectPlatform(t *testing.T) {
	t.Parallel()
	desc := func(name, mt string, p *ocispec.Platform) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mt, Digest: digest.FromString(name), Size: 1, Platform: p}
	}
	pl := func(os, arch, variant string) *ocispec.Platform {
		return &ocispec.Platform{OS: os, Architecture: arch, Variant: variant}
	}
	index := func(ds ...ocispec.Descriptor) *ocispec.Index { return &ocispec.Index{Manifests: ds} }

	common := index(
		desc("attestation", ociManifest, pl("unknown", "unknown", "")),
		desc("no-platform", ociManifest, nil),
		desc("amd64", ociManifest, pl("linux", "amd64", "")),
		desc("arm-novariant", ociManifest, pl("linux", "arm", "")),
		desc("arm-v6", ociManifest, pl("linux", "arm", "v6")),
		desc("arm-v7", dockerMan, pl("linux", "arm", "v7")),
		desc("arm64", ociManifest, pl("linux", "arm64", "")),
		desc("nested-index-s390x", ociIndex, pl("linux", "s390x", "")),
		desc("windows", ociManifest, pl("windows", "amd64", "")),
	)
	tests := []struct {
		name string
		idx  *ocispec.Index
		want ocispec.Platform
		pick string // name of the chosen entry, "" for an error
	}{
		{"exact amd64", common, *pl("linux", "amd64", ""), "amd64"},
		{"exact os", common, *pl("windows", "amd64", ""), "windows"},
		{"arm64/v8 wanted, arm64 listed", common, *pl("linux", "arm64", "v8"), "arm64"},
		{"arm64 wanted, arm64/v8 listed", index(desc("v8", ociManifest, pl("linux", "arm64", "v8"))), *pl("linux", "arm64", ""), "v8"},
		{"arm64/v8 both", index(desc("v8", ociManifest, pl("linux", "arm64", "v8"))), *pl("linux", "arm64", "v8"), "v8"},
		{"exact variant beats variantless", common, *pl("linux", "arm", "v7"), "arm-v7"},
		{"exact variant listed after variantless", index(
			desc("arm-novariant", ociManifest, pl("linux", "arm", "")),
			desc("arm-v7", ociManifest, pl("linux", "arm", "v7"))), *pl("linux", "arm", "v7"), "arm-v7"},
		{"variantless fallback", common, *pl("linux", "arm", "v5"), "arm-novariant"},
		{"no variantless fallback", index(desc("arm-v6", ociManifest, pl("linux", "arm", "v6"))), *pl("linux", "arm", "v7"), ""},
		{"arm64/v9 not served by v8", index(desc("v8", ociManifest, pl("linux", "arm64", "v8"))), *pl("linux", "arm64", "v9"), ""},
		{"nested index skipped", common, *pl("linux", "s390x", ""), ""},
		{"missing arch", common, *pl("linux", "riscv64", ""), ""},
		{"empty index", index(), *pl("linux", "amd64", ""), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := images.SelectPlatform(tc.idx, tc.want)
			if tc.pick != "" {
				if err != nil || got.Digest != digest.FromString(tc.pick) {
					t.Fatalf("SelectPlatform(%s) = %s, %v; want entry %q", images.FormatPlatform(tc.want), got.Digest, err, tc.pick)
				}
				return
			}
			if !errdefs.IsNotFound(err) {
				t.Fatalf("SelectPlatform(%s) = %s, %v; want ErrNotFound", images.FormatPlatform(tc.want), got.Digest, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, images.FormatPlatform(tc.want)) || !strings.Contains(msg, "--platform") {
				t.Errorf("SelectPlatform(%s) error %q, want the wanted platform and --platform", images.FormatPlatform(tc.want), msg)
			}
			for _, m := range tc.idx.Manifests {
				if m.Platform == nil || !images.IsManifest(m.MediaType) {
					continue
				}
				if have := images.FormatPlatform(*m.Platform); !strings.Contains(msg, have) {
					t.Errorf("SelectPlatform(%s) error %q, want it to list the available %s", images.FormatPlatform(tc.want), msg, have)
				}
			}
		})
	}
}

func TestParsePlatform(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want string // FormatPlatform of the result, "" for an error
	}{
		{"linux/amd64", "linux/amd64"},
		{"linux/arm64/v8", "linux/arm64/v8"},
		{"linux", ""},
		{"linux/", ""},
		{"/amd64", ""},
		{"linux/arm/v7/extra", ""},
		{"", ""},
	} {
		p, err := images.ParsePlatform(tc.in)
		if tc.want == "" {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("ParsePlatform(%q) = %v, %v; want ErrInvalidArgument", tc.in, p, err)
			}
			continue
		}
		if err != nil || images.FormatPlatform(p) != tc.want {
			t.Errorf("ParsePlatform(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
		}
	}
}

// chainIDSpec is the OCI image-spec ("Layer ChainID") definition, written
// out with crypto/sha256 rather than go-digest so it checks ChainIDs
// independently:
//
//	ChainID(L₀) = DiffID(L₀)
//	ChainID(L₀|…|Lₙ) = Digest(ChainID(L₀|…|Lₙ₋₁) + " " + DiffID(Lₙ))
func chainIDSpec(diffIDs []string) []string {
	var out []string
	for i, d := range diffIDs {
		if i == 0 {
			out = append(out, d)
			continue
		}
		sum := sha256.Sum256([]byte(out[i-1] + " " + d))
		out = append(out, "sha256:"+hex.EncodeToString(sum[:]))
	}
	return out
}

func TestChainIDs(t *testing.T) {
	t.Parallel()
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	for _, diffIDs := range [][]digest.Digest{nil, {a}, {a, b}, {a, b, c}, {c, b, a}, {a, a, a, a}} {
		var in []string
		for _, d := range diffIDs {
			in = append(in, d.String())
		}
		want := chainIDSpec(in)
		got := images.ChainIDs(diffIDs)
		if len(got) != len(want) {
			t.Fatalf("ChainIDs(%v) has %d entries, want %d", diffIDs, len(got), len(want))
		}
		for i := range got {
			if got[i].String() != want[i] {
				t.Errorf("ChainIDs(%v)[%d] = %s, want %s", diffIDs, i, got[i], want[i])
			}
		}
	}
	// Order matters: the same layers stacked differently are different snapshots.
	if x, y := images.ChainIDs([]digest.Digest{a, b}), images.ChainIDs([]digest.Digest{b, a}); x[1] == y[1] {
		t.Errorf("ChainIDs(a,b)[1] = ChainIDs(b,a)[1] = %s, want them to differ", x[1])
	}
}

func TestMediaTypePredicates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mt                      string
		isIndex, isMan, isLayer bool
	}{
		{ociIndex, true, false, false},
		{dockerList, true, false, false},
		{ociManifest, false, true, false},
		{dockerMan, false, true, false},
		{ocispec.MediaTypeImageLayerGzip, false, false, true},
		{ocispec.MediaTypeImageLayerZstd, false, false, true},
		{images.MediaTypeDockerLayerGzip, false, false, true},
		{images.MediaTypeDockerForeignLayer, false, false, true},
		{ocispec.MediaTypeImageConfig, false, false, false},
		{ociArtifact, false, false, false},
		{"", false, false, false},
	} {
		if got := images.IsIndex(tc.mt); got != tc.isIndex {
			t.Errorf("IsIndex(%q) = %v, want %v", tc.mt, got, tc.isIndex)
		}
		if got := images.IsManifest(tc.mt); got != tc.isMan {
			t.Errorf("IsManifest(%q) = %v, want %v", tc.mt, got, tc.isMan)
		}
		if got := images.IsLayer(tc.mt); got != tc.isLayer {
			t.Errorf("IsLayer(%q) = %v, want %v", tc.mt, got, tc.isLayer)
		}
	}
}
