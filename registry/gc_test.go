package registry_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/registry"
)

// TestGarbageCollect: gc removes what nothing uses, never what a manifest,
// a signature or a referrer still needs, and rebuilds the referrers index.
func TestGarbageCollect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	c := e.client(alice, "repository:team-a/app:pull,push,delete")
	const repo = "team-a/app"

	imgA, imgB, imgC := randomImage(t), randomImage(t), randomImage(t)
	a := e.mustPush(alice, repo+":1", imgA)
	b := e.mustPush(alice, repo+":2", imgB)
	e.mustPush(alice, repo+":2", imgC) // B is untagged now
	rawA, _ := imgA.RawManifest()
	subjectA := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: a, Size: int64(len(rawA))}

	// A's signature (tag scheme), A's SBOM (untagged referrer), a referrer
	// of a manifest that does not exist, and a blob nothing uses.
	sig := cosignSignature(t, e, c, repo, a)
	e.putManifest(c, repo, "sha256-"+a.Encoded()+".sig", sig)
	sbom := artifact(t, e, c, repo, "application/spdx+json", subjectA)
	e.putManifest(c, repo, digest.FromBytes(sbom).String(), sbom)
	orphan := artifact(t, e, c, repo, "application/example", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("gone"), Size: 1})
	e.putManifest(c, repo, digest.FromBytes(orphan).String(), orphan)
	dangling := e.putBlob(c, repo, []byte("nobody uses this blob"))

	blobExists := func(d digest.Digest) bool {
		_, err := os.Stat(filepath.Join(e.cfg.Storage.Filesystem.RootDirectory, "docker/registry/v2/blobs/sha256", d.Encoded()[:2], d.Encoded(), "data"))
		return err == nil
	}
	manifestOK := func(ref string) bool {
		resp, _ := do(t, c, http.MethodGet, e.url+"/v2/"+repo+"/manifests/"+ref, nil, "Accept", manifestAccept)
		return resp.StatusCode == http.StatusOK
	}
	referrers := func() []digest.Digest {
		resp, body := do(t, c, http.MethodGet, e.url+"/v2/"+repo+"/referrers/"+a.String(), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("referrers: %d", resp.StatusCode)
		}
		var idx ocispec.Index
		_ = json.Unmarshal(body, &idx)
		var out []digest.Digest
		for _, m := range idx.Manifests {
			out = append(out, m.Digest)
		}
		return out
	}

	// Dry run: reports, changes nothing.
	rep, err := registry.GarbageCollect(ctx, e.cfg, registry.GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.DeletedBlobs, dangling) || len(rep.DeletedManifests) != 0 {
		t.Errorf("dry run: blobs %v manifests %v, want the dangling blob only", rep.DeletedBlobs, rep.DeletedManifests)
	}
	if !blobExists(dangling) {
		t.Fatal("dry run deleted a blob")
	}

	// Default: every manifest is kept, unused blobs go.
	rep, err = registry.GarbageCollect(ctx, e.cfg, registry.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if blobExists(dangling) {
		t.Error("the dangling blob survived gc")
	}
	if len(rep.DeletedBlobs) != 1 {
		t.Errorf("gc deleted %d blobs, want 1: %v", len(rep.DeletedBlobs), rep.DeletedBlobs)
	}
	for _, ref := range []string{a.String(), b.String(), "2", "sha256-" + a.Encoded() + ".sig", digest.FromBytes(sbom).String()} {
		if !manifestOK(ref) {
			t.Errorf("after gc: %s is gone", ref)
		}
	}

	// The index is rebuilt: lose it, gc, get it back.
	idxDir := filepath.Join(e.cfg.Storage.Filesystem.RootDirectory, "docker/registry/v2/repositories", repo, "_sigil")
	if err := os.RemoveAll(idxDir); err != nil {
		t.Fatal(err)
	}
	if got := referrers(); len(got) != 0 {
		t.Fatalf("referrers without an index: %v", got)
	}
	rep, err = registry.GarbageCollect(ctx, e.cfg, registry.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := referrers(); !slices.Equal(got, []digest.Digest{digest.FromBytes(sbom)}) || rep.IndexAdded != 2 {
		t.Errorf("after rebuild: referrers %v (index added %d), want the SBOM", got, rep.IndexAdded)
	}

	// Untagged manifests go, except what kept ones need.
	rep, err = registry.GarbageCollect(ctx, e.cfg, registry.GCOptions{DeleteUntagged: true})
	if err != nil {
		t.Fatal(err)
	}
	var deleted []digest.Digest
	for _, m := range rep.DeletedManifests {
		deleted = append(deleted, m.Digest)
	}
	slices.Sort(deleted)
	want := []digest.Digest{b, digest.FromBytes(orphan)}
	slices.Sort(want)
	if !slices.Equal(deleted, want) {
		t.Errorf("delete-untagged removed %v, want B and the orphan referrer %v", deleted, want)
	}
	for _, ref := range []string{"1", "2", "sha256-" + a.Encoded() + ".sig", digest.FromBytes(sbom).String()} {
		if !manifestOK(ref) {
			t.Errorf("after delete-untagged: %s is gone", ref)
		}
	}
	if manifestOK(b.String()) {
		t.Error("after delete-untagged: untagged B is still there")
	}
	layersA, _ := imgA.Layers()
	for _, l := range layersA {
		d, _ := l.Digest()
		if !blobExists(digest.Digest(d.String())) {
			t.Errorf("a layer of the tagged image was deleted")
		}
	}
	layersB, _ := imgB.Layers()
	for _, l := range layersB {
		d, _ := l.Digest()
		if blobExists(digest.Digest(d.String())) {
			t.Errorf("a layer of the deleted image survived")
		}
	}
	var sbomManifest struct{ Layers []ocispec.Descriptor }
	_ = json.Unmarshal(sbom, &sbomManifest)
	if !blobExists(sbomManifest.Layers[0].Digest) {
		t.Error("the SBOM's blob was deleted")
	}
	if got := referrers(); !slices.Equal(got, []digest.Digest{digest.FromBytes(sbom)}) {
		t.Errorf("referrers after delete-untagged: %v", got)
	}
}
