package registry_test

import (
	"crypto/sha512"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestSHA512 pushes, reads, mounts and deletes content by sha512 digests,
// which distribution only half supports (see digests.go).
func TestSHA512(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.client(alice, "repository:team-a/one:pull,push,delete", "repository:team-a/two:pull,push,delete")
	sha := func(b []byte) digest.Digest { return digest.NewDigestFromBytes(digest.SHA512, sha512Sum(b)) }

	// Blobs.
	data := []byte("a blob addressed by its sha512 digest")
	d := sha(data)
	resp, _ := do(t, c, http.MethodPost, e.url+"/v2/team-a/one/blobs/uploads/", nil)
	loc, _ := resp.Location()
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, body := do(t, c, http.MethodPut, loc.String(), data, "Content-Type", "application/octet-stream")
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("upload: %d %q %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), body)
	}
	blobLoc, _ := resp.Location()
	if blobLoc.Path != "/v2/team-a/one/blobs/"+d.String() {
		t.Errorf("upload Location = %s", blobLoc.Path)
	}
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		resp, body = do(t, c, method, e.url+"/v2/team-a/one/blobs/"+d.String(), nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != d.String() || (method == http.MethodGet && string(body) != string(data)) {
			t.Errorf("%s blob: %d %q %q", method, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), body)
		}
	}
	resp, body = do(t, c, http.MethodPost, e.url+"/v2/team-a/two/blobs/uploads/?mount="+d.String()+"&from=team-a/one", nil)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("mount: %d %q %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), body)
	}
	resp, body = do(t, c, http.MethodGet, e.url+"/v2/team-a/two/blobs/"+d.String(), nil)
	if resp.StatusCode != http.StatusOK || string(body) != string(data) {
		link, _ := os.ReadFile(filepath.Join(e.cfg.Storage.Filesystem.RootDirectory, "docker/registry/v2/repositories/team-a/two/_layers/sha512", d.Encoded(), "link"))
		t.Errorf("GET mounted blob: %d %s (link %s)", resp.StatusCode, body, link)
	}

	// Manifests.
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageManifest,
		"artifactType":  "application/example",
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": e.putBlob(c, "team-a/one", []byte("{}")), "size": 2},
		"layers":        []any{map[string]any{"mediaType": "application/octet-stream", "digest": d, "size": len(data)}},
	})
	md := sha(m)
	resp, body = do(t, c, http.MethodPut, e.url+"/v2/team-a/one/manifests/"+md.String(), m, "Content-Type", ocispec.MediaTypeImageManifest)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != md.String() {
		t.Fatalf("manifest PUT by sha512: %d %q %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), body)
	}
	resp, body = do(t, c, http.MethodPut, e.url+"/v2/team-a/one/manifests/"+sha([]byte("other")).String(), m, "Content-Type", ocispec.MediaTypeImageManifest)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("manifest PUT under a wrong sha512: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, c, http.MethodGet, e.url+"/v2/team-a/one/manifests/"+md.String(), nil, "Accept", manifestAccept)
	if resp.StatusCode != http.StatusOK || string(body) != string(m) || resp.Header.Get("Docker-Content-Digest") != md.String() {
		t.Errorf("manifest GET by sha512: %d %q", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
	}
	resp, _ = do(t, c, http.MethodDelete, e.url+"/v2/team-a/one/manifests/"+md.String(), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("manifest DELETE by sha512: %d", resp.StatusCode)
	}
	for _, ref := range []string{md.String(), digest.FromBytes(m).String()} {
		if resp, _ := do(t, c, http.MethodGet, e.url+"/v2/team-a/one/manifests/"+ref, nil, "Accept", manifestAccept); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s after delete: %d, want 404", ref, resp.StatusCode)
		}
	}
}

func sha512Sum(b []byte) []byte {
	s := sha512.Sum512(b)
	return s[:]
}
