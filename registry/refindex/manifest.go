package refindex

import (
	"encoding/json"
	"fmt"
	"iter"

	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest is what the indexes need of a stored manifest: the union of the
// fields of an image manifest and an image index, read leniently (the
// registry already validated what it stored).
type Manifest struct {
	MediaType    string               `json:"mediaType,omitempty"`
	ArtifactType string               `json:"artifactType,omitempty"`
	Config       *ocispec.Descriptor  `json:"config,omitempty"`
	Layers       []ocispec.Descriptor `json:"layers,omitempty"`
	Manifests    []ocispec.Descriptor `json:"manifests,omitempty"`
	Subject      *ocispec.Descriptor  `json:"subject,omitempty"`
	Annotations  map[string]string    `json:"annotations,omitempty"`
}

// ParseManifest reads payload. mediaType is the Content-Type it was stored
// with, used when the payload does not say.
func ParseManifest(payload []byte, mediaType string) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	if m.MediaType == "" {
		m.MediaType = mediaType
	}
	if m.MediaType == "" {
		// OCI allows omitting mediaType; the shape tells.
		if m.Manifests != nil && m.Config == nil {
			m.MediaType = ocispec.MediaTypeImageIndex
		} else {
			m.MediaType = ocispec.MediaTypeImageManifest
		}
	}
	return &m, nil
}

// IsIndex reports whether m lists other manifests.
func (m *Manifest) IsIndex() bool {
	return m.MediaType == ocispec.MediaTypeImageIndex || m.MediaType == manifestlist.MediaTypeManifestList
}

// Descriptor is the entry the referrers API lists for m: its artifactType
// is the manifest's, or for an image manifest without one, its config's
// media type (OCI distribution-spec, "Listing Referrers").
func (m *Manifest) Descriptor(d digest.Digest, size int64) ocispec.Descriptor {
	desc := ocispec.Descriptor{
		MediaType:    m.MediaType,
		Digest:       d,
		Size:         size,
		ArtifactType: m.ArtifactType,
		Annotations:  m.Annotations,
	}
	if desc.ArtifactType == "" && !m.IsIndex() && m.Config != nil {
		desc.ArtifactType = m.Config.MediaType
	}
	return desc
}

// Edges yields the index entries a stored manifest contributes, each as
// the kind and the target digest: its subject (Referrers) and, for an
// index, each child (Parents). Digests that do not validate are skipped.
func (m *Manifest) Edges() iter.Seq2[Kind, digest.Digest] {
	return func(yield func(Kind, digest.Digest) bool) {
		if m.Subject != nil && m.Subject.Digest.Validate() == nil {
			if !yield(Referrers, m.Subject.Digest) {
				return
			}
		}
		if !m.IsIndex() {
			return
		}
		for _, child := range m.Manifests {
			if child.Digest.Validate() == nil && !yield(Parents, child.Digest) {
				return
			}
		}
	}
}
