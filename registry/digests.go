package registry

import (
	"context"
	"io"
	"net/http"
	"path"
	"strings"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/opencontainers/go-digest"
)

// Distribution stores every blob and manifest under its sha256 digest.
// Content pushed by another algorithm (sha512, which the OCI spec allows
// and its conformance suite tests) is verified against that digest and
// reachable through a "link" file named after it, but distribution then
// answers with the sha256 digest in Docker-Content-Digest and Location,
// refuses manifests pushed by a sha512 digest, and forgets the alias when
// it mounts a blob into another repository. The functions here fill those
// gaps at the edge, in distribution's own on-disk terms:
//
//	repositories/<name>/_layers/<alg>/<hex>/link               blob alias -> sha256 digest
//	repositories/<name>/_manifests/revisions/<alg>/<hex>/link  manifest alias -> sha256 digest
//
// With the links in place distribution itself resolves the other digest
// for reads and deletes.

const canonicalAlg = digest.SHA256

// nonCanonical returns the digest s when it is valid and not sha256.
func nonCanonical(s string) (digest.Digest, bool) {
	d, err := digest.Parse(s)
	if err != nil || d.Algorithm() == canonicalAlg {
		return "", false
	}
	return d, true
}

func layerLinkPath(repo string, d digest.Digest) string {
	return path.Join("/docker/registry/v2/repositories", repo, "_layers", d.Algorithm().String(), d.Encoded(), "link")
}

func revisionLinkPath(repo string, d digest.Digest) string {
	return path.Join("/docker/registry/v2/repositories", repo, "_manifests", "revisions", d.Algorithm().String(), d.Encoded(), "link")
}

// writeLink points alias at canonical, as distribution's linkBlob does.
func (r *Registry) writeLink(ctx context.Context, p string, canonical digest.Digest) error {
	return r.driver.PutContent(ctx, p, []byte(canonical))
}

// blobDigestRewrite returns the digest a blob request names in another
// algorithm than sha256 (the blob's digest, an upload's ?digest= or a
// mount's ?mount=), or "" when distribution's answer needs no change.
func blobDigestRewrite(req *http.Request, rt route) digest.Digest {
	switch rt.name {
	case v2.RouteNameBlob:
		if d, ok := nonCanonical(rt.reference); ok {
			return d
		}
	case v2.RouteNameBlobUpload, v2.RouteNameBlobUploadChunk:
		q := req.URL.Query()
		if d, ok := nonCanonical(q.Get("digest")); ok {
			return d
		}
		if d, ok := nonCanonical(q.Get("mount")); ok {
			return d
		}
	}
	return ""
}

// aliasWriter rewrites distribution's sha256 answer into the digest the
// client used, as the headers go out.
type aliasWriter struct {
	*statusWriter
	alias digest.Digest
	// created is called when distribution answered 201 (a finished
	// upload or mount), before the answer goes out.
	created func()
	done    bool
}

func (w *aliasWriter) rewrite(code int) {
	if w.done {
		return
	}
	w.done = true
	h := w.Header()
	if code == http.StatusCreated && w.created != nil {
		w.created()
	}
	canonical := digest.Digest(h.Get("Docker-Content-Digest"))
	if canonical.Validate() != nil || canonical.Algorithm() != canonicalAlg {
		return
	}
	h.Set("Docker-Content-Digest", w.alias.String())
	if loc := h.Get("Location"); loc != "" {
		h.Set("Location", strings.Replace(loc, canonical.String(), w.alias.String(), 1))
	}
}

func (w *aliasWriter) WriteHeader(code int) {
	w.rewrite(code)
	w.statusWriter.WriteHeader(code)
}

func (w *aliasWriter) Write(p []byte) (int, error) {
	w.rewrite(http.StatusOK)
	return w.statusWriter.Write(p)
}

func (w *aliasWriter) ReadFrom(src io.Reader) (int64, error) {
	w.rewrite(http.StatusOK)
	return w.statusWriter.ReadFrom(src)
}

// serveBlobAlias serves a blob request made with a non-sha256 digest.
func (r *Registry) serveBlobAlias(w http.ResponseWriter, req *http.Request, rt route, alias digest.Digest) *statusWriter {
	sw := &statusWriter{ResponseWriter: w}
	aw := &aliasWriter{statusWriter: sw, alias: alias}
	if from := req.URL.Query().Get("from"); rt.name != v2.RouteNameBlob && req.URL.Query().Get("mount") != "" && from != "" {
		// Distribution links the mounted blob into the target under the
		// digest it was mounted by only, with that digest as the link's
		// target, which has no data; and reads through the sha256 link,
		// which it did not write. Write both as an upload would.
		aw.created = func() {
			ctx := req.Context()
			link, err := r.driver.GetContent(ctx, layerLinkPath(from, alias))
			canonical := digest.Digest(strings.TrimSpace(string(link)))
			if err == nil {
				err = canonical.Validate()
			}
			if err == nil {
				err = r.writeLink(ctx, layerLinkPath(rt.repository, canonical), canonical)
			}
			if err == nil {
				err = r.writeLink(ctx, layerLinkPath(rt.repository, alias), canonical)
			}
			if err != nil {
				r.logger.WarnContext(ctx, "linking a mounted blob under its digest", "repository", rt.repository, "digest", alias, "error", err)
			}
		}
	}
	r.app.ServeHTTP(aw, req)
	return sw
}
