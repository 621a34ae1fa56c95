package tests

// End-to-end tests of `sigil registry serve`: the real binary on a
// loopback port, a real slapd (auth/ldaptest), and the clients people use:
// crane, skopeo, podman, cosign, sigil itself. They need no root.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/sigil-project/sigil/auth/ldaptest"
	"github.com/sigil-project/sigil/registry/audit"
	"github.com/sigil-project/sigil/signing"
	"github.com/sigil-project/sigil/tests/testimage"
)

// keyPassword encrypts the test signing key (COSIGN_PASSWORD).
const keyPassword = "key-pw"

// regEnv is one registry with its directory, started by newRegEnv.
type regEnv struct {
	t      *testing.T
	dir    string
	host   string // 127.0.0.1:PORT
	url    string
	config string
	audit  string
	log    string
	ldap   *ldaptest.Server
	key    string // cosign private key (encrypted with keyPassword)
	pub    string
	cmd    *exec.Cmd
	done   chan error
}

// newRegEnv starts slapd and `sigil registry serve` with LDAP auth and
// these rules:
//
//	team-a/**  group team-a (alice; carol through team-a-contractors): pull, push, delete
//	public/**  anonymous pull
//	**         user admin: everything
//
// Trust enforcement covers team-a/**, whose images must carry a cosign
// signature by the test key.
func newRegEnv(t *testing.T) *regEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	dir := t.TempDir()
	e := &regEnv{t: t, dir: dir, config: filepath.Join(dir, "registry.yaml"), audit: filepath.Join(dir, "audit.jsonl"), log: filepath.Join(dir, "registry.log")}
	e.ldap = ldaptest.StartSlapd(t)

	priv, pub, err := signing.GenerateKeyPair([]byte(keyPassword))
	if err != nil {
		t.Fatal(err)
	}
	e.key, e.pub = filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
	mustWrite(t, e.key, priv)
	mustWrite(t, e.pub, pub)
	mustWrite(t, filepath.Join(dir, "ldap-password"), []byte(e.ldap.BindPassword+"\n"))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.host = ln.Addr().String()
	ln.Close()
	e.url = "http://" + e.host

	policy := fmt.Sprintf(`{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{%q:[
		{"type":"sigstoreSigned","keyPath":%q,"signedIdentity":{"type":"matchRepository"}}]}}}`, e.host+"/team-a", e.pub)
	mustWrite(t, filepath.Join(dir, "policy.json"), []byte(policy))
	cfg := fmt.Sprintf(`http:
  addr: %s
storage:
  filesystem: {rootdirectory: %s}
auth:
  token: {issuer: sigil, expiration: 5m}
  ldap:
    url: %s
    bindDN: %s
    bindPasswordFile: ldap-password
    userSearch: {baseDN: "%s", filter: "(uid={username})"}
    groupSearch: {baseDN: "%s", filter: "(|(member={dn})(uniqueMember={dn}))", nameAttribute: cn}
    timeout: 3s
access:
  - {repositories: ["team-a/**"], groups: [team-a], actions: [pull, push, delete]}
  - {repositories: ["public/**"], anonymous: true, actions: [pull]}
  - {repositories: ["**"], users: [admin], actions: ["*"]}
signatures:
  policy: policy.json
  enforce: ["team-a/**"]
audit: {path: audit.jsonl}
log: {level: info}
`, e.host, filepath.Join(dir, "storage"), e.ldap.URL, e.ldap.BindDN, ldaptest.PeopleDN, ldaptest.GroupsDN)
	mustWrite(t, e.config, []byte(cfg))
	e.start()
	return e
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs `sigil registry serve` and waits for /healthz.
func (e *regEnv) start() {
	t := e.t
	logf, err := os.OpenFile(e.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	e.cmd = exec.Command(sigilBinary, "registry", "serve", "--config", e.config)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	e.done = make(chan error, 1)
	go func(cmd *exec.Cmd) { e.done <- cmd.Wait() }(e.cmd)
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			out, _ := os.ReadFile(e.log)
			t.Logf("registry log:\n%s", tailString(string(out), 6000))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(e.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-e.done:
			out, _ := os.ReadFile(e.log)
			t.Fatalf("sigil registry serve exited: %v\n%s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("sigil registry serve did not become healthy in 15s")
}

// stop sends SIGTERM to the registry (started by this test) and waits.
func (e *regEnv) stop() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
	e.cmd = nil
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// token asks /auth/token for scopes with basic credentials, as docker does.
func (e *regEnv) token(user, pass string, scopes ...string) (int, string, map[string]any) {
	e.t.Helper()
	u := e.url + "/auth/token?service=sigil-registry"
	for _, s := range scopes {
		u += "&scope=" + s
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	tok, _ := body["token"].(string)
	return resp.StatusCode, tok, body
}

// tokenActions decodes a JWT's access claim: "repository:NAME" -> actions.
func tokenActions(t *testing.T, tok string) map[string][]string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Access []struct {
			Type, Name string
			Actions    []string
		}
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, a := range c.Access {
		out[a.Type+":"+a.Name] = a.Actions
	}
	return out
}

// events reads the audit log.
func (e *regEnv) events() []audit.Event {
	e.t.Helper()
	data, err := os.ReadFile(e.audit)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []audit.Event
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var ev audit.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			e.t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, ev)
	}
	return out
}

// wantAudit fails unless some audit event matches the set fields of want
// (Reason by prefix).
func (e *regEnv) wantAudit(want audit.Event) {
	e.t.Helper()
	// The registry writes the line after answering; give it a moment.
	deadline := time.Now().Add(2 * time.Second)
	for {
		for _, got := range e.events() {
			if (want.User == "" || got.User == want.User) &&
				(want.Action == "" || got.Action == want.Action) &&
				(want.Repository == "" || got.Repository == want.Repository) &&
				(want.Outcome == "" || got.Outcome == want.Outcome) &&
				(want.Reason == "" || strings.HasPrefix(got.Reason, want.Reason)) &&
				(!want.Robot || got.Robot) {
				if got.Client != "127.0.0.1" || got.Time.IsZero() {
					e.t.Errorf("audit event %+v lacks client or time", got)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(e.audit)
			e.t.Errorf("no audit event like %+v in:\n%s", want, tailString(string(data), 4000))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noSecrets fails if a password or token reached the audit or process log.
func (e *regEnv) noSecrets(secrets ...string) {
	e.t.Helper()
	for _, f := range []string{e.audit, e.log} {
		data, _ := os.ReadFile(f)
		for _, s := range secrets {
			if s != "" && bytes.Contains(data, []byte(s)) {
				e.t.Errorf("%s contains the secret %q", filepath.Base(f), s)
			}
		}
	}
}

// tool runs a client program with env added to a clean environment (no
// proxy, HOME in the test's directory so no real credentials are used).
type toolResult struct {
	stdout, stderr string
	err            error
}

func (r toolResult) String() string {
	return fmt.Sprintf("err %v\nstdout: %s\nstderr: %s", r.err, r.stdout, r.stderr)
}

func (e *regEnv) tool(env []string, name string, args ...string) toolResult {
	e.t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if p := filepath.Join(os.Getenv("HOME"), "go", "bin", name); fileExists(p) {
			bin = p
		} else if p := "/root/go/bin/" + name; fileExists(p) {
			bin = p
		} else {
			e.t.Skipf("%s is not installed (make deps)", name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	home := filepath.Join(e.dir, "home")
	_ = os.MkdirAll(home, 0o700)
	cmd.Env = append(credentialEnviron(home,
		// cosign reaches for the public TUF CDN even with --key; a dead
		// proxy keeps every client on loopback.
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1,localhost",
		"TUF_ROOT="+filepath.Join(e.dir, "tuf"), "COSIGN_PASSWORD="+keyPassword, "SIGIL_PASSWORD="+keyPassword,
	), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	return toolResult{stdout.String(), stderr.String(), err}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// mustTool is tool that fails the test on a non-zero exit.
func (e *regEnv) mustTool(env []string, name string, args ...string) toolResult {
	e.t.Helper()
	r := e.tool(env, name, args...)
	if r.err != nil {
		e.t.Fatalf("%s %s: %s", name, strings.Join(args, " "), r)
	}
	return r
}

// ociLayout writes a small runnable image (busybox) as an OCI layout and
// returns skopeo's reference to it.
func (e *regEnv) ociLayout() string {
	e.t.Helper()
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		e.t.Fatal(err)
	}
	dir := filepath.Join(e.dir, "layout")
	if fileExists(dir) {
		return "oci:" + dir + ":busybox"
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "busybox"})); err != nil {
		e.t.Fatal(err)
	}
	return "oci:" + dir + ":busybox"
}

// dockerConfig is a crane/cosign credential directory logged in as user
// ("" for none).
func (e *regEnv) dockerConfig(user string) []string {
	e.t.Helper()
	dir := filepath.Join(e.dir, "docker-"+strings.NewReplacer("$", "_").Replace(user))
	_ = os.MkdirAll(dir, 0o700)
	env := []string{"DOCKER_CONFIG=" + dir}
	if user != "" {
		e.mustTool(env, "crane", "auth", "login", e.host, "-u", user, "-p", ldaptest.Password(user))
	}
	return env
}

// skopeoPolicy is the client-side policy skopeo and podman need; the
// registry's enforcement is what is tested.
func (e *regEnv) clientPolicy() string {
	p := filepath.Join(e.dir, "client-policy.json")
	if !fileExists(p) {
		mustWrite(e.t, p, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
	}
	return p
}

// pushImage copies the test image to repo:tag as user with skopeo.
func (e *regEnv) pushImage(user, ref string) string {
	e.t.Helper()
	r := e.mustTool(nil, "skopeo", "--policy", e.clientPolicy(), "copy", "--dest-tls-verify=false",
		"--dest-creds", user+":"+ldaptest.Password(user), "--digestfile", filepath.Join(e.dir, "digest"),
		e.ociLayout(), "docker://"+e.host+"/"+ref)
	_ = r
	d, err := os.ReadFile(filepath.Join(e.dir, "digest"))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(d))
}

// cosignSign signs repo@digest with the test key using the cosign CLI,
// logged in as user.
func (e *regEnv) cosignSign(user, repo, digest string) {
	e.t.Helper()
	env := e.dockerConfig(user)
	e.mustTool(env, "cosign", "sign", "--yes", "--key", e.key, "--tlog-upload=false", "--allow-http-registry",
		e.host+"/"+repo+"@"+digest)
}

func TestRegistryLDAPLogins(t *testing.T) {
	e := newRegEnv(t)
	const scope = "repository:team-a/app:pull,push"

	// Group members get what the rules give them, nested groups included.
	for _, user := range []string{ldaptest.Alice, ldaptest.Carol} {
		code, tok, body := e.token(user, ldaptest.Password(user), scope)
		if code != http.StatusOK || tok == "" {
			t.Fatalf("%s: status %d %v", user, code, body)
		}
		if got := tokenActions(t, tok)["repository:team-a/app"]; !slices.Contains(got, "push") || !slices.Contains(got, "pull") {
			t.Errorf("%s's token grants %v on team-a/app, want pull and push", user, got)
		}
		e.wantAudit(audit.Event{User: user, Action: audit.Login, Outcome: audit.Success})
	}

	// A user without rights gets a token without the actions, and the
	// registry refuses the request.
	code, tok, _ := e.token(ldaptest.Dave, ldaptest.Password(ldaptest.Dave), scope)
	if code != http.StatusOK {
		t.Fatalf("dave: status %d", code)
	}
	if got := tokenActions(t, tok)["repository:team-a/app"]; len(got) != 0 {
		t.Errorf("dave's token grants %v on team-a/app, want nothing", got)
	}
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v2/team-a/app/blobs/uploads/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("dave's upload: %d %q, want 401 insufficient_scope", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	e.wantAudit(audit.Event{User: ldaptest.Dave, Action: audit.Denied, Repository: "team-a/app", Reason: "UNAUTHORIZED"})

	// Wrong passwords and LDAP filter injection: 401, no token.
	cases := []struct{ user, pass string }{
		{ldaptest.Alice, "not-her-password"},
		{ldaptest.Alice, ""},
		{"*", ldaptest.Password(ldaptest.Alice)},
		{"*", ""},
		{")(uid=*", ldaptest.Password(ldaptest.Alice)},
		{"admin)(|(uid=*", ldaptest.Password(ldaptest.Admin)},
		{"alice)(uid=*))(|(uid=*", ldaptest.Password(ldaptest.Alice)},
		{"al*", ldaptest.Password(ldaptest.Alice)},
		{ldaptest.UserDN(ldaptest.Admin), ldaptest.Password(ldaptest.Admin)},
	}
	for _, c := range cases {
		code, tok, body := e.token(c.user, c.pass, scope)
		if code != http.StatusUnauthorized || tok != "" {
			t.Errorf("login %q/%q: status %d token %v, want 401 and no token (%v)", c.user, c.pass, code, tok != "", body)
		}
	}
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Login, Outcome: audit.Failure, Reason: "INVALID_CREDENTIALS"})
	e.wantAudit(audit.Event{User: "admin)(|(uid=*", Action: audit.Login, Outcome: audit.Failure})
	e.noSecrets("not-her-password", ldaptest.Password(ldaptest.Alice), ldaptest.ReaderPassword, tok)
}

func TestRegistrySlapdDown(t *testing.T) {
	e := newRegEnv(t)
	const scope = "repository:team-a/app:pull"
	if code, _, _ := e.token(ldaptest.Alice, ldaptest.Password(ldaptest.Alice), scope); code != http.StatusOK {
		t.Fatalf("login before the outage: %d", code)
	}
	e.ldap.Stop()
	for _, user := range []string{ldaptest.Alice, ldaptest.Admin, "*"} {
		code, tok, body := e.token(user, ldaptest.Password(user), scope)
		if code != http.StatusServiceUnavailable || tok != "" {
			t.Errorf("login as %s with slapd down: %d token %v, want 503 and no token", user, code, tok != "")
		}
		if msg := fmt.Sprint(body); !strings.Contains(strings.ToLower(msg), "unavailable") {
			t.Errorf("login with slapd down says %s, want it to say the backend is unavailable", msg)
		}
	}
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Login, Outcome: audit.Failure, Reason: "UNAVAILABLE"})
	// A client sees a clear failure.
	env := []string{"DOCKER_CONFIG=" + filepath.Join(e.dir, "down")}
	_ = os.MkdirAll(filepath.Join(e.dir, "down"), 0o700)
	e.mustTool(env, "crane", "auth", "login", e.host, "-u", ldaptest.Alice, "-p", ldaptest.Password(ldaptest.Alice))
	r := e.tool(env, "crane", "ls", "--insecure", e.host+"/team-a/app")
	if r.err == nil || !strings.Contains(r.stderr, "UNAVAILABLE: LDAP server") {
		t.Errorf("crane with slapd down: %s, want it to say the directory is unavailable", r)
	}
	e.ldap.Restart(t)
	if code, _, _ := e.token(ldaptest.Alice, ldaptest.Password(ldaptest.Alice), scope); code != http.StatusOK {
		t.Errorf("login after slapd is back: %d, want 200", code)
	}
}

func TestRegistryCrane(t *testing.T) {
	e := newRegEnv(t)
	alice := e.dockerConfig(ldaptest.Alice)
	layer := filepath.Join(e.dir, "layer.tar")
	mustWrite(t, layer, fileTar(t, "hello.txt", "hello from crane\n"))

	// Push in the user's namespace.
	r := e.mustTool(alice, "crane", "append", "--insecure", "-f", layer, "-t", e.host+"/team-a/crane:1")
	digest := lastField(r.stdout)
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Push, Repository: "team-a/crane", Outcome: audit.Success})

	// Unsigned in an enforced repository: the pull is refused, with the reason.
	r = e.tool(alice, "crane", "pull", "--insecure", e.host+"/team-a/crane:1", filepath.Join(e.dir, "out.tar"))
	if r.err == nil || !strings.Contains(r.stderr, "DENIED: SIGNATURE_MISSING: ") {
		t.Errorf("pull of an unsigned image: %s, want DENIED: SIGNATURE_MISSING", r)
	}
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Denied, Repository: "team-a/crane", Reason: "SIGNATURE_MISSING"})

	// Signed with the trusted key: it can.
	e.cosignSign(ldaptest.Alice, "team-a/crane", digest)
	e.mustTool(alice, "crane", "pull", "--insecure", e.host+"/team-a/crane:1", filepath.Join(e.dir, "out.tar"))
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Pull, Repository: "team-a/crane", Outcome: audit.Success})

	// Outside the namespace: refused.
	r = e.tool(alice, "crane", "append", "--insecure", "-f", layer, "-t", e.host+"/team-b/crane:1")
	if r.err == nil {
		t.Errorf("alice pushed to team-b: %s", r)
	}
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Denied, Repository: "team-b/crane"})
	dave := e.dockerConfig(ldaptest.Dave)
	if r := e.tool(dave, "crane", "append", "--insecure", "-f", layer, "-t", e.host+"/team-a/crane:2"); r.err == nil {
		t.Errorf("dave (no group) pushed to team-a: %s", r)
	}

	// Anonymous pull only where allowed.
	admin := e.dockerConfig(ldaptest.Admin)
	e.mustTool(admin, "crane", "copy", "--insecure", e.host+"/team-a/crane:1", e.host+"/public/crane:1")
	anon := e.dockerConfig("")
	e.mustTool(anon, "crane", "pull", "--insecure", e.host+"/public/crane:1", filepath.Join(e.dir, "anon.tar"))
	e.wantAudit(audit.Event{User: "anonymous", Action: audit.Pull, Repository: "public/crane", Outcome: audit.Success})
	if r := e.tool(anon, "crane", "manifest", "--insecure", e.host+"/team-a/crane:1"); r.err == nil {
		t.Errorf("anonymous pull from team-a: %s", r)
	}
	e.wantAudit(audit.Event{User: "anonymous", Action: audit.Denied, Repository: "team-a/crane"})
	if r := e.tool(anon, "crane", "append", "--insecure", "-f", layer, "-t", e.host+"/public/anon:1"); r.err == nil {
		t.Errorf("anonymous push to public: %s", r)
	}

	// The catalog shows each caller what it may pull.
	if got := strings.Fields(e.mustTool(anon, "crane", "catalog", "--insecure", e.host).stdout); !slices.Equal(got, []string{"public/crane"}) {
		t.Errorf("anonymous catalog = %v, want [public/crane]", got)
	}
	if got := strings.Fields(e.mustTool(alice, "crane", "catalog", "--insecure", e.host).stdout); !slices.Equal(got, []string{"public/crane", "team-a/crane"}) {
		t.Errorf("alice's catalog = %v", got)
	}
	e.noSecrets(ldaptest.Password(ldaptest.Alice), ldaptest.ReaderPassword)
}

// fileTar is a layer tarball holding one file.
func fileTar(t *testing.T, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(content))
	tw.Close()
	return buf.Bytes()
}

func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	last := f[len(f)-1]
	if i := strings.LastIndex(last, "@"); i >= 0 {
		return last[i+1:]
	}
	return last
}

func TestRegistrySkopeo(t *testing.T) {
	e := newRegEnv(t)
	policy := e.clientPolicy()
	creds := ldaptest.Alice + ":" + ldaptest.Password(ldaptest.Alice)
	digest := e.pushImage(ldaptest.Alice, "team-a/skopeo:1")
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Push, Repository: "team-a/skopeo", Outcome: audit.Success})

	out := filepath.Join(e.dir, "pulled")
	r := e.tool(nil, "skopeo", "--policy", policy, "copy", "--src-tls-verify=false", "--src-creds", creds,
		"docker://"+e.host+"/team-a/skopeo:1", "oci:"+out+":x")
	if r.err == nil || !strings.Contains(r.stderr, "SIGNATURE_MISSING") {
		t.Errorf("skopeo pull of an unsigned image: %s, want SIGNATURE_MISSING", r)
	}
	e.cosignSign(ldaptest.Alice, "team-a/skopeo", digest)
	e.mustTool(nil, "skopeo", "--policy", policy, "copy", "--src-tls-verify=false", "--src-creds", creds,
		"docker://"+e.host+"/team-a/skopeo:1", "oci:"+out+":x")

	// Wrong password: refused at login.
	r = e.tool(nil, "skopeo", "--policy", policy, "copy", "--dest-tls-verify=false", "--dest-creds", ldaptest.Alice+":wrong-password",
		e.ociLayout(), "docker://"+e.host+"/team-a/skopeo:2")
	if r.err == nil || !strings.Contains(r.stderr, "401") && !strings.Contains(strings.ToLower(r.stderr), "unauthorized") {
		t.Errorf("skopeo with a wrong password: %s, want 401", r)
	}
	// Outside the namespace, and a user without rights.
	r = e.tool(nil, "skopeo", "--policy", policy, "copy", "--dest-tls-verify=false", "--dest-creds", creds,
		e.ociLayout(), "docker://"+e.host+"/team-b/skopeo:1")
	if r.err == nil {
		t.Errorf("skopeo push to team-b as alice succeeded")
	}
	r = e.tool(nil, "skopeo", "--policy", policy, "copy", "--src-tls-verify=false", "--src-creds", ldaptest.Bob+":"+ldaptest.Password(ldaptest.Bob),
		"docker://"+e.host+"/team-a/skopeo:1", "oci:"+out+":y")
	if r.err == nil {
		t.Errorf("skopeo pull from team-a as bob succeeded")
	}
	e.wantAudit(audit.Event{User: ldaptest.Bob, Action: audit.Denied, Repository: "team-a/skopeo"})
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Denied, Repository: "team-a/skopeo", Reason: "SIGNATURE_MISSING"})
}

func TestRegistryPodman(t *testing.T) {
	e := newRegEnv(t)
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman is not installed (make deps)")
	}
	conf := filepath.Join(e.dir, "containers.conf")
	data, err := os.ReadFile("/work/shared/peers/podman-containers.conf")
	if err != nil {
		data = []byte("[containers]\ndefault_ulimits = [\"nofile=20000:20000\"]\n[engine]\nruntime = \"runc\"\n")
	}
	mustWrite(t, conf, data)
	authFile := filepath.Join(e.dir, "podman-auth.json")
	env := []string{"CONTAINERS_CONF=" + conf, "REGISTRY_AUTH_FILE=" + authFile}
	podman := func(args ...string) toolResult {
		full := append([]string{"--root", filepath.Join(e.dir, "podman-root"), "--runroot", filepath.Join(e.dir, "podman-run"),
			"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}, args...)
		return e.tool(env, "podman", full...)
	}
	t.Cleanup(func() { podman("system", "reset", "--force") })

	// podman login checks the password.
	if r := podman("login", "--tls-verify=false", "-u", ldaptest.Alice, "-p", "wrong-password", e.host); r.err == nil {
		t.Errorf("podman login with a wrong password succeeded")
	}
	if r := podman("login", "--tls-verify=false", "-u", ldaptest.Alice, "-p", ldaptest.Password(ldaptest.Alice), e.host); r.err != nil {
		t.Fatalf("podman login: %s", r)
	}
	signed := e.pushImage(ldaptest.Alice, "team-a/podman:signed")
	e.cosignSign(ldaptest.Alice, "team-a/podman", signed)
	unsigned := e.host + "/team-a/podman:unsigned"
	e.mustTool(e.dockerConfig(ldaptest.Alice), "crane", "append", "--insecure", "-f", writeLayer(t, e.dir), "-t", unsigned)

	if r := podman("pull", "--tls-verify=false", "--signature-policy", e.clientPolicy(), e.host+"/team-a/podman:signed"); r.err != nil {
		t.Fatalf("podman pull of a signed image: %s", r)
	}
	r := podman("pull", "--tls-verify=false", "--signature-policy", e.clientPolicy(), unsigned)
	if r.err == nil || !strings.Contains(r.stderr, "SIGNATURE_MISSING") {
		t.Errorf("podman pull of an unsigned image: %s, want SIGNATURE_MISSING", r)
	}
	// Push what was pulled, in the namespace and outside it.
	podman("tag", e.host+"/team-a/podman:signed", e.host+"/team-a/podman:pushed", e.host+"/team-b/podman:pushed")
	if r := podman("push", "--tls-verify=false", "--signature-policy", e.clientPolicy(), e.host+"/team-a/podman:pushed"); r.err != nil {
		t.Errorf("podman push: %s", r)
	}
	if r := podman("push", "--tls-verify=false", "--signature-policy", e.clientPolicy(), e.host+"/team-b/podman:pushed"); r.err == nil {
		t.Errorf("podman push to team-b as alice succeeded")
	}
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Push, Repository: "team-a/podman", Outcome: audit.Success})
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Denied, Repository: "team-b/podman"})
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Denied, Repository: "team-a/podman", Reason: "SIGNATURE_MISSING"})
}

func writeLayer(t *testing.T, dir string) string {
	p := filepath.Join(dir, "unsigned-layer.tar")
	if !fileExists(p) {
		mustWrite(t, p, fileTar(t, "unsigned.txt", "nobody signed this\n"))
	}
	return p
}

// TestRegistryCosignAndSigilSign: cosign signs and verifies against the
// registry; sigil sign --referrer attaches a sigstore bundle through the
// referrers API, which enforcement accepts too.
func TestRegistryCosignAndSigilSign(t *testing.T) {
	e := newRegEnv(t)
	env := e.dockerConfig(ldaptest.Alice)
	e.mustTool(env, "cosign", "login", e.host, "-u", ldaptest.Alice, "-p", ldaptest.Password(ldaptest.Alice))
	d1 := e.pushImage(ldaptest.Alice, "team-a/cosign:1")
	e.cosignSign(ldaptest.Alice, "team-a/cosign", d1)
	r := e.mustTool(env, "cosign", "verify", "--key", e.pub, "--insecure-ignore-tlog", "--allow-http-registry", e.host+"/team-a/cosign@"+d1)
	if !strings.Contains(r.stdout, d1) {
		t.Errorf("cosign verify output lacks the digest: %s", r)
	}

	// sigil sign --referrer, then a pull by crane.
	d2 := e.pushImage(ldaptest.Alice, "team-a/bundle:1")
	sigilEnv := append([]string{"REGISTRY_AUTH_FILE=" + filepath.Join(e.dir, "docker-alice", "config.json")}, env...)
	e.mustTool(sigilEnv, sigilBinary, "--insecure-registry", e.host, "sign", "--key", e.key, "--referrer", e.host+"/team-a/bundle@"+d2)
	e.mustTool(env, "crane", "manifest", "--insecure", e.host+"/team-a/bundle:1")
	resp, err := http.Get(e.url + "/v2/team-a/bundle/referrers/" + d2)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous referrers of team-a: %d, want 401", resp.StatusCode)
	}
	// Another key's signature does not count.
	other, _, err := signing.GenerateKeyPair([]byte(keyPassword))
	if err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(e.dir, "other.key")
	mustWrite(t, otherKey, other)
	mustWrite(t, filepath.Join(e.dir, "other-layer.tar"), fileTar(t, "other.txt", "signed by a stranger\n"))
	r = e.mustTool(env, "crane", "append", "--insecure", "-f", filepath.Join(e.dir, "other-layer.tar"), "-t", e.host+"/team-a/stranger:1")
	d3 := lastField(r.stdout)
	e.mustTool(env, "cosign", "sign", "--yes", "--key", otherKey, "--tlog-upload=false", "--allow-http-registry", e.host+"/team-a/stranger@"+d3)
	r = e.tool(env, "crane", "manifest", "--insecure", e.host+"/team-a/stranger:1")
	if r.err == nil || !strings.Contains(r.stderr, "KEY_UNTRUSTED") && !strings.Contains(r.stderr, "SIGNATURE_INVALID") {
		t.Errorf("pull of an image signed by another key: %s, want KEY_UNTRUSTED", r)
	}
}

func TestRegistryRobots(t *testing.T) {
	e := newRegEnv(t)
	sigil := func(args ...string) toolResult {
		return e.tool(nil, sigilBinary, append([]string{"registry", "robot"}, append(args, "--config", e.config)...)...)
	}
	r := sigil("create", "ci", "--repository", "team-a/**", "--action", "pull,push")
	if r.err != nil {
		t.Fatalf("robot create: %s", r)
	}
	secret := strings.TrimSpace(r.stdout)
	if list := sigil("list"); !strings.Contains(list.stdout, "robot$ci") || strings.Contains(list.stdout, secret) {
		t.Errorf("robot list: %s", list)
	}
	env := []string{"DOCKER_CONFIG=" + filepath.Join(e.dir, "robot")}
	_ = os.MkdirAll(filepath.Join(e.dir, "robot"), 0o700)
	e.mustTool(env, "crane", "auth", "login", e.host, "-u", "robot$ci", "-p", secret)
	layer := writeLayer(t, e.dir)
	e.mustTool(env, "crane", "append", "--insecure", "-f", layer, "-t", e.host+"/team-a/ci:1")
	e.wantAudit(audit.Event{User: "robot$ci", Robot: true, Action: audit.Push, Repository: "team-a/ci", Outcome: audit.Success})
	if r := e.tool(env, "crane", "append", "--insecure", "-f", layer, "-t", e.host+"/team-b/ci:1"); r.err == nil {
		t.Errorf("robot pushed outside its scope")
	}
	if r := sigil("rm", "ci"); r.err != nil {
		t.Fatalf("robot rm: %s", r)
	}
	if code, tok, _ := e.token("robot$ci", secret, "repository:team-a/ci:pull"); code != http.StatusUnauthorized || tok != "" {
		t.Errorf("removed robot logs in: %d", code)
	}
	e.wantAudit(audit.Event{User: "robot$ci", Action: audit.Login, Outcome: audit.Failure})
	e.noSecrets(secret)
}

func TestRegistryGC(t *testing.T) {
	e := newRegEnv(t)
	env := e.dockerConfig(ldaptest.Admin)
	e.mustTool(env, "crane", "append", "--insecure", "-f", writeLayer(t, e.dir), "-t", e.host+"/misc/gc:1")
	mustWrite(t, filepath.Join(e.dir, "l2.tar"), fileTar(t, "second.txt", "replaced\n"))
	e.mustTool(env, "crane", "append", "--insecure", "-f", filepath.Join(e.dir, "l2.tar"), "-t", e.host+"/misc/gc:1")
	gc := func(args ...string) toolResult {
		return e.mustTool(nil, sigilBinary, append([]string{"registry", "gc", "--config", e.config}, args...)...)
	}
	r := gc("--dry-run", "--delete-untagged")
	if !strings.Contains(r.stdout, "would remove manifest misc/gc@") {
		t.Errorf("gc --dry-run: %s", r)
	}
	e.stop()
	r = gc("--delete-untagged")
	if !strings.Contains(r.stdout, "removed manifest misc/gc@") || !strings.Contains(r.stdout, "removed blob") {
		t.Errorf("gc: %s", r)
	}
	e.start()
	e.mustTool(env, "crane", "manifest", "--insecure", e.host+"/misc/gc:1")
}

func TestRegistryConfigErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	dir := t.TempDir()
	tests := []struct{ yaml, want string }{
		{"http: {addr: 127.0.0.1:5000}\nauth:\n  ldap: {url: \"htp://x\", userSearch: {baseDN: a, filter: \"(uid={username})\"}}\naccess: [{repositories: [\"**\"], users: [a], actions: [pull]}]\n",
			`registry.yaml: auth.ldap.url: "htp://x": unsupported scheme; use ldap:// or ldaps://`},
		{"http: {addr: 0.0.0.0:5000}\naccess: [{repositories: [\"**\"], users: [a], actions: [pull]}]\n",
			`registry.yaml: http.addr: "0.0.0.0:5000": plain HTTP is only allowed on a loopback address`},
		{"http: {addr: 127.0.0.1:5000, tls: {certificate: /nonexistent.crt, key: /nonexistent.key}}\naccess: [{repositories: [\"**\"], users: [a], actions: [pull]}]\n",
			`registry.yaml: http.tls: open /nonexistent.crt: no such file or directory`},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, "registry.yaml")
		mustWrite(t, p, []byte(tt.yaml))
		mustWrite(t, filepath.Join(dir, "htpasswd"), nil)
		cmd := exec.Command(sigilBinary, "registry", "serve", "--config", p)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 125 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("serve with\n%s\nexit %v, stderr %q; want 125 and %q", tt.yaml, err, stderr.String(), tt.want)
		}
	}
}

// TestRegistryDockerLogin runs the real docker CLI's login. There is no
// Docker engine here; docker 28 then logs in from the client itself, with
// the OAuth2 password grant, and stores the identity (refresh) token it
// gets, as it does against Docker Hub.
func TestRegistryDockerLogin(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("the docker CLI is not installed")
	}
	e := newRegEnv(t)
	dir := filepath.Join(e.dir, "docker-cli")
	env := []string{"DOCKER_CONFIG=" + dir}
	login := func(password string) toolResult {
		cmd := exec.Command("docker", "login", e.host, "-u", ldaptest.Alice, "--password-stdin")
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader(password + "\n")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return toolResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
	}
	if r := login("wrong-password"); r.err == nil || strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("docker login with a wrong password: %s", r)
	}
	if fileExists(filepath.Join(dir, "config.json")) {
		b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
		if strings.Contains(string(b), e.host) {
			t.Errorf("a refused docker login was saved: %s", b)
		}
	}
	if r := login(ldaptest.Password(ldaptest.Alice)); r.err != nil || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("docker login: %s", r)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil || !strings.Contains(string(b), `"identitytoken"`) {
		t.Errorf("docker's config after login = %s, %v; want an identity token for %s", b, err, e.host)
	}
	e.wantAudit(audit.Event{User: ldaptest.Alice, Action: audit.Login, Outcome: audit.Success})
	e.noSecrets(ldaptest.Password(ldaptest.Alice))
}
