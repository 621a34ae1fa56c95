package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker schema2 media types; OCI's are in image-spec.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Sig   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// MaxManifestSize bounds every manifest and config Sigil reads, as
// containerd does: real ones are a few KiB, and a registry that sends more
// is broken or hostile.
const MaxManifestSize = 4 << 20

// ErrUnsupportedMediaType marks a manifest or layer Sigil cannot handle.
var ErrUnsupportedMediaType = errors.New("unsupported media type")

// ManifestAcceptHeader lists what Sigil asks a registry for, best first.
var ManifestAcceptHeader = strings.Join([]string{
	ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
	MediaTypeDockerManifestList, MediaTypeDockerManifest,
}, ", ")

// IsIndex tells whether mt is a multi-platform index or manifest list.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsManifest tells whether mt is a single-platform image manifest.
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// IsLayer tells whether mt is a layer media type Sigil can unpack.
func IsLayer(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		MediaTypeDockerLayerGzip, MediaTypeDockerLayer, MediaTypeDockerForeignLayer,
		// Deprecated by image-spec 1.1 but still found in Windows-era and
		// mirrored images; spelled out so the linter's deprecation notice
		// does not hide a real one elsewhere.
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
		return true
	}
	return false
}

// DetectMediaType returns the media type of a manifest document: the
// document's own mediaType field (covered by its digest, unlike a header),
// else the one the registry declared when it is specific, else a guess from
// its shape (OCI allows the field to be absent).
func DetectMediaType(declared string, b []byte) (string, error) {
	var probe struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     json.RawMessage   `json:"manifests"`
		Layers        json.RawMessage   `json:"layers"`
		Config        json.RawMessage   `json:"config"`
		FSLayers      []json.RawMessage `json:"fsLayers"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return "", fmt.Errorf("manifest is not valid JSON: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	mt := probe.MediaType
	if i := strings.IndexByte(declared, ';'); i >= 0 {
		declared = declared[:i]
	}
	declared = strings.TrimSpace(declared)
	if mt == "" && (IsIndex(declared) || IsManifest(declared)) {
		mt = declared
	}
	if mt == "" {
		switch {
		case probe.Manifests != nil:
			mt = ocispec.MediaTypeImageIndex
		case probe.Config != nil && probe.Layers != nil:
			mt = ocispec.MediaTypeImageManifest
		}
	}
	if probe.SchemaVersion == 1 || mt == mediaTypeDockerSchema1 || mt == mediaTypeDockerSchema1Sig || declared == mediaTypeDockerSchema1Sig {
		return "", fmt.Errorf("docker schema1 manifest: %w: schema1 is deprecated and unsigned; re-push the image with a current docker, podman or skopeo", ErrUnsupportedMediaType)
	}
	if !IsIndex(mt) && !IsManifest(mt) {
		return "", fmt.Errorf("manifest media type %q (registry said %q): %w: Sigil runs OCI and Docker schema2 images", mt, declared, ErrUnsupportedMediaType)
	}
	return mt, nil
}

// ParseIndex decodes an OCI index or Docker manifest list.
func ParseIndex(b []byte) (*ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("image index is not valid JSON: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("image index has schemaVersion %d, want 2: %w", idx.SchemaVersion, errdefs.ErrInvalidArgument)
	}
	for i, m := range idx.Manifests {
		if err := validateDescriptor(m); err != nil {
			return nil, fmt.Errorf("image index entry %d: %w", i, err)
		}
	}
	return &idx, nil
}

// ParseManifest decodes an OCI or Docker schema2 image manifest and checks
// that every descriptor in it is usable.
func ParseManifest(b []byte) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("image manifest is not valid JSON: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("image manifest has schemaVersion %d, want 2: %w", m.SchemaVersion, errdefs.ErrInvalidArgument)
	}
	if err := validateDescriptor(m.Config); err != nil {
		return nil, fmt.Errorf("image manifest config: %w", err)
	}
	switch m.Config.MediaType {
	case ocispec.MediaTypeImageConfig, MediaTypeDockerConfig:
	default:
		return nil, fmt.Errorf("image config media type %q: %w: this is not a container image (an artifact?)", m.Config.MediaType, ErrUnsupportedMediaType)
	}
	for i, l := range m.Layers {
		if err := validateDescriptor(l); err != nil {
			return nil, fmt.Errorf("image manifest layer %d: %w", i, err)
		}
		if !IsLayer(l.MediaType) {
			return nil, fmt.Errorf("image manifest layer %d (%s): media type %q: %w", i, l.Digest, l.MediaType, ErrUnsupportedMediaType)
		}
	}
	return &m, nil
}

// ParseConfig decodes an image config and checks it against the manifest.
func ParseConfig(b []byte, m *ocispec.Manifest) (*ocispec.Image, error) {
	var img ocispec.Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("image config is not valid JSON: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	if img.RootFS.Type != "layers" {
		return nil, fmt.Errorf("image config rootfs type %q, want \"layers\": %w", img.RootFS.Type, errdefs.ErrInvalidArgument)
	}
	if m != nil && len(img.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image config lists %d diff IDs for %d layers: %w", len(img.RootFS.DiffIDs), len(m.Layers), errdefs.ErrInvalidArgument)
	}
	for i, d := range img.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("image config diff ID %d %q: %w: %w", i, d, err, errdefs.ErrInvalidArgument)
		}
	}
	return &img, nil
}

func validateDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w: %w", d.Digest, err, errdefs.ErrInvalidArgument)
	}
	if d.Size < 0 {
		return fmt.Errorf("descriptor %s has negative size %d: %w", d.Digest, d.Size, errdefs.ErrInvalidArgument)
	}
	return nil
}

// HostPlatform is the platform images are chosen for by default.
func HostPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// ParsePlatform parses "os/arch[/variant]".
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant], e.g. linux/amd64: %w", s, errdefs.ErrInvalidArgument)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// FormatPlatform renders p as os/arch[/variant].
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// SelectPlatform picks want's manifest from an index: the exact variant
// first, then an entry without a variant (arm64 images often omit "v8").
func SelectPlatform(idx *ocispec.Index, want ocispec.Platform) (ocispec.Descriptor, error) {
	var loose *ocispec.Descriptor
	var have []string
	for i, m := range idx.Manifests {
		if m.Platform == nil || !IsManifest(m.MediaType) {
			continue
		}
		have = append(have, FormatPlatform(*m.Platform))
		if m.Platform.OS != want.OS || m.Platform.Architecture != want.Architecture {
			continue
		}
		if normalVariant(*m.Platform) == normalVariant(want) {
			return m, nil
		}
		if m.Platform.Variant == "" && loose == nil {
			loose = &idx.Manifests[i]
		}
	}
	if loose != nil {
		return *loose, nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("no image for platform %s in this index (it has: %s); choose one with --platform: %w",
		FormatPlatform(want), strings.Join(have, ", "), errdefs.ErrNotFound)
}

// normalVariant maps the variants that mean the same CPU to one spelling,
// as containerd's platform matcher does: arm64 is v8 unless it says
// otherwise.
func normalVariant(p ocispec.Platform) string {
	if p.Architecture == "arm64" && p.Variant == "" {
		return "v8"
	}
	return p.Variant
}

// ChainIDs computes the chain ID of each layer prefix, the key under which
// the unpacked layer stack is shared between images (OCI image-spec, "Layer
// ChainID").
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}
