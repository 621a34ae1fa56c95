package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/sigil-project/sigil/registry/audit"
	"github.com/sigil-project/sigil/registry/refindex"
	"github.com/sigil-project/sigil/signing/policy"
)

// maxManifestSize is distribution's limit on a manifest body; a larger
// push is passed through for distribution to refuse.
const maxManifestSize = 4 << 20

// serveManifest handles /v2/<name>/manifests/<reference>: distribution
// serves it, Sigil judges pulls in enforced repositories, indexes pushes
// and deletes for the referrers API, and audits all of it.
func (r *Registry) serveManifest(w http.ResponseWriter, req *http.Request, rt route) {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		r.getManifest(w, req, rt)
	case http.MethodPut:
		r.putManifest(w, req, rt)
	case http.MethodDelete:
		r.deleteManifest(w, req, rt)
	default:
		r.serveDistribution(w, req, rt)
	}
}

func (r *Registry) getManifest(w http.ResponseWriter, req *http.Request, rt route) {
	if r.enforce == nil || !r.enforce.covers(rt.repository) {
		sw := &statusWriter{ResponseWriter: w}
		r.app.ServeHTTP(sw, req)
		r.auditPull(req, rt, sw.code(), sw.Header().Get("Docker-Content-Digest"), "")
		return
	}
	if r.publisher(req, rt.repository) {
		sw := &statusWriter{ResponseWriter: w}
		r.app.ServeHTTP(sw, req)
		// Said in the audit line: an enforced repository served a
		// manifest without judging it.
		r.auditPull(req, rt, sw.code(), sw.Header().Get("Docker-Content-Digest"), "UNJUDGED: a publisher's read (push rights), not a consumer's pull")
		return
	}
	// Let distribution answer into a buffer, then judge exactly the
	// manifest it chose (a tag may move at any time; the digest it is
	// about to send cannot).
	buf := newBufferedWriter()
	r.app.ServeHTTP(buf, req)
	d := digest.Digest(buf.header.Get("Docker-Content-Digest"))
	if buf.code() == http.StatusOK {
		var payload []byte
		if req.Method == http.MethodGet {
			payload = buf.body.Bytes()
		}
		err := r.enforce.check(req.Context(), rt.repository, rt.reference, d, buf.header.Get("Content-Type"), payload)
		r.metrics.enforcement(err)
		if err != nil {
			r.refuse(w, req, rt, d, err)
			return
		}
	}
	buf.sendTo(w)
	r.auditPull(req, rt, buf.code(), d.String(), "")
}

// signingAgents are the User-Agents of signing tools, which read the
// manifest they are about to sign with a pull-only token.
var signingAgents = []string{"cosign/", "notation/", "sigil/"}

// publisher reports whether the request comes from someone who may push
// to repo, reading it to sign it: a token that grants push (sigil sign asks
// for pull and push), or a signing tool whose user the access rules let
// push (cosign sign reads with a pull-only token). Signing a freshly
// pushed image needs its manifest, which enforcement would otherwise
// refuse. Enforcement protects consumers: pull clients (docker, podman,
// skopeo, crane, containerd, the CRI) ask for pull only and are judged,
// whoever they are. Harbor draws the same line.
func (r *Registry) publisher(req *http.Request, repo string) bool {
	c := r.callerOf(req)
	if c.may("push", repo) {
		return true
	}
	if !c.valid || c.subject == "" {
		return false
	}
	ua := req.UserAgent()
	if !slices.ContainsFunc(signingAgents, func(a string) bool { return strings.Contains(ua, a) }) {
		return false
	}
	id, err := r.identity(req, c.subject)
	if err != nil || id == nil {
		return false
	}
	return slices.Contains(r.acl.Allowed(id, repo), "push")
}

// auditPull records a manifest read; note, when set, goes in the reason.
func (r *Registry) auditPull(req *http.Request, rt route, code int, d, note string) {
	switch {
	case code == http.StatusOK && req.Method == http.MethodGet:
		r.auditEvent(req, audit.Event{Action: audit.Pull, Repository: rt.repository, Reference: rt.reference, Digest: d, Outcome: audit.Success, Reason: note, Status: code})
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		r.auditDenied(req, rt, code, "")
	}
}

// refuse answers a pull the trust policy refused: 403 DENIED whose message
// starts with the reason code, or 503 when the policy could not be
// evaluated (the image is not served either way).
func (r *Registry) refuse(w http.ResponseWriter, req *http.Request, rt route, d digest.Digest, err error) {
	var rej *policy.RejectedError
	var e errcode.Error
	var reason string
	if errors.As(err, &rej) {
		reason = string(rej.Code)
		msg := fmt.Sprintf("%s: %s refused by the registry's trust policy (scope %q): %s", rej.Code, rej.Image, rej.Scope, rej.Detail)
		// The message says it all; clients print a detail map raw.
		e = errcode.ErrorCodeDenied.WithMessage(msg)
		reason += ": " + rej.Detail
	} else {
		reason = "POLICY_ERROR: " + err.Error()
		e = errcode.ErrorCodeUnavailable.WithMessage("the trust policy could not be evaluated for " + rt.repository + "@" + d.String() + ": " + err.Error())
	}
	r.logger.InfoContext(req.Context(), "pull refused by trust policy", "repository", rt.repository, "reference", rt.reference, "digest", d, "reason", reason)
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	serveError(w, r.logger, e)
	r.auditEvent(req, audit.Event{
		Action:     audit.Denied,
		Repository: rt.repository,
		Reference:  rt.reference,
		Digest:     d.String(),
		Outcome:    audit.Failure,
		Reason:     reason,
		Status:     e.Code.Descriptor().HTTPStatusCode,
	})
}

func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, rt route) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxManifestSize+1))
	if err != nil {
		serveError(w, r.logger, errcode.ErrorCodeUnknown.WithDetail(err))
		return
	}
	tooBig := len(body) > maxManifestSize
	if tooBig {
		req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), req.Body))
	} else {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	// A push by a sha512 (or other non-sha256) digest: distribution only
	// takes sha256, so verify the body against the digest given, push it
	// by its sha256 digest, and link the given digest to it.
	alias, isAlias := nonCanonical(rt.reference)
	if isAlias && !tooBig {
		if !verifies(alias, body) {
			serveError(w, r.logger, errcode.ErrorCodeDigestInvalid.WithDetail("the manifest does not match "+alias.String()))
			return
		}
		canonical := digest.FromBytes(body)
		req.URL.Path = strings.TrimSuffix(req.URL.Path, alias.String()) + canonical.String()
		req.URL.RawPath = ""
	}
	buf := newBufferedWriter()
	r.app.ServeHTTP(buf, req)
	fixPushError(buf)
	code := buf.code()
	d := digest.Digest(buf.header.Get("Docker-Content-Digest"))
	if isAlias && code == http.StatusCreated && !tooBig {
		if err := r.writeLink(req.Context(), revisionLinkPath(rt.repository, alias), d); err != nil {
			r.logger.ErrorContext(req.Context(), "linking a manifest under its digest", "repository", rt.repository, "digest", alias, "error", err)
			serveError(w, r.logger, errcode.ErrorCodeUnknown.WithMessage("manifest stored but not under "+alias.String()+"; push it again"))
			return
		}
		buf.header.Set("Location", strings.Replace(buf.header.Get("Location"), d.String(), alias.String(), 1))
		buf.header.Set("Docker-Content-Digest", alias.String())
		d = alias
	}
	if code == http.StatusCreated && !tooBig {
		if d == "" {
			d = digest.FromBytes(body)
		}
		subject, err := r.indexManifest(req, rt.repository, d, req.Header.Get("Content-Type"), body)
		if err != nil {
			// The manifest is stored but not indexed: fail the push so
			// the client retries it (a repeated push is harmless).
			r.logger.ErrorContext(req.Context(), "indexing pushed manifest", "repository", rt.repository, "digest", d, "error", err)
			serveError(w, r.logger, errcode.ErrorCodeUnknown.WithMessage("manifest stored but its referrers index could not be updated; push it again"))
			r.auditEvent(req, audit.Event{Action: audit.Push, Repository: rt.repository, Reference: rt.reference, Digest: d.String(), Outcome: audit.Failure, Reason: "INDEX_ERROR", Status: http.StatusInternalServerError})
			return
		}
		if subject != "" {
			// OCI distribution-spec: the registry processed the subject.
			buf.header.Set("OCI-Subject", subject.String())
		}
	}
	buf.sendTo(w)
	switch {
	case code == http.StatusCreated:
		r.auditEvent(req, audit.Event{Action: audit.Push, Repository: rt.repository, Reference: rt.reference, Digest: d.String(), Outcome: audit.Success, Status: code})
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		r.auditDenied(req, rt, code, "")
	default:
		r.auditEvent(req, audit.Event{Action: audit.Push, Repository: rt.repository, Reference: rt.reference, Outcome: audit.Failure, Reason: errorCodeOf(buf.body.Bytes()), Status: code})
	}
}

// indexManifest records the edges of a stored manifest: to its subject
// (referrers) and, for an index, to its children (parents).
func (r *Registry) indexManifest(req *http.Request, repo string, d digest.Digest, mediaType string, payload []byte) (subject digest.Digest, err error) {
	m, err := refindex.ParseManifest(payload, mediaType)
	if err != nil {
		return "", err
	}
	ctx := req.Context()
	desc := m.Descriptor(d, int64(len(payload)))
	for kind, target := range m.Edges() {
		if err := r.index.Add(ctx, kind, repo, target, desc); err != nil {
			return "", err
		}
		if kind == refindex.Referrers {
			subject = target
		}
	}
	return subject, nil
}

func (r *Registry) deleteManifest(w http.ResponseWriter, req *http.Request, rt route) {
	// Read what the manifest points at before it is gone, to drop its
	// edges after distribution deleted it. A tag delete removes no
	// manifest and no edge.
	var m *refindex.Manifest
	d, derr := digest.Parse(rt.reference)
	if derr == nil {
		m, _ = r.loadManifest(req, rt.repository, d)
	}
	// Deleting by a sha512 digest removes distribution's alias link only;
	// the sha256 revision goes too, so the manifest is really gone.
	var canonical digest.Digest
	if _, isAlias := nonCanonical(rt.reference); isAlias && derr == nil {
		if link, err := r.driver.GetContent(req.Context(), revisionLinkPath(rt.repository, d)); err == nil {
			canonical = digest.Digest(strings.TrimSpace(string(link)))
		}
	}
	sw := &statusWriter{ResponseWriter: w}
	r.app.ServeHTTP(sw, req)
	code := sw.code()
	if code == http.StatusAccepted && canonical.Validate() == nil {
		if ms, err := manifestService(req.Context(), r.ns, rt.repository); err == nil {
			if err := ms.Delete(req.Context(), canonical); err != nil {
				r.logger.WarnContext(req.Context(), "deleting the sha256 revision of a manifest deleted by another digest", "repository", rt.repository, "digest", canonical, "error", err)
			}
		}
	}
	if code == http.StatusAccepted && r.enforce != nil {
		r.enforce.forget(rt.repository)
	}
	if code == http.StatusAccepted && m != nil {
		ctx := req.Context()
		var errs []error
		if m.Subject != nil {
			errs = append(errs, r.index.Remove(ctx, refindex.Referrers, rt.repository, m.Subject.Digest, d))
		}
		if m.IsIndex() {
			for _, child := range m.Manifests {
				errs = append(errs, r.index.Remove(ctx, refindex.Parents, rt.repository, child.Digest, d))
			}
		}
		if err := errors.Join(errs...); err != nil {
			// Harmless: listings check that manifests exist, and gc
			// rebuilds the index.
			r.logger.WarnContext(ctx, "removing index entries of deleted manifest", "repository", rt.repository, "digest", d, "error", err)
		}
	}
	switch {
	case code == http.StatusAccepted:
		r.auditEvent(req, audit.Event{Action: audit.Delete, Repository: rt.repository, Reference: rt.reference, Digest: string(d), Outcome: audit.Success, Status: code})
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		r.auditDenied(req, rt, code, "")
	default:
		r.auditEvent(req, audit.Event{Action: audit.Delete, Repository: rt.repository, Reference: rt.reference, Outcome: audit.Failure, Reason: http.StatusText(code), Status: code})
	}
}

// loadManifest reads a stored manifest through Sigil's own view.
func (r *Registry) loadManifest(req *http.Request, repo string, d digest.Digest) (*refindex.Manifest, error) {
	mt, payload, err := readManifest(req.Context(), r.ns, repo, d)
	if err != nil {
		return nil, err
	}
	return refindex.ParseManifest(payload, mt)
}

// verifies reports whether data has digest d.
func verifies(d digest.Digest, data []byte) bool {
	v := d.Verifier()
	_, _ = v.Write(data)
	return v.Verified()
}

// manifestService is repo's manifests in Sigil's own view of the storage
// (ns).
func manifestService(ctx context.Context, ns distribution.Namespace, repo string) (distribution.ManifestService, error) {
	named, err := reference.WithName(repo)
	if err != nil {
		return nil, err
	}
	repository, err := ns.Repository(ctx, named)
	if err != nil {
		return nil, err
	}
	return repository.Manifests(ctx)
}

// readManifest returns the media type and payload of repo's manifest d.
func readManifest(ctx context.Context, ns distribution.Namespace, repo string, d digest.Digest) (string, []byte, error) {
	ms, err := manifestService(ctx, ns, repo)
	if err != nil {
		return "", nil, err
	}
	m, err := ms.Get(ctx, d)
	if err != nil {
		return "", nil, fmt.Errorf("reading manifest %s of %s: %w", d, repo, err)
	}
	return m.Payload()
}

// fixPushError turns distribution's 500 for a layer URL its validation
// refuses (a client's manifest, not a server fault) into the 400
// MANIFEST_INVALID the distribution spec prescribes.
func fixPushError(buf *bufferedWriter) {
	if buf.code() != http.StatusInternalServerError {
		return
	}
	var errs errcode.Errors
	if errs.UnmarshalJSON(buf.body.Bytes()) != nil {
		return
	}
	for _, e := range errs {
		if ce, ok := e.(errcode.Error); ok && ce.Message == "invalid URL on layer" {
			rec := newBufferedWriter()
			serveError(rec, slog.New(slog.DiscardHandler), errcode.ErrorCodeManifestInvalid.WithMessage(
				"a layer names an external URL the registry does not allow (validation.manifests.urls)"))
			*buf = *rec
			return
		}
	}
}

// errorCodeOf returns the first error code of an OCI error body, for the
// audit log's reason.
func errorCodeOf(body []byte) string {
	var errs errcode.Errors
	if len(body) == 0 || errs.UnmarshalJSON(body) != nil || len(errs) == 0 {
		return ""
	}
	if e, ok := errs[0].(errcode.Error); ok {
		return e.Code.String() + ": " + e.Message
	}
	return errs[0].Error()
}
