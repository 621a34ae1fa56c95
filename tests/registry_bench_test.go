package tests

// The registry benchmark: sigil registry serve (token auth, enforcement
// with a sigstoreSigned policy, audit log) side by side with the upstream
// distribution registry (no auth) on the same disk, with
// go-containerregistry (crane's library) as the client. It only runs with
// SIGIL_REGISTRY_BENCH=1; results go to the test log and, as JSON, to
// $SIGIL_REGISTRY_BENCH_OUT when set. Documentation/benchmarks.md has the
// figures.

import (
	"context"
	"crypto/rand"
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
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/sigil-project/sigil/auth/ldaptest"
	rremote "github.com/sigil-project/sigil/runtime/remote"
	"github.com/sigil-project/sigil/signing"
)

const (
	benchUser     = "bench"
	benchPassword = "bench-password"
	benchClients  = 16
	benchBlobs    = 1000
	benchBlobSize = 4 << 10
	benchLayers   = 4
	benchLayer    = 50 << 20 // 4 x 50 MiB = 200 MiB
)

// benchServer is one registry under test.
type benchServer struct {
	name string
	host string
	auth authn.Authenticator
	stop func()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTP(t *testing.T, url string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case err := <-done:
			t.Fatalf("%s: server exited: %v", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not answer in 20s", url)
}

// startProcess runs a server (started by this test, stopped by PID).
func startProcess(t *testing.T, logPath string, env []string, bin string, args ...string) (func(), <-chan error) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	}, done
}

func startSigilBench(t *testing.T, dir, pubKey string) *benchServer {
	t.Helper()
	host := freeAddr(t)
	htpasswd := filepath.Join(dir, "htpasswd")
	if !fileExists(htpasswd) {
		h, err := bcryptHash(benchPassword)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, htpasswd, []byte(benchUser+":"+h+"\n"))
	}
	policy := fmt.Sprintf(`{"default":[{"type":"reject"}],"transports":{"docker":{%q:[
		{"type":"sigstoreSigned","keyData":%q,"signedIdentity":{"type":"matchRepository"}}]}}}`,
		host+"/bench", base64.StdEncoding.EncodeToString([]byte(pubKey)))
	mustWrite(t, filepath.Join(dir, "policy.json"), []byte(policy))
	cfg := fmt.Sprintf(`http: {addr: %s}
storage: {filesystem: {rootdirectory: %s}}
auth:
  token: {issuer: sigil, expiration: 5m}
  htpasswd: {path: htpasswd}
access:
  - {repositories: ["bench/**"], users: [%s], actions: ["*"]}
signatures: {policy: policy.json, enforce: ["bench/**"]}
audit: {path: audit.jsonl}
log: {level: warn}
`, host, filepath.Join(dir, "storage"), benchUser)
	mustWrite(t, filepath.Join(dir, "registry.yaml"), []byte(cfg))
	stop, done := startProcess(t, filepath.Join(dir, "sigil.log"), nil, sigilBinary, "registry", "serve", "--config", filepath.Join(dir, "registry.yaml"))
	waitHTTP(t, "http://"+host+"/healthz", done)
	return &benchServer{name: "sigil", host: host, auth: &authn.Basic{Username: benchUser, Password: benchPassword}, stop: stop}
}

func startUpstreamBench(t *testing.T, dir, bin string) *benchServer {
	t.Helper()
	host := freeAddr(t)
	cfg := fmt.Sprintf(`version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http: {addr: %s}
`, filepath.Join(dir, "storage"), host)
	mustWrite(t, filepath.Join(dir, "config.yml"), []byte(cfg))
	stop, done := startProcess(t, filepath.Join(dir, "registry.log"), []string{"OTEL_TRACES_EXPORTER=none"}, bin, "serve", filepath.Join(dir, "config.yml"))
	waitHTTP(t, "http://"+host+"/v2/", done)
	return &benchServer{name: "upstream", host: host, auth: authn.Anonymous, stop: stop}
}

// bigImage is benchLayers layers of random (incompressible) bytes, built
// once: the client's compression would otherwise be what is measured.
func bigImage(t *testing.T) v1.Image {
	t.Helper()
	img := empty.Image
	for range benchLayers {
		data := make([]byte, benchLayer)
		_, _ = rand.Read(data)
		var err error
		img, err = mutate.AppendLayers(img, static.NewLayer(data, types.OCILayer))
		if err != nil {
			t.Fatal(err)
		}
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON)
}

type benchResult struct {
	Registry string  `json:"registry"`
	Case     string  `json:"case"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"per_second,omitempty"`
}

// TestRegistryBenchmark measures push and pull of a 200 MiB image and of
// 1,000 blobs of 4 KiB by 16 clients, against both registries, several
// rounds, each round on fresh storage.
func TestRegistryBenchmark(t *testing.T) {
	if os.Getenv("SIGIL_REGISTRY_BENCH") != "1" {
		t.Skip("benchmark: set SIGIL_REGISTRY_BENCH=1 (and have the upstream registry binary: go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2)")
	}
	upstream, err := exec.LookPath("registry")
	if err != nil {
		upstream = filepath.Join(os.Getenv("HOME"), "go", "bin", "registry")
		if !fileExists(upstream) {
			t.Skip("upstream registry binary not found")
		}
	}
	rounds := 3
	if s := os.Getenv("SIGIL_REGISTRY_BENCH_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	priv, pub, err := signing.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signing.LoadKeySigner(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	img := bigImage(t)
	blobs := make([][]byte, benchBlobs)
	for i := range blobs {
		blobs[i] = make([]byte, benchBlobSize)
		_, _ = rand.Read(blobs[i])
	}

	var results []benchResult
	for round := range rounds {
		servers := []func(dir string) *benchServer{
			func(dir string) *benchServer { return startSigilBench(t, dir, string(pub)) },
			func(dir string) *benchServer { return startUpstreamBench(t, dir, upstream) },
		}
		if round%2 == 1 {
			slices.Reverse(servers)
		}
		for _, start := range servers {
			dir := t.TempDir()
			s := start(dir)
			results = append(results, benchServerRun(t, s, img, blobs, signer)...)
			s.stop()
			os.RemoveAll(dir)
		}
	}
	report(t, results)
	if out := os.Getenv("SIGIL_REGISTRY_BENCH_OUT"); out != "" {
		data, _ := json.MarshalIndent(results, "", "  ")
		mustWrite(t, out, data)
	}
}

func benchServerRun(t *testing.T, s *benchServer, img v1.Image, blobs [][]byte, signer *signing.KeySigner) []benchResult {
	t.Helper()
	ctx := context.Background()
	var out []benchResult
	ref, err := name.ParseReference(s.host+"/bench/big:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := name.NewRegistry(s.host, name.Insecure)
	// The login (ping, token request: one bcrypt check of the htpasswd
	// password at sigil) is timed apart from the data path; clients
	// make one per push or pull.
	start := time.Now()
	rt, err := transport.NewWithContext(ctx, reg, s.auth, http.DefaultTransport, []string{"repository:bench/big:pull,push"})
	if err != nil {
		t.Fatalf("%s: login: %v", s.name, err)
	}
	out = append(out, benchResult{Registry: s.name, Case: "login (ping + token request)", Seconds: time.Since(start).Seconds()})
	// The next push's login, within a few minutes: sigil has remembered
	// the verified password and skips bcrypt.
	start = time.Now()
	if _, err := transport.NewWithContext(ctx, reg, s.auth, http.DefaultTransport, []string{"repository:bench/big:pull,push"}); err != nil {
		t.Fatalf("%s: login again: %v", s.name, err)
	}
	out = append(out, benchResult{Registry: s.name, Case: "login again (same user, within 5 min)", Seconds: time.Since(start).Seconds()})
	start = time.Now()
	if err := remote.Write(ref, img, remote.WithTransport(rt), remote.WithJobs(4)); err != nil {
		t.Fatalf("%s: push: %v", s.name, err)
	}
	out = append(out, benchResult{Registry: s.name, Case: "push 200 MiB image", Seconds: time.Since(start).Seconds()})

	if s.name == "sigil" {
		// Enforcement is on: sign the image, as a publisher would, so
		// the pull below is judged and accepted.
		c := rremote.NewClient(rremote.WithKeychain(benchKeychain{s.auth}))
		repo, err := c.Repository(ctx, rremote.Endpoint{Registry: s.host, Repository: "bench/big", Insecure: true}, "pull", "push")
		if err != nil {
			t.Fatal(err)
		}
		desc, _, err := repo.Resolve(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := signing.Sign(ctx, repo, s.host+"/bench/big", desc, signer, signing.SignOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Pull with a token for pull only, as pull clients ask: the manifest
	// GET is judged by the trust policy.
	rt, err = transport.NewWithContext(ctx, reg, s.auth, http.DefaultTransport, []string{"repository:bench/big:pull"})
	if err != nil {
		t.Fatalf("%s: login: %v", s.name, err)
	}
	start = time.Now()
	pulled, err := remote.Image(ref, remote.WithTransport(rt))
	if err != nil {
		t.Fatalf("%s: pull: %v", s.name, err)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var pullErr atomic.Value
	for _, l := range layers {
		wg.Add(1)
		go func(l v1.Layer) {
			defer wg.Done()
			rc, err := l.Compressed()
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if err != nil {
				pullErr.Store(err)
			}
		}(l)
	}
	wg.Wait()
	if err, _ := pullErr.Load().(error); err != nil {
		t.Fatalf("%s: pull layer: %v", s.name, err)
	}
	out = append(out, benchResult{Registry: s.name, Case: "pull 200 MiB image", Seconds: time.Since(start).Seconds()})

	// Small blobs: each client does the token flow once, then HEAD, POST
	// and PUT per blob (what docker and ggcr do), then GET them all back.
	clients := make([]*http.Client, benchClients)
	for i := range clients {
		rt, err := transport.NewWithContext(ctx, reg, s.auth, http.DefaultTransport, []string{"repository:bench/blobs:pull,push"})
		if err != nil {
			t.Fatalf("%s: token flow: %v", s.name, err)
		}
		clients[i] = &http.Client{Transport: rt}
	}
	base := "http://" + s.host + "/v2/bench/blobs"
	push := func(c *http.Client, data []byte) error {
		d := digest.FromBytes(data)
		resp, err := c.Head(base + "/blobs/" + d.String())
		if err != nil {
			return err
		}
		resp.Body.Close()
		resp, err = c.Post(base+"/blobs/uploads/", "", nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			return fmt.Errorf("POST: %s", resp.Status)
		}
		q := loc.Query()
		q.Set("digest", d.String())
		loc.RawQuery = q.Encode()
		req, _ := http.NewRequest(http.MethodPut, loc.String(), strings.NewReader(string(data)))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err = c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("PUT: %s", resp.Status)
		}
		return nil
	}
	pull := func(c *http.Client, data []byte) error {
		resp, err := c.Get(base + "/blobs/" + digest.FromBytes(data).String())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK || n != int64(len(data)) {
			return fmt.Errorf("GET: %s, %d bytes", resp.Status, n)
		}
		return nil
	}
	for _, phase := range []struct {
		name string
		do   func(*http.Client, []byte) error
	}{{"push 1,000 x 4 KiB blobs, 16 clients", push}, {"pull 1,000 x 4 KiB blobs, 16 clients", pull}} {
		var next atomic.Int64
		var failed atomic.Value
		start := time.Now()
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func(c *http.Client) {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(len(blobs)) {
						return
					}
					if err := phase.do(c, blobs[i]); err != nil {
						failed.Store(err)
						return
					}
				}
			}(c)
		}
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			t.Fatalf("%s: %s: %v", s.name, phase.name, err)
		}
		sec := time.Since(start).Seconds()
		out = append(out, benchResult{Registry: s.name, Case: phase.name, Seconds: sec, PerSec: float64(len(blobs)) / sec})
	}
	return out
}

type benchKeychain struct{ a authn.Authenticator }

func (k benchKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

// report logs the median per registry and case, and sigil's speed
// relative to upstream (above 1: sigil is faster).
func report(t *testing.T, results []benchResult) {
	t.Helper()
	cases := []string{}
	med := map[string]map[string]float64{}
	for _, r := range results {
		if !slices.Contains(cases, r.Case) {
			cases = append(cases, r.Case)
		}
	}
	for _, c := range cases {
		med[c] = map[string]float64{}
		for _, reg := range []string{"sigil", "upstream"} {
			var xs []float64
			for _, r := range results {
				if r.Case == c && r.Registry == reg {
					xs = append(xs, r.Seconds)
				}
			}
			slices.Sort(xs)
			if len(xs) > 0 {
				med[c][reg] = xs[len(xs)/2]
			}
		}
		t.Logf("%-40s sigil %8.3fs  upstream %8.3fs  speed ratio sigil/upstream %.2f", c, med[c]["sigil"], med[c]["upstream"], med[c]["upstream"]/med[c]["sigil"])
	}
}

// TestRegistryTokenRate measures token requests per second for an LDAP
// user (16 clients, each its own connection), with latency percentiles.
func TestRegistryTokenRate(t *testing.T) {
	if os.Getenv("SIGIL_REGISTRY_BENCH") != "1" {
		t.Skip("benchmark: set SIGIL_REGISTRY_BENCH=1")
	}
	e := newRegEnv(t)
	dur := 10 * time.Second
	var mu sync.Mutex
	var lat []time.Duration
	var failures atomic.Int64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{}}
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, e.url+"/auth/token?service=sigil-registry&scope=repository:team-a/app:pull,push", nil)
				req.SetBasicAuth(ldaptest.Alice, ldaptest.Password(ldaptest.Alice))
				start := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failures.Add(1)
					continue
				}
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	if len(lat) == 0 {
		t.Fatalf("no token issued (%d failures)", failures.Load())
	}
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	t.Logf("token requests (LDAP user, 16 clients, %s): %.0f/s, p50 %s, p99 %s, failures %d",
		dur, float64(len(lat))/dur.Seconds(), p(0.50).Round(100*time.Microsecond), p(0.99).Round(100*time.Microsecond), failures.Load())
}

func bcryptHash(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}
