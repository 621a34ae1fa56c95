package testimage

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NewReferrersRegistry is NewRegistry with the OCI 1.1 referrers API
// (GET /v2/<repo>/referrers/<digest>) enabled; NewRegistry answers 404
// there, as registries without the API do.
func NewReferrersRegistry() *Registry {
	r := &Registry{requests: map[string]int{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true))
	r.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests[req.Method+" "+req.URL.Path]++
		r.mu.Unlock()
		inner.ServeHTTP(w, req)
	}))
	r.Host = strings.TrimPrefix(r.server.URL, "http://")
	return r
}

// SignatureTag is cosign's tag for the signatures of manifest d.
func SignatureTag(d v1.Hash) string { return d.Algorithm + "-" + d.Hex + ".sig" }

// RewriteSignatures reads the cosign signature image of repo@d (repo is
// host/path on a loopback registry), passes every layer's payload through
// edit, and writes the result under the signature tag of dst@dstDigest,
// keeping each layer's annotations (the signature among them). With an
// edit that changes nothing it copies signatures, as an attacker moving a
// valid signature onto another image would; with one that changes the
// payload it tampers with them.
func RewriteSignatures(ctx context.Context, repo string, d v1.Hash, dst string, dstDigest v1.Hash, edit func(payload []byte) []byte) error {
	src, err := name.ParseReference(repo+":"+SignatureTag(d), name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(src, remote.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("reading signatures %s: %w", src, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	out := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	out = mutate.ConfigMediaType(out, types.OCIConfigJSON)
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		payload, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		mt, _ := l.MediaType()
		out, err = mutate.Append(out, mutate.Addendum{
			Layer:       static.NewLayer(edit(payload), mt),
			Annotations: m.Layers[i].Annotations,
		})
		if err != nil {
			return err
		}
	}
	tag, err := name.ParseReference(dst+":"+SignatureTag(dstDigest), name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(tag, out, remote.WithContext(ctx))
}

// BlobPaths lists the registry paths of an image's config and layers in
// repo, to count with Registry.Count that none was requested.
func BlobPaths(repo string, img v1.Image) ([]string, error) {
	var paths []string
	cfg, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	paths = append(paths, "/v2/"+repo+"/blobs/"+cfg.String())
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		paths = append(paths, "/v2/"+repo+"/blobs/"+d.String())
	}
	return paths, nil
}
