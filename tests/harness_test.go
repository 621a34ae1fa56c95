// Package tests holds Sigil's end-to-end tests: the real sigil binary,
// against registries started on loopback, running real containers. They
// need root (namespaces, cgroups, overlayfs) and skip, saying so, without it.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sigil-project/sigil/tests/testimage"
)

// sigilBinary is the binary under test: $SIGIL_BINARY (make test sets it)
// or one built by TestMain.
var sigilBinary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse() // testing.Short needs the flags parsed
	sigilBinary = os.Getenv("SIGIL_BINARY")
	if sigilBinary == "" && !testing.Short() {
		dir, err := os.MkdirTemp("", "sigil-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		sigilBinary = filepath.Join(dir, "sigil")
		if err := buildSigil(dir, sigilBinary); err != nil {
			fmt.Fprintln(os.Stderr, "build sigil:", err)
			return 1
		}
	}
	return m.Run()
}

// buildSigil builds sigil as `make build` does as far as the tests need:
// with the pause program embedded (pods that share a PID namespace need
// it), which it compiles static into dir (cc, as the Makefile does) and
// hands to the build through an overlay, leaving the source tree alone.
func buildSigil(dir, out string) error {
	pause := filepath.Join(dir, "pause.bin")
	build := exec.Command("cc", "-static", "-Os", "-s", "-o", pause, "../cmd/sigil/pause/pause.c")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("pause program: compile cmd/sigil/pause/pause.c (needs cc and a static libc: apt-get install build-essential libc6-dev): %w", err)
	}
	embedAt, err := filepath.Abs("../cmd/sigil/pause/pause.bin")
	if err != nil {
		return err
	}
	overlay := filepath.Join(dir, "overlay.json")
	b, err := json.Marshal(map[string]map[string]string{"Replace": {embedAt: pause}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(overlay, b, 0o644); err != nil {
		return err
	}
	build = exec.Command("go", "build", "-overlay", overlay, "-tags", "seccomp sigil_pause", "-o", out, "../cmd/sigil")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return build.Run()
}

// requireRoot skips a test that needs root, saying why.
func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs real containers (namespaces, cgroups, overlayfs)")
	}
}

// env is one isolated sigil installation: its own root, state, policy.
type env struct {
	t      *testing.T
	root   string
	state  string
	policy string
	reg    *testimage.Registry
	extra  []string // more global flags
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	e := &env{
		t:      t,
		root:   filepath.Join(dir, "root"),
		state:  filepath.Join(dir, "state"),
		policy: filepath.Join(dir, "policy.json"),
		reg:    testimage.NewRegistry(),
	}
	t.Cleanup(e.reg.Close)
	if err := os.WriteFile(e.policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stop whatever the test left running, then unmount, so TempDir
		// cleanup can remove everything.
		out, _ := e.sigil("ps", "-a", "-q")
		for _, id := range strings.Fields(out.stdout) {
			e.sigil("rm", "-f", id)
		}
	})
	return e
}

// push pushes an image to the env's registry and returns its reference.
func (e *env) push(repo string, what remote.Taggable) string {
	e.t.Helper()
	ref, _ := e.pushDigest(repo, what)
	return ref
}

// pushDigest pushes and returns the reference and the pushed digest.
func (e *env) pushDigest(repo string, what remote.Taggable) (ref, digest string) {
	e.t.Helper()
	ref = e.reg.Host + "/" + repo
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := testimage.Push(ctx, ref, what)
	if err != nil {
		e.t.Fatalf("push %s: %v", ref, err)
	}
	return ref, h.String()
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// sigil runs the binary with the env's global flags.
func (e *env) sigil(args ...string) (result, error) {
	return e.sigilIn(nil, args...)
}

func (e *env) sigilIn(stdin []byte, args ...string) (result, error) {
	return e.sigilWith(nil, stdin, args...)
}

// sigilWith runs the binary with the env's global flags, stdin and, unless
// environ is nil, environ as its whole environment. An exit status other
// than 0 is the result's code, not an error.
func (e *env) sigilWith(environ []string, stdin []byte, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append([]string{"--root", e.root, "--state", e.state, "--policy", e.policy}, e.extra...)
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, sigilBinary, full...)
	cmd.Env = environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
		err = nil
	}
	return r, err
}

// mustSigil runs sigil and fails the test unless it exits 0.
func (e *env) mustSigil(args ...string) result {
	e.t.Helper()
	r, err := e.sigil(args...)
	if err != nil || r.code != 0 {
		e.t.Fatalf("sigil %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	return r
}

// concurrently runs the same sigil command n times at once.
func (e *env) concurrently(n int, args ...string) []result {
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = e.sigil(args...)
		}()
	}
	wg.Wait()
	return results
}

// wantEachLayerOnce checks that every layer of img was requested from
// the registry's repo exactly once since the last Reset.
func (e *env) wantEachLayerOnce(img v1.Image, repo, by string) {
	e.t.Helper()
	layers, err := img.Layers()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		if n := e.reg.Count("GET", "/v2/"+repo+"/blobs/"+d.String()); n != 1 {
			e.t.Errorf("layer %s was downloaded %d times by %s, want 1", d, n, by)
		}
	}
}

// busyboxAndLayered builds the two OCI test images that share their base
// layer: busybox and the layered image on top of the same base.
func busyboxAndLayered(t *testing.T) (bb, ly v1.Image) {
	t.Helper()
	bb, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ly, err = testimage.Layered(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	return bb, ly
}
