package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dauth "github.com/distribution/distribution/v3/registry/auth"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/sigil-project/sigil/auth"
)

// tokenEnv is a token server over real components: htpasswd users, robot
// accounts, the access rules, and distribution's verifier.
type tokenEnv struct {
	srv      *httptest.Server
	issuer   *auth.TokenIssuer
	verifier dauth.AccessController
	htpasswd string
	robots   *auth.Robots
	secret   string // of robot$ci
	logs     *logBuffer
	clock    *fakeClock // of the rate limiter

	mu     sync.Mutex
	events []auth.LoginEvent
}

var htUsers = map[string]string{
	"alice": "alice-Secret-1", // team-a through the ACL below
	"dave":  "dave-Secret-4",  // no rights but public
	"admin": "admin-Secret-5",
}

func newTokenEnv(t *testing.T, wrap func(auth.Authenticator) auth.Authenticator, opts ...auth.HandlerOption) *tokenEnv {
	t.Helper()
	e := &tokenEnv{htpasswd: writeHtpasswd(t, htUsers), clock: &fakeClock{t: time.Now()}}
	ht, err := auth.NewHtpasswd(e.htpasswd)
	if err != nil {
		t.Fatal(err)
	}
	e.robots = openRobots(t, filepath.Join(t.TempDir(), "robots.json"))
	if e.secret, err = e.robots.CreateRobot(context.Background(), "ci", []string{"team-a/**"}, []string{"pull", "push"}); err != nil {
		t.Fatal(err)
	}
	// htpasswd users have no groups: grant alice by name.
	acl, err := auth.NewACL([]auth.Rule{
		{Repositories: []string{"team-a/**"}, Users: []string{"alice"}, Actions: []string{"pull", "push", "delete"}},
		{Repositories: []string{"public/**"}, Anonymous: true, Actions: []string{"pull"}},
		{Repositories: []string{"**"}, Users: []string{"admin"}, Actions: []string{"*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.issuer = newIssuer(t, auth.TokenOptions{})
	logger, logs := newLogger(t)
	e.logs = logs
	var authn auth.Authenticator = auth.NewChain(e.robots, ht)
	if wrap != nil {
		authn = wrap(authn)
	}
	all := append([]auth.HandlerOption{
		auth.WithLogger(logger),
		auth.WithRateLimiter(auth.NewRateLimiter(auth.RateLimitOptions{Now: e.clock.Now})),
		auth.WithEvents(func(_ context.Context, ev auth.LoginEvent) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		}),
	}, opts...)
	mux := http.NewServeMux()
	mux.Handle("/auth/token", e.issuer.Handler(authn, acl, all...))
	mux.HandleFunc("/v2/", e.registryAPI)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	// Challenges must send real clients to this server's token endpoint.
	e.verifier = distributionVerifierAt(t, e.srv.URL+"/auth/token", e.issuer.Issuer(), e.issuer.Service(), e.issuer.RootCertBundle())
	return e
}

// registryAPI is the least of a registry that lets real clients log in
// and list tags: /v2/ and /v2/NAME/tags/list, guarded by distribution's
// own token access controller as the real registry is.
func (e *tokenEnv) registryAPI(w http.ResponseWriter, r *http.Request) {
	var access []dauth.Access
	rest := strings.TrimPrefix(r.URL.Path, "/v2/")
	name, isTags := strings.CutSuffix(rest, "/tags/list")
	switch {
	case rest == "":
	case isTags:
		access = append(access, dauth.Access{Resource: dauth.Resource{Type: "repository", Name: name}, Action: "pull"})
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.Header().Set("Content-Type", "application/json")
	if _, err := e.verifier.Authorized(r, access...); err != nil {
		var ch dauth.Challenge
		if errors.As(err, &ch) {
			ch.SetHeaders(r, w)
		}
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":%q}]}`, err.Error())
		return
	}
	if isTags {
		fmt.Fprintf(w, `{"name":%q,"tags":["1.0"]}`, name)
		return
	}
	fmt.Fprint(w, "{}")
}

// tokenResult is a response of the token endpoint, decoded.
type tokenResult struct {
	status  int
	header  http.Header
	body    map[string]any
	token   string
	refresh string
	access  []auth.ResourceActions
	subject string
}

func (e *tokenEnv) do(t *testing.T, req *http.Request) tokenResult {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := tokenResult{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("response %d is not JSON: %s", resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusOK {
		return r
	}
	r.token, _ = r.body["token"].(string)
	if at, _ := r.body["access_token"].(string); at != r.token {
		t.Errorf("access_token %q != token %q", at, r.token)
	}
	r.refresh, _ = r.body["refresh_token"].(string)
	if exp, _ := r.body["expires_in"].(float64); exp < 290 || exp > 300 {
		t.Errorf("expires_in = %v, want 300", r.body["expires_in"])
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(r.body["issued_at"])); err != nil {
		t.Errorf("issued_at = %v: %v", r.body["issued_at"], err)
	}
	claims, err := e.issuer.VerifyAccess(r.token)
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	r.access, r.subject = claims.Access, claims.Subject
	return r
}

func sameAccess(a, b []auth.ResourceActions) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}

func (e *tokenEnv) get(t *testing.T, user, pass string, query string) tokenResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/auth/token?"+query, nil)
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	return e.do(t, req)
}

func (e *tokenEnv) post(t *testing.T, form url.Values) tokenResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/auth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(t, req)
}

func access(pairs ...string) []auth.ResourceActions {
	var out []auth.ResourceActions
	for _, p := range pairs {
		typ, rest, _ := strings.Cut(p, ":")
		i := strings.LastIndex(rest, ":")
		out = append(out, auth.ResourceActions{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")})
	}
	return out
}

func TestHandlerGET(t *testing.T) {
	e := newTokenEnv(t, nil)
	q := func(scopes ...string) string {
		v := url.Values{"service": {"registry.test"}, "client_id": {"docker"}}
		for _, s := range scopes {
			v.Add("scope", s)
		}
		return v.Encode()
	}
	for _, tc := range []struct {
		name, user, pass, query string
		status                  int
		subject                 string
		want                    []auth.ResourceActions
	}{
		{"anonymous gets public pull only", "", "", q("repository:public/tools:pull,push", "repository:team-a/app:pull"),
			200, "", access("repository:public/tools:pull")},
		{"user in own namespace", "alice", htUsers["alice"], q("repository:team-a/app:pull,push"),
			200, "alice", access("repository:team-a/app:pull,push")},
		{"two scopes, cross-repository mount", "alice", htUsers["alice"], q("repository:team-a/app:pull,push", "repository:public/base:pull"),
			200, "alice", access("repository:team-a/app:pull,push", "repository:public/base:pull")},
		{"user without rights gets a token without the action", "dave", htUsers["dave"], q("repository:team-a/app:pull,push"),
			200, "dave", nil},
		{"push outside the namespace is not granted", "alice", htUsers["alice"], q("repository:team-b/app:pull,push"),
			200, "alice", nil},
		{"admin * and catalog", "admin", htUsers["admin"], q("repository:team-b/app:delete", "registry:catalog:*"),
			200, "admin", access("repository:team-b/app:delete", "registry:catalog:*")},
		{"anonymous catalog (it can pull public)", "", "", q("registry:catalog:*"),
			200, "", access("registry:catalog:*")},
		{"robot within its scope", "robot$ci", "", q("repository:team-a/app:pull,push,delete"),
			200, "robot$ci", access("repository:team-a/app:pull,push")},
		{"login only (docker login asks no scope)", "alice", htUsers["alice"], q(),
			200, "alice", nil},
		{"invalid repository name", "admin", htUsers["admin"], q("repository:Team/App:pull"),
			200, "admin", nil},
		{"wrong password", "alice", "alice-Secret-2", q("repository:team-a/app:pull"), 401, "", nil},
		{"unknown user", "mallory", "x", q("repository:public/tools:pull"), 401, "", nil},
		{"empty password", "alice", "", q(), 401, "", nil},
		{"account differs from the user", "alice", htUsers["alice"], q() + "&account=admin", 400, "", nil},
		{"another service", "alice", htUsers["alice"], "service=other&scope=repository:team-a/app:pull", 400, "", nil},
		{"malformed scope", "alice", htUsers["alice"], q("repository-team-a-app"), 400, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pass := tc.pass
			if tc.user == "robot$ci" {
				pass = e.secret
			}
			r := e.get(t, tc.user, pass, tc.query)
			if r.status != tc.status {
				t.Fatalf("status = %d (%v), want %d", r.status, r.body, tc.status)
			}
			if tc.status != 200 {
				if r.body["errors"] == nil || r.body["error_description"] == "" {
					t.Errorf("error body %v: want errors[] and error_description", r.body)
				}
				if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("401 without a Basic challenge: %q", r.header.Get("WWW-Authenticate"))
				}
				return
			}
			if r.subject != tc.subject || !sameAccess(r.access, tc.want) {
				t.Errorf("token for %q with %+v, want %q with %+v", r.subject, r.access, tc.subject, tc.want)
			}
		})
	}

	// Credential errors say the same thing whatever the cause.
	wrong := e.get(t, "alice", "nope", q())
	unknown := e.get(t, "nobody", "nope", q())
	if wrong.body["error_description"] != unknown.body["error_description"] {
		t.Errorf("messages differ for a wrong password (%v) and an unknown user (%v)", wrong.body["error_description"], unknown.body["error_description"])
	}
	// Neither is a 200 for another method.
	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/auth/token", nil)
	if r := e.do(t, req); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d, want 405", r.status)
	}
	req, _ = http.NewRequest(http.MethodGet, e.srv.URL+"/auth/token", nil)
	req.Header.Set("Authorization", "Bearer abc")
	if r := e.do(t, req); r.status != http.StatusBadRequest {
		t.Errorf("GET with a bearer header: %d, want 400", r.status)
	}
}

// The registry end of the flow: distribution's own access controller
// decides with the tokens the handler issued.
func TestHandlerTokensAtDistribution(t *testing.T) {
	e := newTokenEnv(t, nil)
	for _, tc := range []struct {
		user, repo string
		action     string
		ok         bool
	}{
		{"alice", "team-a/app", "push", true},
		{"alice", "team-a/app", "delete", true},
		{"alice", "team-b/app", "push", false},
		{"dave", "team-a/app", "pull", false},
		{"dave", "public/tools", "pull", true},
		{"dave", "public/tools", "push", false},
		{"", "public/tools", "pull", true},
		{"", "team-a/app", "pull", false},
	} {
		query := url.Values{"service": {"registry.test"}, "scope": {"repository:" + tc.repo + ":" + tc.action}}.Encode()
		r := e.get(t, tc.user, htUsers[tc.user], query)
		if r.status != 200 {
			t.Fatalf("%s: status %d", tc.user, r.status)
		}
		err := authorize(e.verifier, r.token, tc.repo, tc.action)
		if (err == nil) != tc.ok {
			t.Errorf("%q %s %s at distribution: %v, want ok=%v", tc.user, tc.action, tc.repo, err, tc.ok)
		}
	}
}

func TestHandlerOAuth(t *testing.T) {
	e := newTokenEnv(t, nil)
	form := url.Values{
		"grant_type": {"password"}, "username": {"alice"}, "password": {htUsers["alice"]},
		"client_id": {"sigil-test"}, "access_type": {"offline"}, "service": {"registry.test"},
		"scope": {"repository:team-a/app:pull,push repository:public/x:pull"},
	}
	r := e.post(t, form)
	if r.status != 200 || r.refresh == "" {
		t.Fatalf("password grant: %d %v, want a token and a refresh token", r.status, r.body)
	}
	if want := access("repository:team-a/app:pull,push", "repository:public/x:pull"); !reflect.DeepEqual(r.access, want) {
		t.Errorf("password grant access %+v, want %+v", r.access, want)
	}
	if r.body["scope"] != "repository:team-a/app:pull,push repository:public/x:pull" {
		t.Errorf("scope = %v", r.body["scope"])
	}

	// A refresh token is no access token, at distribution or here.
	if err := authorize(e.verifier, r.refresh, "team-a/app", "pull"); err == nil {
		t.Error("distribution accepted a refresh token as an access token")
	}
	if rr := e.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.token}}); rr.status != 401 {
		t.Errorf("access token as refresh token: %d, want 401", rr.status)
	}

	refresh := url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {r.refresh}, "client_id": {"docker"},
		"service": {"registry.test"}, "scope": {"repository:team-a/app:push"},
	}
	rr := e.post(t, refresh)
	if rr.status != 200 || rr.subject != "alice" || !reflect.DeepEqual(rr.access, access("repository:team-a/app:push")) {
		t.Fatalf("refresh grant: %d %v, subject %q access %+v", rr.status, rr.body, rr.subject, rr.access)
	}
	if rr.refresh != "" {
		t.Error("refresh grant without access_type=offline returned a refresh token")
	}
	if err := authorize(e.verifier, rr.token, "team-a/app", "push"); err != nil {
		t.Errorf("refreshed token at distribution: %v", err)
	}

	// Forged (alice's refresh token made out to admin), truncated or
	// garbage refresh tokens are refused.
	parts := strings.Split(r.refresh, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || !strings.Contains(string(payload), `"sub":"alice"`) {
		t.Fatalf("refresh token payload %s, %v", payload, err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"sub":"alice"`, `"sub":"admin"`, 1)))
	forged := strings.Join(parts, ".")
	for _, bad := range []string{forged, r.refresh[:40], "garbage", ""} {
		if rr := e.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {bad}}); rr.status != 401 {
			t.Errorf("refresh token %.20q...: %d, want 401", bad, rr.status)
		}
	}

	// Malformed requests.
	for _, tc := range []struct {
		form   url.Values
		status int
	}{
		{url.Values{}, 400},
		{url.Values{"grant_type": {"client_credentials"}}, 400},
		{url.Values{"grant_type": {"password"}, "password": {"x"}}, 400},
		{url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wrong"}}, 401},
	} {
		if rr := e.post(t, tc.form); rr.status != tc.status {
			t.Errorf("POST %v: %d, want %d", tc.form, rr.status, tc.status)
		}
	}

	// Robots get no refresh token: they have their secret.
	rb := e.post(t, url.Values{"grant_type": {"password"}, "username": {"robot$ci"}, "password": {e.secret}, "access_type": {"offline"}})
	if rb.status != 200 || rb.refresh != "" {
		t.Errorf("robot password grant: %d, refresh token %q; want a token and no refresh token", rb.status, rb.refresh)
	}

	// docker login: GET with offline_token=true returns a refresh token.
	g := e.get(t, "alice", htUsers["alice"], "service=registry.test&client_id=docker&offline_token=true")
	if g.status != 200 || g.refresh == "" {
		t.Errorf("GET offline_token=true: %d, refresh %q", g.status, g.refresh)
	}

	// The user leaves: the refresh token stops working.
	writeAtomic(t, e.htpasswd, "")
	if rr := e.post(t, refresh); rr.status != 401 {
		t.Errorf("refresh after the user was removed: %d, want 401", rr.status)
	}
}

// An authenticator that cannot look users up gets no refresh tokens,
// since a refresh could not check that the account still exists.
func TestHandlerNoLookupNoRefresh(t *testing.T) {
	type opaque struct{ auth.Authenticator } // hides Lookup
	e := newTokenEnv(t, func(a auth.Authenticator) auth.Authenticator { return opaque{a} })
	r := e.post(t, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {htUsers["alice"]}, "access_type": {"offline"}})
	if r.status != 200 || r.refresh != "" {
		t.Errorf("password grant: %d, refresh %q; want a token and no refresh token", r.status, r.refresh)
	}
}

func TestHandlerRateLimit(t *testing.T) {
	limiter := auth.NewRateLimiter(auth.RateLimitOptions{
		PerUser:    auth.Limit{Burst: 3, Every: time.Minute},
		PerAddress: auth.Limit{Burst: 6, Every: time.Minute},
	})
	e := newTokenEnv(t, nil, auth.WithRateLimiter(limiter))
	for i := range 3 {
		if r := e.get(t, "alice", fmt.Sprint("guess", i), ""); r.status != 401 {
			t.Fatalf("guess %d: %d, want 401", i, r.status)
		}
	}
	// Limited now, even with the right password, and told when to retry.
	r := e.get(t, "alice", htUsers["alice"], "")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("after 3 failures: %d, Retry-After %q; want 429 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
	if secs := r.header.Get("Retry-After"); secs != "60" && secs != "59" {
		t.Errorf("Retry-After = %s, want about 60", secs)
	}
	// Another user from the same address still gets in...
	if r := e.get(t, "admin", htUsers["admin"], ""); r.status != 200 {
		t.Errorf("another user: %d, want 200", r.status)
	}
	// ...until the address has failed too often.
	for i := range 3 {
		e.get(t, fmt.Sprint("nobody", i), "x", "")
	}
	if r := e.get(t, "admin", htUsers["admin"], ""); r.status != http.StatusTooManyRequests {
		t.Errorf("after 6 failures from the address: %d, want 429", r.status)
	}
	// Refresh tokens are limited per address too.
	if r := e.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"garbage"}}); r.status != http.StatusTooManyRequests {
		t.Errorf("refresh from a limited address: %d, want 429", r.status)
	}
	// Anonymous tokens stay available: no credentials, nothing to guess.
	if r := e.get(t, "", "", "scope=repository:public/x:pull"); r.status != 200 {
		t.Errorf("anonymous from a limited address: %d, want 200", r.status)
	}
	var limited int
	for _, ev := range e.events {
		if ev.Outcome == auth.OutcomeRateLimited {
			limited++
		}
	}
	if limited != 3 {
		t.Errorf("%d rate-limited events, want 3", limited)
	}
}

func TestHandlerUnavailable(t *testing.T) {
	e := newTokenEnv(t, nil)
	if err := os.Remove(e.htpasswd); err != nil {
		t.Fatal(err)
	}
	r := e.get(t, "alice", htUsers["alice"], "")
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", r.status)
	}
	if msg := fmt.Sprint(r.body["error_description"]); !strings.Contains(msg, e.htpasswd) || !strings.Contains(msg, "fail until it is fixed") {
		t.Errorf("message %q: want the file and what happens", msg)
	}
	// Unavailability is not the user's fault: it does not count.
	for range 20 {
		e.get(t, "alice", htUsers["alice"], "")
	}
	writeAtomic(t, e.htpasswd, mustRead(t, writeHtpasswd(t, htUsers)))
	if r := e.get(t, "alice", htUsers["alice"], ""); r.status != 200 {
		t.Errorf("after the file is back: %d, want 200", r.status)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Real clients: go-containerregistry's token exchange (crane, cosign and
// ko use it), by basic credentials and by refresh token.
func TestHandlerGGCRClient(t *testing.T) {
	e := newTokenEnv(t, nil)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	reg, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	challenge := &transport.Challenge{Scheme: "bearer", Insecure: true, Parameters: map[string]string{
		"realm": e.srv.URL + "/auth/token", "service": "registry.test",
	}}
	scopes := []string{"repository:team-a/app:pull,push"}
	ctx := context.Background()

	tok, err := transport.Exchange(ctx, reg, &authn.Basic{Username: "alice", Password: htUsers["alice"]}, http.DefaultTransport, scopes, challenge)
	if err != nil {
		t.Fatalf("basic exchange: %v", err)
	}
	if err := authorize(e.verifier, tok.Token, "team-a/app", "push"); err != nil {
		t.Errorf("basic exchange token at distribution: %v", err)
	}

	// A refresh token from a docker-style login, used as ggcr uses an
	// identity token (OAuth2 POST).
	login := e.get(t, "alice", htUsers["alice"], "service=registry.test&offline_token=true")
	tok, err = transport.Exchange(ctx, reg, authn.FromConfig(authn.AuthConfig{IdentityToken: login.refresh}), http.DefaultTransport, scopes, challenge)
	if err != nil {
		t.Fatalf("identity-token exchange: %v", err)
	}
	if err := authorize(e.verifier, tok.Token, "team-a/app", "push"); err != nil {
		t.Errorf("identity-token exchange token at distribution: %v", err)
	}

	_, err = transport.Exchange(ctx, reg, &authn.Basic{Username: "alice", Password: "wrong"}, http.DefaultTransport, scopes, challenge)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != 401 || !strings.Contains(err.Error(), "incorrect username or password") {
		t.Errorf("wrong password through ggcr: %v, want a 401 saying so", err)
	}
}

// Passwords, secrets and tokens never reach the log or the events, in any
// flow, successful or not.
func TestHandlerNeverLogsSecrets(t *testing.T) {
	e := newTokenEnv(t, nil)
	var tokens []string
	for u, p := range htUsers {
		r := e.get(t, u, p, "offline_token=true&scope=repository:team-a/app:pull")
		tokens = append(tokens, r.token, r.refresh)
		rr := e.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.refresh}, "access_type": {"offline"}})
		tokens = append(tokens, rr.token, rr.refresh)
		e.get(t, u, p+"-typo", "")
		e.post(t, url.Values{"grant_type": {"password"}, "username": {u}, "password": {p + "-typo2"}})
	}
	e.get(t, "robot$ci", e.secret, "scope=repository:team-a/app:push")
	e.get(t, "robot$ci", e.secret+"x", "")
	e.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tokens[1] + "tampered"}})

	logs := e.logs.String()
	if !strings.Contains(logs, `"user":"alice"`) || !strings.Contains(logs, "token issued") {
		t.Fatalf("the log lacks the expected lines; the test would prove nothing:\n%s", logs)
	}
	var events strings.Builder
	for _, ev := range e.events {
		fmt.Fprintf(&events, "%+v %v\n", ev, ev.Err)
	}
	// Plain, and as the basic auth header carries them.
	basic := func(u, p string) string { return base64.StdEncoding.EncodeToString([]byte(u + ":" + p)) }
	secrets := []string{e.secret, basic("robot$ci", e.secret), basic("robot$ci", e.secret+"x")}
	for u, p := range htUsers {
		secrets = append(secrets, p, p+"-typo", p+"-typo2", basic(u, p), basic(u, p+"-typo"))
	}
	for _, tok := range tokens {
		if tok == "" {
			t.Fatal("a flow returned no token")
		}
		// Any third of a token would do to leak its signature or claims.
		secrets = append(secrets, tok[len(tok)*2/3:])
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains the secret %.12q...", s)
		}
		if strings.Contains(events.String(), s) {
			t.Errorf("events contain the secret %.12q...", s)
		}
	}
}

func TestHandlerEvents(t *testing.T) {
	e := newTokenEnv(t, nil)
	e.get(t, "alice", htUsers["alice"], "scope=repository:team-a/app:pull,push&scope=repository:team-b/app:pull")
	e.get(t, "alice", "wrong", "")
	e.get(t, "", "", "scope=repository:public/x:pull")
	want := []struct {
		user, outcome, grant string
		status               int
		granted              []auth.ResourceActions
	}{
		{"alice", auth.OutcomeSuccess, "basic", 200, access("repository:team-a/app:pull,push")},
		{"alice", auth.OutcomeDenied, "basic", 401, nil},
		{"", auth.OutcomeSuccess, "anonymous", 200, access("repository:public/x:pull")},
	}
	if len(e.events) != len(want) {
		t.Fatalf("%d events, want %d", len(e.events), len(want))
	}
	for i, w := range want {
		ev := e.events[i]
		if ev.Username != w.user || ev.Outcome != w.outcome || ev.Grant != w.grant || ev.Status != w.status ||
			!reflect.DeepEqual(ev.Granted, w.granted) || ev.ClientAddress != "127.0.0.1" || ev.Time.IsZero() {
			t.Errorf("event %d = %+v, want %+v", i, ev, w)
		}
		if (ev.Err != nil) != (w.outcome != auth.OutcomeSuccess) {
			t.Errorf("event %d Err = %v", i, ev.Err)
		}
	}
	if e.events[0].Identity == nil || e.events[0].Identity.Name != "alice" || len(e.events[0].Requested) != 2 {
		t.Errorf("event 0 identity %v, requested %+v", e.events[0].Identity, e.events[0].Requested)
	}
	if !slices.ContainsFunc(e.events, func(ev auth.LoginEvent) bool { return errors.Is(ev.Err, auth.ErrInvalidCredentials) }) {
		t.Error("no event carries ErrInvalidCredentials")
	}
}
