package refindex

import (
	"context"
	"slices"
	"testing"

	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	x := New(inmemory.New())
	subject := digest.FromString("subject")
	a := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("a"), Size: 1, ArtifactType: "application/a"}
	b := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("b"), Size: 2, ArtifactType: "application/b"}
	for _, d := range []ocispec.Descriptor{b, a, a} { // a twice: idempotent
		if err := x.Add(ctx, Referrers, "team/app", subject, d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := x.List(ctx, Referrers, "team/app", subject)
	if err != nil {
		t.Fatal(err)
	}
	want := []ocispec.Descriptor{a, b}
	slices.SortFunc(want, func(p, q ocispec.Descriptor) int { return compare(p.Digest, q.Digest) })
	if len(got) != 2 || got[0].Digest != want[0].Digest || got[1].Digest != want[1].Digest || got[0].ArtifactType == "" {
		t.Fatalf("List = %+v, want %+v", got, want)
	}
	// Kinds and repositories are separate.
	if got, _ := x.List(ctx, Parents, "team/app", subject); len(got) != 0 {
		t.Errorf("parents = %v, want none", got)
	}
	if got, _ := x.List(ctx, Referrers, "team/other", subject); len(got) != 0 {
		t.Errorf("other repository = %v, want none", got)
	}
	var targets []digest.Digest
	err = x.Targets(ctx, Referrers, "team/app", func(target digest.Digest, from []digest.Digest) error {
		targets = append(targets, target)
		if len(from) != 2 {
			t.Errorf("Targets: %d entries for %s, want 2", len(from), target)
		}
		return nil
	})
	if err != nil || !slices.Equal(targets, []digest.Digest{subject}) {
		t.Errorf("Targets = %v, %v", targets, err)
	}
	if err := x.Remove(ctx, Referrers, "team/app", subject, a.Digest); err != nil {
		t.Fatal(err)
	}
	if err := x.Remove(ctx, Referrers, "team/app", subject, a.Digest); err != nil {
		t.Errorf("second Remove: %v, want nil", err)
	}
	if got, _ := x.List(ctx, Referrers, "team/app", subject); len(got) != 1 || got[0].Digest != b.Digest {
		t.Errorf("after Remove: %+v", got)
	}
	if _, err := x.List(ctx, Kind("other"), "team/app", subject); err == nil {
		t.Error("unknown kind accepted")
	}
	if err := x.Add(ctx, Referrers, "team/app", "sha256:bad", a); err == nil {
		t.Error("bad digest accepted")
	}
}

func compare(a, b digest.Digest) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestManifestDescriptor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, payload, mediaType string
		wantArtifact, wantType   string
		index                    bool
	}{
		{"artifactType wins", `{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"x/y","config":{"mediaType":"application/vnd.oci.empty.v1+json"}}`, "", "x/y", ocispec.MediaTypeImageManifest, false},
		{"config type otherwise", `{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.example.config"}}`, "", "application/vnd.example.config", ocispec.MediaTypeImageManifest, false},
		{"index without mediaType", `{"schemaVersion":2,"manifests":[]}`, "", "", ocispec.MediaTypeImageIndex, true},
		{"stored type used", `{"schemaVersion":2,"config":{"mediaType":"a"}}`, "application/vnd.docker.distribution.manifest.v2+json", "a", schema2.MediaTypeManifest, false},
	}
	for _, tt := range tests {
		m, err := ParseManifest([]byte(tt.payload), tt.mediaType)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		d := m.Descriptor(digest.FromString(tt.payload), 10)
		if d.ArtifactType != tt.wantArtifact || d.MediaType != tt.wantType || m.IsIndex() != tt.index {
			t.Errorf("%s: descriptor %+v index %v", tt.name, d, m.IsIndex())
		}
	}
}
