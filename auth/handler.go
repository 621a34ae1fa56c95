package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HandlerOption configures TokenIssuer.Handler.
type HandlerOption func(*handler)

// WithLogger sends the handler's log lines to l. Default: discarded.
// Lines carry user, client address, grant and outcome; never a password
// or a token.
func WithLogger(l *slog.Logger) HandlerOption {
	return func(h *handler) {
		if l != nil {
			h.log = l
		}
	}
}

// WithRateLimiter shares a limiter (between handlers or replicas of one
// process). nil disables rate limiting. Default: a NewRateLimiter with
// default options per handler.
func WithRateLimiter(l *RateLimiter) HandlerOption {
	return func(h *handler) { h.limiter = l }
}

// WithEvents calls f once per token request, after the response is
// decided: the registry writes its audit log from these.
func WithEvents(f func(context.Context, LoginEvent)) HandlerOption {
	return func(h *handler) { h.events = f }
}

// LoginEvent describes one token request. It holds no secret.
type LoginEvent struct {
	Time time.Time
	// Username is the name the client sent ("" when anonymous or for a
	// refresh token).
	Username string
	// Identity is who was authenticated; nil for anonymous and failures.
	Identity *Identity
	// ClientAddress is the address the rate limiter saw.
	ClientAddress string
	// Grant is how the client authenticated: "anonymous", "basic" (GET
	// with basic auth), "password" or "refresh_token" (OAuth2 POST).
	Grant string
	// Requested and Granted are the scopes asked for and put in the token.
	Requested, Granted []ResourceActions
	// Status is the HTTP status sent.
	Status int
	// Outcome is "success", "denied" (bad credentials), "rate-limited",
	// "unavailable" (backend down) or "invalid" (malformed request).
	Outcome string
	// Err is the reason when Outcome is not "success".
	Err error
}

// Outcomes of a LoginEvent.
const (
	OutcomeSuccess     = "success"
	OutcomeDenied      = "denied"
	OutcomeRateLimited = "rate-limited"
	OutcomeUnavailable = "unavailable"
	OutcomeInvalid     = "invalid"
)

type handler struct {
	t       *TokenIssuer
	authn   Authenticator
	acl     *ACL
	log     *slog.Logger
	limiter *RateLimiter
	events  func(context.Context, LoginEvent)
}

// maxScopes bounds the work one request can ask for; docker asks for one
// or two, a cross-repository mount for two.
const maxScopes = 64

// Handler serves the token endpoint (mount it at the realm, e.g.
// /auth/token):
//
//   - GET, the token spec: ?service=S&scope=repository:NAME:pull,push
//     (repeatable)&account=U&offline_token=true&client_id=C, with HTTP
//     basic credentials, or none for an anonymous token. docker, podman,
//     skopeo, crane and cosign log in this way.
//   - POST, the OAuth2 form: grant_type=password with username and
//     password, or grant_type=refresh_token with refresh_token; scope
//     (space-separated), service, client_id, access_type=offline. docker
//     uses it with the refresh token it stored at login.
//
// A token carries, per requested repository, the requested actions the
// ACL grants: possibly none (the registry then refuses with
// insufficient_scope). Wrong credentials get 401, a limited client 429
// with Retry-After, an unreachable backend 503, a malformed request 400.
// Refresh tokens are issued (offline_token=true or access_type=offline)
// only when authn is a Lookuper: a refresh looks the user up again, so a
// deleted account stops working and group changes apply.
func (t *TokenIssuer) Handler(authn Authenticator, acl *ACL, opts ...HandlerOption) http.Handler {
	h := &handler{
		t: t, authn: authn, acl: acl,
		log:     slog.New(slog.DiscardHandler),
		limiter: NewRateLimiter(RateLimitOptions{}),
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// tokenResponse is the body of a 200: both spellings of the token, as the
// spec asks (older clients read "token", OAuth2 ones "access_token").
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// requestError is a refusal: the status, the OAuth2 error code and the
// message the client sees, and the cause kept for logs and events.
type requestError struct {
	status  int
	code    string // OAuth2 "error"
	message string
	outcome string
	err     error
}

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ev := LoginEvent{Time: h.t.now(), ClientAddress: remoteHost(r)}
	resp, rerr := h.serve(r, &ev)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if rerr != nil {
		ev.Status, ev.Outcome, ev.Err = rerr.status, rerr.outcome, rerr.err
		h.writeError(w, r, rerr)
		h.log.LogAttrs(r.Context(), levelFor(rerr.outcome), "token request refused",
			slog.String("user", ev.Username), slog.String("client", ev.ClientAddress),
			slog.String("grant", ev.Grant), slog.String("outcome", rerr.outcome),
			slog.Int("status", rerr.status), slog.String("error", rerr.err.Error()))
	} else {
		ev.Status, ev.Outcome = http.StatusOK, OutcomeSuccess
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "token issued",
			slog.String("user", ev.Identity.String()), slog.String("client", ev.ClientAddress),
			slog.String("grant", ev.Grant), slog.String("access", formatScopes(ev.Granted)),
			slog.Bool("refresh_token", resp.RefreshToken != ""))
	}
	if h.events != nil {
		h.events(r.Context(), ev)
	}
}

func levelFor(outcome string) slog.Level {
	switch outcome {
	case OutcomeUnavailable:
		return slog.LevelError
	case OutcomeDenied, OutcomeRateLimited:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

func (h *handler) serve(r *http.Request, ev *LoginEvent) (*tokenResponse, *requestError) {
	var params = r.URL.Query()
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			return nil, invalid("invalid_request", fmt.Errorf("reading the form: %w", err))
		}
		params = r.Form
	default:
		return nil, &requestError{status: http.StatusMethodNotAllowed, code: "invalid_request", outcome: OutcomeInvalid,
			message: "use GET or POST", err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	if s := params.Get("service"); s != "" && s != h.t.service {
		return nil, invalid("invalid_request", fmt.Errorf("unknown service %q: this token server issues tokens for %q", s, h.t.service))
	}
	requested, err := parseScopes(params["scope"])
	if err != nil {
		return nil, invalid("invalid_scope", err)
	}
	ev.Requested = requested

	var (
		id      *Identity
		offline bool
	)
	ctx := r.Context()
	switch {
	case r.Method == http.MethodGet:
		offline = params.Get("offline_token") == "true"
		user, pass, ok := r.BasicAuth()
		if !ok {
			if r.Header.Get("Authorization") != "" {
				return nil, invalid("invalid_request", errors.New("unsupported Authorization header: send HTTP basic credentials, or none for anonymous access"))
			}
			ev.Grant = "anonymous"
			break
		}
		ev.Grant, ev.Username = "basic", user
		if acct := params.Get("account"); acct != "" && acct != user {
			return nil, invalid("invalid_request", fmt.Errorf("account %q does not match the user name %q of the credentials", acct, user))
		}
		if id, err = h.login(ctx, user, pass, ev.ClientAddress); err != nil {
			return nil, classify(err)
		}
	default:
		offline = params.Get("access_type") == "offline"
		ev.Grant = params.Get("grant_type")
		switch ev.Grant {
		case "password":
			user, pass := params.Get("username"), params.Get("password")
			ev.Username = user
			if user == "" {
				return nil, invalid("invalid_request", errors.New("grant_type=password needs username and password"))
			}
			if id, err = h.login(ctx, user, pass, ev.ClientAddress); err != nil {
				return nil, classify(err)
			}
		case "refresh_token":
			if id, err = h.refresh(ctx, params.Get("refresh_token"), ev.ClientAddress); err != nil {
				return nil, classify(err)
			}
		case "":
			return nil, invalid("invalid_request", errors.New("no grant_type: use password or refresh_token"))
		default:
			return nil, invalid("unsupported_grant_type", fmt.Errorf("grant_type %q is not supported: use password or refresh_token", ev.Grant))
		}
	}
	ev.Identity = id

	ev.Granted = h.grant(id, requested)
	token, exp, err := h.t.Issue(id, ev.Granted)
	if err != nil {
		return nil, &requestError{status: http.StatusInternalServerError, code: "server_error", outcome: OutcomeUnavailable,
			message: "could not sign the token", err: err}
	}
	resp := &tokenResponse{
		Token: token, AccessToken: token,
		ExpiresIn: int(exp.Sub(h.t.now()).Round(time.Second) / time.Second),
		IssuedAt:  h.t.now().UTC().Format(time.RFC3339),
	}
	if r.Method == http.MethodPost {
		resp.Scope = formatScopes(ev.Granted)
	}
	if _, canLookup := h.authn.(Lookuper); offline && canLookup {
		if resp.RefreshToken, err = h.t.issueRefresh(id); err != nil {
			return nil, &requestError{status: http.StatusInternalServerError, code: "server_error", outcome: OutcomeUnavailable,
				message: "could not sign the refresh token", err: err}
		}
	}
	return resp, nil
}

// login checks the rate limits, then the credentials, and records the
// outcome. Only wrong credentials count as failures: an unavailable
// directory must not lock everybody out once it is back.
func (h *handler) login(ctx context.Context, user, pass, addr string) (*Identity, error) {
	if h.limiter != nil {
		if err := h.limiter.Check(user, addr); err != nil {
			return nil, err
		}
	}
	if h.authn == nil {
		return nil, fmt.Errorf("no authenticator configured: %w", ErrUnavailable)
	}
	id, err := h.authn.Authenticate(ctx, user, pass)
	if err == nil && id == nil {
		err = fmt.Errorf("authenticator %T returned no identity: %w", h.authn, ErrUnavailable)
	}
	if h.limiter != nil {
		switch {
		case err == nil:
			h.limiter.Succeeded(user)
		case errors.Is(err, ErrInvalidCredentials):
			h.limiter.Failed(user, addr)
		}
	}
	return id, err
}

// refresh turns a refresh token back into a current identity.
func (h *handler) refresh(ctx context.Context, raw, addr string) (*Identity, error) {
	if h.limiter != nil {
		if err := h.limiter.Check("", addr); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*Identity, error) {
		if h.limiter != nil {
			h.limiter.Failed("", addr)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidCredentials, err)
	}
	lk, ok := h.authn.(Lookuper)
	if !ok {
		return fail(errors.New("refresh tokens are not supported by this server's authenticator: log in again with a password"))
	}
	if raw == "" {
		return fail(errors.New("grant_type=refresh_token without refresh_token"))
	}
	user, source, err := h.t.parseRefresh(raw)
	if err != nil {
		return fail(fmt.Errorf("%w; log in again", err))
	}
	id, err := lk.Lookup(ctx, user)
	switch {
	case errors.Is(err, ErrInvalidCredentials):
		return fail(fmt.Errorf("refresh token for %q: %w; log in again", user, err))
	case err != nil:
		return nil, err
	case id == nil || id.Robot || id.Source != source:
		return fail(fmt.Errorf("refresh token for %q from %q no longer matches the account; log in again", user, source))
	}
	return id, nil
}

// grant computes the token's access: per requested resource, the
// requested actions the ACL allows. Resources with nothing granted are
// left out.
func (h *handler) grant(id *Identity, requested []ResourceActions) []ResourceActions {
	var out []ResourceActions
	for _, ra := range requested {
		var got []string
		switch {
		case h.acl == nil:
		case ra.Type == "repository":
			got = h.acl.Grant(id, ra.Name, ra.Actions...)
		case ra.Type == "registry" && ra.Name == "catalog" && slices.Contains(ra.Actions, ActionAll):
			// The registry shows each caller only what it may pull
			// (ACL.FilterCatalog); the scope just opens the door.
			if h.acl.CatalogAllowed(id) {
				got = []string{ActionAll}
			}
		}
		if len(got) > 0 {
			out = append(out, ResourceActions{Type: ra.Type, Class: ra.Class, Name: ra.Name, Actions: got})
		}
	}
	return out
}

// parseScopes reads scope parameters ("type[(class)]:name:action,action",
// several per parameter separated by spaces) and merges repeats of one
// resource. The name is everything between the first and the last colon,
// as in distribution, so "repository:host:5000/x:pull" keeps its port.
func parseScopes(values []string) ([]ResourceActions, error) {
	var out []ResourceActions
	for _, v := range values {
		for s := range strings.FieldsSeq(v) {
			typ, rest, ok1 := strings.Cut(s, ":")
			i := strings.LastIndex(rest, ":")
			if !ok1 || i < 0 || typ == "" || rest[:i] == "" {
				return nil, fmt.Errorf("malformed scope %q: want type:name:actions, as in repository:team-a/app:pull,push", s)
			}
			name, actions := rest[:i], rest[i+1:]
			class := ""
			if j := strings.IndexByte(typ, '('); j >= 0 && strings.HasSuffix(typ, ")") {
				typ, class = typ[:j], typ[j+1:len(typ)-1]
			}
			k := slices.IndexFunc(out, func(ra ResourceActions) bool { return ra.Type == typ && ra.Name == name && ra.Class == class })
			if k < 0 {
				if len(out) == maxScopes {
					return nil, fmt.Errorf("more than %d scopes in one request", maxScopes)
				}
				out = append(out, ResourceActions{Type: typ, Class: class, Name: name})
				k = len(out) - 1
			}
			for a := range strings.SplitSeq(actions, ",") {
				if a != "" && !slices.Contains(out[k].Actions, a) {
					out[k].Actions = append(out[k].Actions, a)
				}
			}
		}
	}
	return out, nil
}

func formatScopes(ras []ResourceActions) string {
	parts := make([]string, 0, len(ras))
	for _, ra := range ras {
		typ := ra.Type
		if ra.Class != "" {
			typ += "(" + ra.Class + ")"
		}
		parts = append(parts, typ+":"+ra.Name+":"+strings.Join(ra.Actions, ","))
	}
	return strings.Join(parts, " ")
}

func invalid(code string, err error) *requestError {
	return &requestError{status: http.StatusBadRequest, code: code, outcome: OutcomeInvalid, message: err.Error(), err: err}
}

// classify maps an authentication error to the response. Credential
// errors get one generic message whatever the cause, so a client cannot
// tell an unknown user from a wrong password.
func classify(err error) *requestError {
	var rl *RateLimitError
	switch {
	case errors.As(err, &rl):
		return &requestError{status: http.StatusTooManyRequests, code: "slow_down", outcome: OutcomeRateLimited, message: rl.Error(), err: err}
	case errors.Is(err, ErrInvalidCredentials):
		return &requestError{status: http.StatusUnauthorized, code: "invalid_grant", outcome: OutcomeDenied,
			message: "incorrect username or password (or an expired login: log in again)", err: err}
	default:
		// ErrUnavailable and anything unexpected: fail closed, and say
		// why, as the administrator is the one who can fix it.
		return &requestError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", outcome: OutcomeUnavailable,
			message: err.Error(), err: err}
	}
}

// writeError sends the refusal in both shapes clients parse: the
// registry's {"errors":[...]} (docker, containers/image, ggcr) and
// OAuth2's error/error_description.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, e *requestError) {
	code := map[int]string{
		http.StatusUnauthorized:       "UNAUTHORIZED",
		http.StatusTooManyRequests:    "TOOMANYREQUESTS",
		http.StatusServiceUnavailable: "UNAVAILABLE",
		http.StatusMethodNotAllowed:   "UNSUPPORTED",
	}[e.status]
	if code == "" {
		code = "UNSUPPORTED"
		if e.status >= 500 {
			code = "UNKNOWN"
		}
	}
	if e.status == http.StatusUnauthorized && r.Method == http.MethodGet {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", h.t.service))
	}
	if e.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, POST")
	}
	var rl *RateLimitError
	if errors.As(e.err, &rl) {
		w.Header().Set("Retry-After", strconv.Itoa(max(int(math.Ceil(rl.RetryAfter.Seconds())), 1)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors":            []map[string]string{{"code": code, "message": e.message}},
		"error":             e.code,
		"error_description": e.message,
	})
}
