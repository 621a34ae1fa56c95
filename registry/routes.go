package registry

import (
	"context"
	"crypto/sha256"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	dauth "github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/reference"
	"github.com/gorilla/mux"

	"github.com/sigil-project/sigil/auth"
	"github.com/sigil-project/sigil/registry/audit"
)

// Route names Sigil adds to distribution's (v2.RouteName*).
const (
	routeReferrers = "referrers"
	routeToken     = "token"
	routeHealth    = "healthz"
	routeMetrics   = "metrics"
	routeOther     = "other"
)

// route is what a /v2/ request addresses.
type route struct {
	name       string // v2.RouteName* or routeReferrers
	repository string
	reference  string // tag or digest (manifests), digest (blobs, referrers)
}

// referrersPath matches /v2/<name>/referrers/<digest>; the name is checked
// against the distribution grammar separately.
// Compiled on first use: the sigil binary is also the container init and
// monitor, and every process pays for package initialisation.
var referrersPath = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^/v2/(.+)/referrers/([^/]+)$`) })

var anchoredName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^` + reference.NameRegexp.String() + `$`) })

// v2Router only classifies requests (distribution's own router serves
// them): the same grammar, so Sigil and distribution never disagree on what
// a path names.
var v2Router = sync.OnceValue(v2.Router)

func classify(req *http.Request) route {
	if m := referrersPath().FindStringSubmatch(req.URL.Path); m != nil && anchoredName().MatchString(m[1]) {
		return route{name: routeReferrers, repository: m[1], reference: m[2]}
	}
	var match mux.RouteMatch
	if !v2Router().Match(req, &match) || match.Route == nil {
		return route{name: routeOther}
	}
	rt := route{name: match.Route.GetName(), repository: match.Vars["name"]}
	switch rt.name {
	case v2.RouteNameManifest:
		rt.reference = match.Vars["reference"]
	case v2.RouteNameBlob:
		rt.reference = match.Vars["digest"]
	}
	return rt
}

// reqState travels in the request context so the outer instrumentation
// learns what the inner handlers found out.
type reqState struct {
	route string
}

type reqStateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	if s, ok := ctx.Value(reqStateKey{}).(*reqState); ok {
		return s
	}
	return &reqState{}
}

// routes assembles the HTTP surface around distribution's app.
func (r *Registry) routes(token http.Handler) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("/v2/", r.serveV2)
	m.Handle(tokenPath, token)
	m.HandleFunc("/healthz", r.serveHealth)
	m.Handle("/metrics", r.metrics.handler())
	return r.instrument(m)
}

// instrument counts and times every request, and makes the request's
// scheme explicit for distribution, which builds the token realm and
// Location headers from X-Forwarded-Proto (defaulting to https).
func (r *Registry) instrument(next http.Handler) http.Handler {
	fixProto := r.cfg.HTTP.Host == ""
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		st := &reqState{route: routeOther}
		switch {
		case req.URL.Path == tokenPath:
			st.route = routeToken
		case req.URL.Path == "/healthz":
			st.route = routeHealth
		case req.URL.Path == "/metrics":
			st.route = routeMetrics
		}
		req = req.WithContext(context.WithValue(req.Context(), reqStateKey{}, st))
		if fixProto {
			proto := "http"
			if req.TLS != nil {
				proto = "https"
			}
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, req)
		r.metrics.observe(st.route, req.Method, sw.code(), time.Since(start))
	})
}

func (r *Registry) serveV2(w http.ResponseWriter, req *http.Request) {
	rt := classify(req)
	stateFrom(req.Context()).route = rt.name
	switch rt.name {
	case routeReferrers:
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		r.serveReferrers(w, req, rt)
	case v2.RouteNameCatalog:
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		r.serveCatalog(w, req)
	case v2.RouteNameManifest:
		r.serveManifest(w, req, rt)
	default:
		r.serveDistribution(w, req, rt)
	}
}

// serveDistribution hands the request to distribution, auditing deletes
// and refusals.
func (r *Registry) serveDistribution(w http.ResponseWriter, req *http.Request, rt route) {
	var sw *statusWriter
	if alias := blobDigestRewrite(req, rt); alias != "" {
		sw = r.serveBlobAlias(w, req, rt, alias)
	} else {
		sw = &statusWriter{ResponseWriter: w}
		r.app.ServeHTTP(sw, req)
	}
	code := sw.code()
	switch {
	case req.Method == http.MethodDelete && code == http.StatusAccepted:
		r.auditEvent(req, audit.Event{Action: audit.Delete, Repository: rt.repository, Digest: rt.reference, Outcome: audit.Success, Status: code})
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		r.auditDenied(req, rt, code, "")
	}
}

// authorize checks the request's token for access with the same token
// access controller distribution uses. On refusal it has written the
// response (401 with the Bearer challenge, as distribution sends) and
// returns false.
func (r *Registry) authorize(w http.ResponseWriter, req *http.Request, access ...dauth.Access) (*dauth.Grant, bool) {
	grant, err := r.access.Authorized(req, access...)
	if err == nil {
		return grant, true
	}
	if ch, ok := err.(dauth.Challenge); ok {
		ch.SetHeaders(req, w)
		serveError(w, r.logger, errcode.ErrorCodeUnauthorized.WithDetail(access))
		return nil, false
	}
	// Not a challenge: the controller itself failed. Say nothing more.
	r.logger.ErrorContext(req.Context(), "checking authorization", "error", err)
	w.WriteHeader(http.StatusBadRequest)
	return nil, false
}

// caller is who sent a request, read from its bearer token.
type caller struct {
	subject string // "" for anonymous
	robot   bool
	valid   bool // a token was sent and verified
	sent    bool // a token was sent at all
	access  []auth.ResourceActions
}

// may reports whether the caller's token grants action on repository.
func (c caller) may(action, repository string) bool {
	for _, ra := range c.access {
		if ra.Type != "repository" || ra.Name != repository {
			continue
		}
		for _, a := range ra.Actions {
			if a == action || a == "*" {
				return true
			}
		}
	}
	return false
}

func (r *Registry) callerOf(req *http.Request) caller {
	raw, ok := bearerToken(req)
	if !ok {
		return caller{}
	}
	key := sha256.Sum256([]byte(raw))
	now := time.Now()
	if c, hit := r.callers.get(key, now); hit {
		return c
	}
	claims, err := r.tokens.VerifyAccess(raw)
	if err != nil {
		// The subject of a forged or expired token is not to be
		// believed; the audit line says "anonymous" with the reason.
		return caller{sent: true}
	}
	c := caller{
		subject: claims.Subject,
		robot:   strings.HasPrefix(claims.Subject, auth.RobotPrefix),
		valid:   true,
		sent:    true,
		access:  claims.Access,
	}
	var exp time.Time
	if claims.ExpiresAt != nil {
		exp = claims.ExpiresAt.Time
	}
	// Reused until the token expires (at most verifiedTTL), as the grants
	// are (tokencache.go).
	r.callers.put(key, c, now, exp)
	return c
}

// clientAddr is the request's peer address without the port.
func clientAddr(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}

// auditEvent fills who and from where, and writes e.
func (r *Registry) auditEvent(req *http.Request, e audit.Event) {
	c := r.callerOf(req)
	e.User, e.Robot = c.subject, c.robot
	e.Client = clientAddr(req)
	if err := r.audit.Log(e); err != nil {
		r.metrics.auditErrors.Inc()
		r.logger.ErrorContext(req.Context(), "writing audit log", "error", err)
	}
}

// auditDenied records a refused request. reason is the error code and
// text; when empty it is derived from the status and token.
func (r *Registry) auditDenied(req *http.Request, rt route, status int, reason string) {
	c := r.callerOf(req)
	if status == http.StatusUnauthorized && !c.sent {
		// The first, credential-less request of every client: the
		// challenge that starts the token flow, not a refusal.
		return
	}
	if reason == "" {
		switch {
		case status == http.StatusUnauthorized && !c.valid:
			reason = "UNAUTHORIZED: invalid or expired token"
		case status == http.StatusUnauthorized:
			reason = "UNAUTHORIZED: the token does not grant " + actionFor(req.Method) + " on " + rt.repository
		default:
			reason = "DENIED"
		}
	}
	r.auditEvent(req, audit.Event{
		Action:     audit.Denied,
		Repository: rt.repository,
		Reference:  rt.reference,
		Outcome:    audit.Failure,
		Reason:     reason,
		Status:     status,
	})
}

// actionFor is the token action a method needs (distribution's mapping).
func actionFor(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "pull"
	case http.MethodDelete:
		return "delete"
	}
	return "push"
}
