package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	dauth "github.com/distribution/distribution/v3/registry/auth"

	"github.com/sigil-project/sigil/auth"
)

// serveCatalog implements GET /v2/_catalog, listing only the repositories
// the caller may pull. Distribution's own catalog lists every repository
// to anyone holding the registry:catalog:* scope; the names of other
// teams' repositories are not for everyone to read.
//
// Pagination follows the distribution spec (n, last, Link rel="next"):
// pages are filled with visible names, so a page is short only at the end.
func (r *Registry) serveCatalog(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		serveError(w, r.logger, errcode.ErrorCodeUnsupported)
		return
	}
	access := dauth.Access{Resource: dauth.Resource{Type: "registry", Name: "catalog"}, Action: "*"}
	grant, ok := r.authorize(w, req, access)
	if !ok {
		r.auditDenied(req, route{name: "catalog"}, http.StatusUnauthorized, "")
		return
	}
	ctx := req.Context()
	id, err := r.identity(req, grant.User.Name)
	if err != nil {
		r.logger.WarnContext(ctx, "catalog: looking up the caller", "user", grant.User.Name, "error", err)
		serveError(w, r.logger, errcode.ErrorCodeUnavailable.WithMessage("cannot look up the caller's groups: "+err.Error()))
		return
	}

	q := req.URL.Query()
	limit := r.cfg.Catalog.MaxEntries
	if s := q.Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			serveError(w, r.logger, errcode.ErrorCodePaginationNumberInvalid.WithDetail(map[string]string{"n": s}))
			return
		}
		if n < limit {
			limit = n
		}
	}
	last := q.Get("last")
	repos := make([]string, 0, limit)
	more := false
	if limit > 0 {
		enum := r.ns
		page := make([]string, 100)
		for len(repos) < limit {
			n, err := enum.Repositories(ctx, page, last)
			end := errors.Is(err, io.EOF)
			if err != nil && !end {
				r.logger.ErrorContext(ctx, "catalog: listing repositories", "error", err)
				serveError(w, r.logger, errcode.ErrorCodeUnknown.WithMessage("listing repositories failed"))
				return
			}
			for _, name := range r.acl.FilterCatalog(id, page[:n]) {
				if len(repos) == limit {
					more = true
					break
				}
				repos = append(repos, name)
			}
			if n > 0 && len(repos) < limit {
				last = page[n-1]
			}
			if end || n == 0 || more {
				break
			}
		}
		if !more && len(repos) == limit {
			// Is there anything visible after the last name?
			more = r.anyVisibleAfter(req, id, repos[len(repos)-1])
		}
	}
	if more {
		u := url.URL{Path: "/v2/_catalog", RawQuery: url.Values{"n": {strconv.Itoa(limit)}, "last": {repos[len(repos)-1]}}.Encode()}
		w.Header().Set("Link", fmt.Sprintf("<%s>; rel=\"next\"", u.String()))
	}
	w.Header().Set("Content-Type", "application/json")
	body, _ := json.Marshal(struct {
		Repositories []string `json:"repositories"`
	}{repos})
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

func (r *Registry) anyVisibleAfter(req *http.Request, id *auth.Identity, last string) bool {
	page := make([]string, 100)
	for {
		n, err := r.ns.Repositories(req.Context(), page, last)
		if len(r.acl.FilterCatalog(id, page[:n])) > 0 {
			return true
		}
		if err != nil || n == 0 {
			return false
		}
		last = page[n-1]
	}
}

// identity turns a token subject back into an Identity with its groups,
// which the token does not carry. Anonymous is nil; a user the directory
// no longer knows is treated as anonymous.
func (r *Registry) identity(req *http.Request, subject string) (*auth.Identity, error) {
	if subject == "" {
		return nil, nil
	}
	if r.users == nil {
		return &auth.Identity{Name: subject}, nil
	}
	id, err := r.users.Lookup(req.Context(), subject)
	if errors.Is(err, auth.ErrUnknownUser) {
		return nil, nil
	}
	return id, err
}
