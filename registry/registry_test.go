package registry_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"

	"github.com/sigil-project/sigil/registry"
	"github.com/sigil-project/sigil/registry/audit"
	"github.com/sigil-project/sigil/registry/config"
)

// Users of the test htpasswd file; each password is the name + "-pw".
const (
	alice = "alice" // team-a: pull, push, delete
	bob   = "bob"   // no rule of his own
	admin = "admin" // everything
)

func password(user string) string { return user + "-pw" }

// env is a registry served in-process on a loopback port.
type env struct {
	t     *testing.T
	host  string // 127.0.0.1:PORT
	url   string
	dir   string
	audit *syncBuffer
	reg   *registry.Registry
	cfg   *config.Config
}

type envOptions struct {
	policy  func(host string) string // containers-policy.json; default accepts everything
	enforce []string
	extra   string // more YAML at the top level
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	var htpasswd bytes.Buffer
	for _, u := range []string{alice, bob, admin} {
		h, err := bcrypt.GenerateFromPassword([]byte(password(u)), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&htpasswd, "%s:%s\n", u, h)
	}
	writeFile(t, filepath.Join(dir, "htpasswd"), htpasswd.String())
	pol := `{"default":[{"type":"insecureAcceptAnything"}]}`
	if o.policy != nil {
		pol = o.policy(host)
	}
	writeFile(t, filepath.Join(dir, "policy.json"), pol)
	enforce, _ := json.Marshal(o.enforce)
	yaml := fmt.Sprintf(`
http: {addr: %q}
storage: {filesystem: {rootdirectory: %q}}
auth:
  token: {issuer: sigil-test, expiration: 5m}
  htpasswd: {path: htpasswd}
  rateLimit: {disabled: true}
access:
  - {repositories: ["team-a/**"], users: [alice], actions: [pull, push, delete]}
  - {repositories: ["public/**"], anonymous: true, actions: [pull]}
  - {repositories: ["**"], users: [admin], actions: ["*"]}
signatures:
  policy: policy.json
  enforce: %s
%s`, host, filepath.Join(dir, "storage"), enforce, o.extra)
	cfgPath := filepath.Join(dir, "registry.yaml")
	writeFile(t, cfgPath, yaml)
	cfg, err := config.Parse(cfgPath, []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, host: host, url: "http://" + host, dir: dir, audit: &syncBuffer{}, cfg: cfg}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	e.reg, err = registry.New(context.Background(), cfg, registry.WithLogger(logger), registry.WithAuditLogger(audit.New(e.audit)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.reg.Close() })
	srv := httptest.NewUnstartedServer(e.reg.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return e
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// events returns the audit lines written so far.
func (s *syncBuffer) events(t *testing.T) []audit.Event {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []audit.Event
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var e audit.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// wantAudit fails unless an audit event matches every set field of want.
func (e *env) wantAudit(want audit.Event) {
	e.t.Helper()
	events := e.audit.events(e.t)
	for _, got := range events {
		if (want.User == "" || got.User == want.User) &&
			(want.Action == "" || got.Action == want.Action) &&
			(want.Repository == "" || got.Repository == want.Repository) &&
			(want.Outcome == "" || got.Outcome == want.Outcome) &&
			(want.Digest == "" || got.Digest == want.Digest) &&
			(want.Reason == "" || strings.HasPrefix(got.Reason, want.Reason)) {
			if got.Client != "127.0.0.1" || got.Time.IsZero() {
				e.t.Errorf("audit event %+v: client or time missing", got)
			}
			return
		}
	}
	e.t.Errorf("no audit event like %+v in:\n%s", want, e.audit.b.String())
}

func (e *env) ref(repo string) string { return e.host + "/" + repo }

func basic(user string) remote.Option {
	if user == "" {
		return remote.WithAuth(authn.Anonymous)
	}
	return remote.WithAuth(&authn.Basic{Username: user, Password: password(user)})
}

func (e *env) push(user, ref string, img v1.Image) (digest.Digest, error) {
	e.t.Helper()
	r, err := name.ParseReference(e.ref(ref), name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := remote.Write(r, img, basic(user)); err != nil {
		return "", err
	}
	h, err := img.Digest()
	if err != nil {
		e.t.Fatal(err)
	}
	return digest.Digest(h.String()), nil
}

func (e *env) mustPush(user, ref string, img v1.Image) digest.Digest {
	e.t.Helper()
	d, err := e.push(user, ref, img)
	if err != nil {
		e.t.Fatalf("push %s as %s: %v", ref, user, err)
	}
	return d
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// client is an HTTP client that does the token flow as user for scopes.
func (e *env) client(user string, scopes ...string) *http.Client {
	e.t.Helper()
	reg, err := name.NewRegistry(e.host, name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	var a authn.Authenticator = authn.Anonymous
	if user != "" {
		a = &authn.Basic{Username: user, Password: password(user)}
	}
	rt, err := transport.NewWithContext(context.Background(), reg, a, http.DefaultTransport, scopes)
	if err != nil {
		e.t.Fatalf("token flow as %q for %v: %v", user, scopes, err)
	}
	return &http.Client{Transport: rt}
}

// token fetches a token the way docker does: GET /auth/token with basic
// credentials.
func (e *env) token(user, pass string, scopes ...string) (int, map[string]any) {
	e.t.Helper()
	u := e.url + "/auth/token?service=sigil-registry"
	for _, s := range scopes {
		u += "&scope=" + s
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// claims decodes a JWT's payload (no verification: the registry does it).
func claims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func do(t *testing.T, c *http.Client, method, url string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

// ociError is the first error of an OCI error body.
func ociError(t *testing.T, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an OCI error body: %s", body)
	}
	return e.Errors[0].Code, e.Errors[0].Message
}

const manifestAccept = "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.docker.distribution.manifest.list.v2+json"

func TestPushPull(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	img := randomImage(t)
	d := e.mustPush(alice, "team-a/app:1.0", img)

	r, _ := name.ParseReference(e.ref("team-a/app:1.0"), name.Insecure)
	got, err := remote.Image(r, basic(alice))
	if err != nil {
		t.Fatal(err)
	}
	gd, _ := got.Digest()
	if gd.String() != d.String() {
		t.Errorf("pulled digest = %s, want %s", gd, d)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer: %v", err)
		}
		rc.Close()
	}
	e.wantAudit(audit.Event{User: alice, Action: audit.Login, Outcome: audit.Success})
	e.wantAudit(audit.Event{User: alice, Action: audit.Push, Repository: "team-a/app", Digest: d.String(), Outcome: audit.Success})
	e.wantAudit(audit.Event{User: alice, Action: audit.Pull, Repository: "team-a/app", Digest: d.String(), Outcome: audit.Success})
}

func TestWrongPasswordGetsNoToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, tc := range []struct{ user, pass string }{
		{alice, "Wr0ng-Secret"},
		{alice, ""},
		{"nobody", "x"},
		{"*", "x"},
	} {
		code, body := e.token(tc.user, tc.pass, "repository:team-a/app:pull")
		if code != http.StatusUnauthorized {
			t.Errorf("token for %q/%q: status %d, want 401", tc.user, tc.pass, code)
		}
		if _, ok := body["token"]; ok {
			t.Errorf("token for %q/%q: a token was issued: %v", tc.user, tc.pass, body)
		}
	}
	e.wantAudit(audit.Event{User: alice, Action: audit.Login, Outcome: audit.Failure, Reason: "INVALID_CREDENTIALS"})
	if strings.Contains(e.audit.b.String(), "Wr0ng-Secret") {
		t.Errorf("the audit log holds a password:\n%s", e.audit.b.String())
	}
}

func TestNoRightsTokenWithoutAction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.mustPush(alice, "team-a/app:1", randomImage(t))

	code, body := e.token(bob, password(bob), "repository:team-a/app:pull,push")
	if code != http.StatusOK {
		t.Fatalf("token for bob: status %d %v", code, body)
	}
	tok, _ := body["token"].(string)
	c := claims(t, tok)
	access, _ := json.Marshal(c["access"])
	if strings.Contains(string(access), "pull") || strings.Contains(string(access), "push") {
		t.Errorf("bob's token grants %s on team-a/app, want no action", access)
	}
	resp, data := do(t, http.DefaultClient, http.MethodGet, e.url+"/v2/team-a/app/manifests/1", nil, "Authorization", "Bearer "+tok, "Accept", manifestAccept)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bob's pull: status %d, want 401", resp.StatusCode)
	}
	if !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("WWW-Authenticate = %q, want insufficient_scope", resp.Header.Get("WWW-Authenticate"))
	}
	if code, _ := ociError(t, data); code != "UNAUTHORIZED" {
		t.Errorf("error code = %s, want UNAUTHORIZED", code)
	}
	e.wantAudit(audit.Event{User: bob, Action: audit.Denied, Repository: "team-a/app", Outcome: audit.Failure, Reason: "UNAUTHORIZED"})

	if _, err := e.push(bob, "team-a/app:2", randomImage(t)); err == nil {
		t.Error("bob pushed to team-a/app")
	}
}

func TestPushOutsideNamespaceRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, ref := range []string{"team-b/app:1", "public/app:1", "team-a:1", "team-ab/app:1"} {
		if _, err := e.push(alice, ref, randomImage(t)); err == nil {
			t.Errorf("alice pushed %s", ref)
		} else if !strings.Contains(err.Error(), "401") && !strings.Contains(err.Error(), "UNAUTHORIZED") {
			t.Errorf("alice pushing %s: %v, want 401 UNAUTHORIZED", ref, err)
		}
	}
	e.wantAudit(audit.Event{User: alice, Action: audit.Denied, Repository: "team-b/app"})
}

func TestAnonymousPullOnlyWhereAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	pub := e.mustPush(admin, "public/tool:1", randomImage(t))
	e.mustPush(admin, "team-a/secret:1", randomImage(t))

	r, _ := name.ParseReference(e.ref("public/tool:1"), name.Insecure)
	img, err := remote.Image(r, basic(""))
	if err != nil {
		t.Fatalf("anonymous pull of public/tool: %v", err)
	}
	if d, _ := img.Digest(); d.String() != pub.String() {
		t.Errorf("anonymous pull digest = %s, want %s", d, pub)
	}
	r, _ = name.ParseReference(e.ref("team-a/secret:1"), name.Insecure)
	if _, err := remote.Image(r, basic("")); err == nil {
		t.Error("anonymous pull of team-a/secret succeeded")
	}
	if _, err := e.push("", "public/tool:2", randomImage(t)); err == nil {
		t.Error("anonymous push to public/tool succeeded")
	}
	e.wantAudit(audit.Event{User: "anonymous", Action: audit.Pull, Repository: "public/tool", Outcome: audit.Success})
	e.wantAudit(audit.Event{User: "anonymous", Action: audit.Denied, Repository: "team-a/secret"})
}

// cosignSignature is a manifest shaped like cosign's tag-scheme signature:
// an image config, one simple-signing payload layer.
func cosignSignature(t *testing.T, e *env, c *http.Client, repo string, subject digest.Digest) []byte {
	t.Helper()
	payload := []byte(`{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"` + subject.String() + `"},"type":"cosign container image signature"},"optional":null}`)
	config := []byte(`{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`)
	pd := e.putBlob(c, repo, payload)
	cd := e.putBlob(c, repo, config)
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageManifest,
		"config":        map[string]any{"mediaType": ocispec.MediaTypeImageConfig, "digest": cd, "size": len(config)},
		"layers": []any{map[string]any{
			"mediaType":   "application/vnd.dev.cosign.simplesigning.v1+json",
			"digest":      pd,
			"size":        len(payload),
			"annotations": map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQ=="},
		}},
	})
	return m
}

// artifact is an OCI 1.1 artifact manifest with a subject.
func artifact(t *testing.T, e *env, c *http.Client, repo, artifactType string, subject ocispec.Descriptor) []byte {
	t.Helper()
	empty := []byte("{}")
	ed := e.putBlob(c, repo, empty)
	data := []byte("sbom for " + subject.Digest.String() + artifactType)
	dd := e.putBlob(c, repo, data)
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageManifest,
		"artifactType":  artifactType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed, "size": 2},
		"layers":        []any{map[string]any{"mediaType": "text/spdx+json", "digest": dd, "size": len(data)}},
		"subject":       subject,
		"annotations":   map[string]string{"org.example.kind": artifactType},
	})
	return m
}

func (e *env) putBlob(c *http.Client, repo string, data []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(data)
	resp, _ := do(e.t, c, http.MethodPost, e.url+"/v2/"+repo+"/blobs/uploads/", nil)
	if resp.StatusCode != http.StatusAccepted {
		e.t.Fatalf("blob upload to %s: status %d", repo, resp.StatusCode)
	}
	loc, err := resp.Location()
	if err != nil {
		e.t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, body := do(e.t, c, http.MethodPut, loc.String(), data, "Content-Type", "application/octet-stream")
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("blob upload to %s: status %d: %s", repo, resp.StatusCode, body)
	}
	return d
}

func TestMain(m *testing.M) {
	// Distribution logs through logrus' process-wide logger.
	registry.RouteDistributionLogs(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})), false)
	os.Exit(m.Run())
}

func (e *env) putManifest(c *http.Client, repo, ref string, m []byte) *http.Response {
	e.t.Helper()
	resp, body := do(e.t, c, http.MethodPut, e.url+"/v2/"+repo+"/manifests/"+ref, m, "Content-Type", ocispec.MediaTypeImageManifest)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("manifest PUT %s:%s: status %d: %s", repo, ref, resp.StatusCode, body)
	}
	return resp
}

func TestEnforcement(t *testing.T) {
	t.Parallel()
	img := randomImage(t)
	idx, err := random.Index(256, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	policy := func(host string) string {
		return fmt.Sprintf(`{"default":[{"type":"reject"}],"transports":{"docker":{
			%[1]q:[{"type":"insecureAcceptAnything"}],
			%[2]q:[{"type":"insecureAcceptAnything"}]}}}`,
			host+"/team-a/trusted", host+"/team-a/locked@"+idxDigest.String())
	}
	e := newEnv(t, envOptions{policy: policy, enforce: []string{"team-a/**"}})
	// c pushes; pc pulls, asking for pull only as pull clients do.
	c := e.client(alice, "repository:team-a/locked:pull,push,delete")
	pc := e.client(alice, "repository:team-a/locked:pull", "repository:team-a/trusted:pull")

	// Pushing is never refused: enforcement is about pulls.
	locked := e.mustPush(alice, "team-a/locked:1", img)
	e.mustPush(alice, "team-a/trusted:1", img)

	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, ref := range []string{"1", locked.String()} {
			resp, body := do(t, pc, method, e.url+"/v2/team-a/locked/manifests/"+ref, nil, "Accept", manifestAccept)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%s team-a/locked:%s: status %d, want 403", method, ref, resp.StatusCode)
			}
			if method == http.MethodGet {
				code, msg := ociError(t, body)
				if code != "DENIED" || !strings.HasPrefix(msg, "POLICY_REJECT: ") || !strings.Contains(msg, locked.String()) {
					t.Errorf("refusal = %s %q, want DENIED with POLICY_REJECT: and the digest", code, msg)
				}
			}
		}
	}
	e.wantAudit(audit.Event{User: alice, Action: audit.Denied, Repository: "team-a/locked", Digest: locked.String(), Reason: "POLICY_REJECT"})

	// A publisher's token (push) reads what it pushed, to sign it.
	resp, _ := do(t, c, http.MethodGet, e.url+"/v2/team-a/locked/manifests/"+locked.String(), nil, "Accept", manifestAccept)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET with a push token: status %d, want 200", resp.StatusCode)
	}

	// The same image where the policy accepts it.
	resp, _ = do(t, pc, http.MethodGet, e.url+"/v2/team-a/trusted/manifests/1", nil, "Accept", manifestAccept)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET team-a/trusted:1: status %d, want 200", resp.StatusCode)
	}

	// Signatures and artifacts stay readable in the refused repository.
	sig := cosignSignature(t, e, c, "team-a/locked", locked)
	sigTag := "sha256-" + locked.Encoded() + ".sig"
	e.putManifest(c, "team-a/locked", sigTag, sig)
	art := artifact(t, e, c, "team-a/locked", "application/spdx+json", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: locked, Size: 100})
	e.putManifest(c, "team-a/locked", digest.FromBytes(art).String(), art)
	for _, ref := range []string{sigTag, digest.FromBytes(sig).String(), digest.FromBytes(art).String()} {
		resp, body := do(t, pc, http.MethodGet, e.url+"/v2/team-a/locked/manifests/"+ref, nil, "Accept", manifestAccept)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET signature/artifact %s: status %d %s, want 200", ref, resp.StatusCode, body)
		}
	}

	// A runnable image dressed as a referrer is still judged.
	trojan := randomImage(t)
	tm, _ := trojan.RawManifest()
	var tmj map[string]any
	_ = json.Unmarshal(tm, &tmj)
	tmj["subject"] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: locked, Size: 100}
	e.mustPush(alice, "team-a/locked:trojan-base", trojan) // blobs
	tm, _ = json.Marshal(tmj)
	resp, _ = do(t, c, http.MethodPut, e.url+"/v2/team-a/locked/manifests/sha256-"+locked.Encoded()+".att", tm, "Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("trojan push: %d", resp.StatusCode)
	}
	resp, _ = do(t, pc, http.MethodGet, e.url+"/v2/team-a/locked/manifests/sha256-"+locked.Encoded()+".att", nil, "Accept", manifestAccept)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("runnable image with a subject under a signature tag: status %d, want 403", resp.StatusCode)
	}

	// A multi-platform image: the policy accepts the index (by digest);
	// its platform manifests are accepted through it.
	ir, _ := name.ParseReference(e.ref("team-a/locked:multi"), name.Insecure)
	if err := remote.WriteIndex(ir, idx, basic(alice)); err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	resp, _ = do(t, pc, http.MethodGet, e.url+"/v2/team-a/locked/manifests/"+idxDigest.String(), nil, "Accept", manifestAccept)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET accepted index by digest: status %d, want 200", resp.StatusCode)
	}
	for _, child := range im.Manifests {
		resp, _ := do(t, pc, http.MethodGet, e.url+"/v2/team-a/locked/manifests/"+child.Digest.String(), nil, "Accept", manifestAccept)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET platform manifest %s of an accepted index: status %d, want 200", child.Digest, resp.StatusCode)
		}
	}
	// By tag the index is judged as team-a/locked:multi, which the policy
	// rejects.
	resp, _ = do(t, pc, http.MethodGet, e.url+"/v2/team-a/locked/manifests/multi", nil, "Accept", manifestAccept)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET index by tag: status %d, want 403", resp.StatusCode)
	}

	// Outside the enforced patterns nothing is judged.
	e.mustPush(admin, "team-b/app:1", img)
	ra, _ := name.ParseReference(e.ref("team-b/app:1"), name.Insecure)
	if _, err := remote.Image(ra, basic(admin)); err != nil {
		t.Errorf("pull outside enforced repositories: %v", err)
	}
}

func TestReferrers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	img := randomImage(t)
	d := e.mustPush(alice, "team-a/app:1", img)
	c := e.client(alice, "repository:team-a/app:pull,push,delete")
	mt, _ := img.MediaType()
	raw, _ := img.RawManifest()
	subject := ocispec.Descriptor{MediaType: string(mt), Digest: d, Size: int64(len(raw))}

	sbom := artifact(t, e, c, "team-a/app", "application/spdx+json", subject)
	sig := artifact(t, e, c, "team-a/app", "application/vnd.dev.sigstore.bundle.v0.3+json", subject)
	for _, m := range [][]byte{sbom, sig} {
		resp := e.putManifest(c, "team-a/app", digest.FromBytes(m).String(), m)
		if got := resp.Header.Get("OCI-Subject"); got != d.String() {
			t.Errorf("OCI-Subject = %q, want %s", got, d)
		}
	}
	list := func(query string) (*http.Response, ocispec.Index) {
		t.Helper()
		resp, body := do(t, c, http.MethodGet, e.url+"/v2/team-a/app/referrers/"+d.String()+query, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("referrers%s: status %d: %s", query, resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != ocispec.MediaTypeImageIndex {
			t.Errorf("referrers Content-Type = %q", ct)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			t.Fatal(err)
		}
		return resp, idx
	}
	_, idx := list("")
	if len(idx.Manifests) != 2 {
		t.Fatalf("referrers = %d manifests, want 2: %+v", len(idx.Manifests), idx)
	}
	for _, m := range idx.Manifests {
		if m.ArtifactType == "" || m.Size == 0 || m.MediaType != ocispec.MediaTypeImageManifest || m.Annotations["org.example.kind"] != m.ArtifactType {
			t.Errorf("referrer descriptor %+v incomplete", m)
		}
	}
	resp, idx := list("?artifactType=application/spdx%2Bjson")
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest.FromBytes(sbom) {
		t.Errorf("filtered referrers = %+v, want the SBOM only", idx.Manifests)
	}
	if resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Errorf("OCI-Filters-Applied = %q", resp.Header.Get("OCI-Filters-Applied"))
	}

	// Deleting a referrer drops it from the list.
	resp, _ = do(t, c, http.MethodDelete, e.url+"/v2/team-a/app/manifests/"+digest.FromBytes(sbom).String(), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if _, idx := list(""); len(idx.Manifests) != 1 {
		t.Errorf("after delete: %d referrers, want 1", len(idx.Manifests))
	}
	// Unknown subjects have an empty list, not 404.
	if _, idx := list(""); idx.Manifests == nil {
		t.Error("manifests is null, want a list")
	}
	resp, _ = do(t, c, http.MethodGet, e.url+"/v2/team-a/app/referrers/sha256:"+strings.Repeat("0", 64), nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("referrers of an unknown digest: %d, want 200", resp.StatusCode)
	}
	resp, _ = do(t, c, http.MethodGet, e.url+"/v2/team-a/app/referrers/sha256:nothex", nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("referrers of a bad digest: %d, want 400", resp.StatusCode)
	}
	// Without a token: the challenge.
	resp, _ = do(t, http.DefaultClient, http.MethodGet, e.url+"/v2/team-a/app/referrers/"+d.String(), nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="repository:team-a/app:pull"`) {
		t.Errorf("anonymous referrers: %d %q, want 401 with a challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// bob may not list them.
	resp, _ = do(t, e.client(bob, "repository:team-a/app:pull"), http.MethodGet, e.url+"/v2/team-a/app/referrers/"+d.String(), nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bob's referrers: %d, want 401", resp.StatusCode)
	}
}

func TestCatalogFiltered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, repo := range []string{"team-a/one", "team-a/two", "team-b/three", "public/four", "zeta/five"} {
		e.mustPush(admin, repo+":1", randomImage(t))
	}
	catalog := func(user, query string) (*http.Response, []string) {
		t.Helper()
		c := e.client(user, "registry:catalog:*")
		resp, body := do(t, c, http.MethodGet, e.url+"/v2/_catalog"+query, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("catalog as %q: status %d %s", user, resp.StatusCode, body)
		}
		var out struct{ Repositories []string }
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		return resp, out.Repositories
	}
	tests := []struct {
		user string
		want string
	}{
		{admin, "public/four team-a/one team-a/two team-b/three zeta/five"},
		{alice, "public/four team-a/one team-a/two"},
		{bob, "public/four"},
		{"", "public/four"},
	}
	for _, tt := range tests {
		if _, got := catalog(tt.user, ""); strings.Join(got, " ") != tt.want {
			t.Errorf("catalog as %q = %v, want %s", tt.user, got, tt.want)
		}
	}
	// Pagination counts visible names only.
	resp, got := catalog(alice, "?n=2")
	if strings.Join(got, " ") != "public/four team-a/one" || !strings.Contains(resp.Header.Get("Link"), "last=team-a%2Fone") {
		t.Errorf("page 1 = %v, Link %q", got, resp.Header.Get("Link"))
	}
	resp, got = catalog(alice, "?n=2&last=team-a/one")
	if strings.Join(got, " ") != "team-a/two" || resp.Header.Get("Link") != "" {
		t.Errorf("page 2 = %v, Link %q", got, resp.Header.Get("Link"))
	}
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	resp, body := do(t, http.DefaultClient, http.MethodGet, e.url+"/healthz", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("/healthz: %d %s", resp.StatusCode, body)
	}
	e.mustPush(alice, "team-a/app:1", randomImage(t))
	resp, body = do(t, http.DefaultClient, http.MethodGet, e.url+"/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`sigil_registry_http_requests_total{code="201",method="PUT",route="manifest"} 1`,
		`sigil_registry_logins_total{code="200",outcome="success"}`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestBaseAndChallenge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	resp, _ := do(t, http.DefaultClient, http.MethodGet, e.url+"/v2/", nil)
	want := fmt.Sprintf(`Bearer realm="http://%s/auth/token",service="sigil-registry"`, e.host)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("GET /v2/: %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	c := e.client(alice)
	resp, _ = do(t, c, http.MethodGet, e.url+"/v2/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/ with a token: %d", resp.StatusCode)
	}
	_ = time.Second
}
