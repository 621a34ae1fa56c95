package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/images"
)

// The writes below are what `sigil sign` needs to attach small artifacts
// (signatures, referrers) to an image: they take whole byte slices, since
// nothing they push is larger than a manifest. Open the Repository with the
// "pull" and "push" actions to use them.

// PushBlob uploads data as the blob desc describes, unless the registry
// already has it. data is checked against desc first, so a caller's bug
// cannot store a blob under the wrong digest.
func (r *Repository) PushBlob(ctx context.Context, desc ocispec.Descriptor, data []byte) error {
	if int64(len(data)) != desc.Size || desc.Digest.Algorithm().FromBytes(data) != desc.Digest {
		return fmt.Errorf("push blob %s to %s: the data does not match its descriptor: %w", desc.Digest, r.ep, errdefs.ErrInvalidArgument)
	}
	head, err := http.NewRequestWithContext(ctx, http.MethodHead, r.baseURL+"/blobs/"+desc.Digest.String(), nil)
	if err != nil {
		return err
	}
	if resp, err := r.client.Do(head); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}

	post, err := http.NewRequestWithContext(ctx, http.MethodPost, r.baseURL+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(post)
	if err != nil {
		return classify(r.ep, "start blob upload", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return r.statusError(resp, "blob upload "+desc.Digest.String())
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fmt.Errorf("blob upload to %s: the registry gave no usable Location (%q)", r.ep, resp.Header.Get("Location"))
	}
	q := loc.Query()
	q.Set("digest", desc.Digest.String())
	loc.RawQuery = q.Encode()

	put, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	put.ContentLength = int64(len(data))
	put.Header.Set("Content-Type", "application/octet-stream")
	resp, err = r.client.Do(put)
	if err != nil {
		return classify(r.ep, "upload blob "+desc.Digest.String(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return r.statusError(resp, "blob upload "+desc.Digest.String())
	}
	return nil
}

// PushManifest stores body, of the given media type, under tagOrDigest. It
// reports whether the registry says it processed the manifest's subject
// (the OCI-Subject header of OCI 1.1): when it did not, a client that pushed
// a referrer must maintain the referrers tag schema itself.
func (r *Repository) PushManifest(ctx context.Context, tagOrDigest, mediaType string, body []byte) (subjectProcessed bool, err error) {
	if len(body) > images.MaxManifestSize {
		return false, fmt.Errorf("push manifest %s to %s: %d bytes is more than the %d allowed: %w", tagOrDigest, r.ep, len(body), images.MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.baseURL+"/manifests/"+url.PathEscape(tagOrDigest), bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", mediaType)
	resp, err := r.client.Do(req)
	if err != nil {
		return false, classify(r.ep, "push manifest "+tagOrDigest, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return false, r.statusError(resp, "manifest "+tagOrDigest)
	}
	return resp.Header.Get("OCI-Subject") != "", nil
}

// Referrers lists the manifests whose subject is d, with the OCI 1.1
// referrers API, filtered by artifactType when it is not "". A registry
// without the API answers 404: the error then matches errdefs.ErrNotFound
// and callers fall back to the referrers tag schema (the index tagged
// "sha256-<hex>"). The answer is read with the manifest size bound and, as
// the API allows registries to ignore the filter, filtered again here.
func (r *Repository) Referrers(ctx context.Context, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("referrers of %q: %w: %w", d, err, errdefs.ErrInvalidArgument)
	}
	u := r.baseURL + "/referrers/" + d.String()
	if artifactType != "" {
		u += "?artifactType=" + url.QueryEscape(artifactType)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageIndex)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, classify(r.ep, "list referrers of "+d.String(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, r.statusError(resp, "referrers of "+d.String())
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, images.MaxManifestSize+1))
	if err != nil {
		return nil, classify(r.ep, "read referrers of "+d.String(), err)
	}
	if len(body) > images.MaxManifestSize {
		return nil, fmt.Errorf("referrers of %s from %s: more than the %d bytes allowed", d, r.ep, images.MaxManifestSize)
	}
	return ParseReferrers(body, artifactType)
}

// ParseReferrers reads a referrers index (from the API or the tag schema)
// and keeps the descriptors of artifactType ("" keeps all).
func ParseReferrers(body []byte, artifactType string) ([]ocispec.Descriptor, error) {
	idx, err := images.ParseIndex(body)
	if err != nil {
		return nil, fmt.Errorf("referrers index: %w", err)
	}
	var out []ocispec.Descriptor
	for _, m := range idx.Manifests {
		if artifactType == "" || m.ArtifactType == artifactType {
			out = append(out, m)
		}
	}
	return out, nil
}
