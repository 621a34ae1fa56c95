package registry

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	dauth "github.com/distribution/distribution/v3/registry/auth"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/registry/refindex"
)

// serveReferrers implements GET /v2/<name>/referrers/<digest> (OCI
// distribution-spec 1.1, "Listing Referrers"): an image index of the
// manifests in <name> whose subject is <digest>, optionally only those of
// one artifactType. It never answers 404 for an unknown digest or
// repository: "no referrers" is an empty index.
func (r *Registry) serveReferrers(w http.ResponseWriter, req *http.Request, rt route) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		serveError(w, r.logger, errcode.ErrorCodeUnsupported.WithMessage("the referrers API only answers GET"))
		return
	}
	access := dauth.Access{Resource: dauth.Resource{Type: "repository", Name: rt.repository}, Action: "pull"}
	if _, ok := r.authorize(w, req, access); !ok {
		r.auditDenied(req, rt, http.StatusUnauthorized, "")
		return
	}
	subject, err := digest.Parse(rt.reference)
	if err != nil {
		serveError(w, r.logger, errcode.ErrorCodeDigestInvalid.WithDetail(err.Error()))
		return
	}
	ctx := req.Context()
	descs, err := r.index.List(ctx, refindex.Referrers, rt.repository, subject)
	if err != nil {
		r.logger.ErrorContext(ctx, "listing referrers", "repository", rt.repository, "digest", subject, "error", err)
		serveError(w, r.logger, errcode.ErrorCodeUnknown.WithMessage("listing referrers failed"))
		return
	}
	artifactType := req.URL.Query().Get("artifactType")
	ms, err := manifestService(ctx, r.ns, rt.repository)
	if err != nil {
		serveError(w, r.logger, errcode.ErrorCodeNameInvalid.WithDetail(err.Error()))
		return
	}
	out := existingReferrers(ctx, ms, descs, artifactType)
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	body, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: out,
	})
	if err != nil {
		serveError(w, r.logger, errcode.ErrorCodeUnknown.WithDetail(err.Error()))
		return
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// existingReferrers returns the entries of descs (from the referrers
// index) of artifactType, or of any type when it is "", whose manifest
// still exists in ms: an interrupted delete can leave an entry behind, and
// a manifest that is gone is never listed. The result is never nil (an
// empty index lists "manifests": []).
func existingReferrers(ctx context.Context, ms distribution.ManifestService, descs []ocispec.Descriptor, artifactType string) []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, 0, len(descs))
	for _, d := range descs {
		if artifactType != "" && d.ArtifactType != artifactType {
			continue
		}
		if ok, err := ms.Exists(ctx, d.Digest); err != nil || !ok {
			continue
		}
		out = append(out, d)
	}
	return out
}
