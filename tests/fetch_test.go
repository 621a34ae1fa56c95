package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sigil-project/sigil/tests/testimage"
)

func TestFetchFormats(t *testing.T) {
	e := newEnv(t)
	build := map[string]func() (remote.Taggable, error){
		"oci-manifest":         func() (remote.Taggable, error) { return testimage.Busybox(testimage.OCI) },
		"docker-schema2":       func() (remote.Taggable, error) { return testimage.Busybox(testimage.Docker) },
		"oci-index":            func() (remote.Taggable, error) { return testimage.MultiPlatform(testimage.OCI) },
		"docker-manifest-list": func() (remote.Taggable, error) { return testimage.MultiPlatform(testimage.Docker) },
	}
	for name, mk := range build {
		t.Run(name, func(t *testing.T) {
			img, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			ref, want := e.pushDigest("formats/"+name+":v1", img)
			r := e.mustSigil("fetch", "-q", ref)
			got := strings.TrimSpace(r.stdout)
			if got != want {
				t.Fatalf("fetch %s printed %q, want the pushed digest %s", ref, got, want)
			}
			list := e.mustSigil("images", "--digests")
			if !strings.Contains(list.stdout, e.reg.Host+"/formats/"+name) || !strings.Contains(list.stdout, got) {
				t.Errorf("images after fetch of %s:\n%s\nwant the name and digest %s", ref, list.stdout, got)
			}
		})
	}
}

func TestFetchPlatform(t *testing.T) {
	e := newEnv(t)
	idx, err := testimage.MultiPlatform(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.push("multi/app:1", idx)
	e.mustSigil("fetch", "-q", "--platform", "linux/arm64", ref)
	list := e.mustSigil("images")
	if !strings.Contains(list.stdout, "linux/arm64") {
		t.Errorf("images after --platform linux/arm64:\n%s\nwant linux/arm64", list.stdout)
	}
	r, err := e.sigil("fetch", "-q", "--platform", "linux/s390x", ref)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 125 || !strings.Contains(r.stderr, "linux/s390x") || !strings.Contains(r.stderr, "linux/amd64") {
		t.Errorf("fetch --platform linux/s390x = %v, want exit 125 naming the wanted and the available platforms", r)
	}
}

func TestFetchRefusedWithoutPolicy(t *testing.T) {
	e := newEnv(t)
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.push("nopolicy/app:1", img)
	e.reg.Reset()
	e.policy = filepath.Join(t.TempDir(), "missing.json")
	r, err := e.sigil("fetch", "-q", ref)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 125 || !strings.Contains(r.stderr, "--insecure-policy") || !strings.Contains(r.stderr, e.policy) {
		t.Errorf("fetch without a policy = %v, want exit 125 naming the policy path and --insecure-policy", r)
	}
	if n := e.reg.Count("GET", "/v2/"); n != 0 {
		t.Errorf("fetch without a policy made %d GET requests to the registry, want 0", n)
	}
	e.extra = []string{"--insecure-policy"}
	e.mustSigil("fetch", "-q", ref)
}

func TestFetchRejectedByPolicyFetchesNoLayer(t *testing.T) {
	e := newEnv(t)
	img, err := testimage.Layered(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.push("team/app:1", img)
	policy := `{"default":[{"type":"insecureAcceptAnything"}],
	  "transports":{"docker":{"` + e.reg.Host + `/team":[{"type":"reject"}]}}}`
	if err := os.WriteFile(e.policy, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	e.reg.Reset()
	r, err := e.sigil("fetch", "-q", ref)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 125 || !strings.Contains(r.stderr, "POLICY_REJECT") || !strings.Contains(r.stderr, e.reg.Host+"/team") {
		t.Errorf("fetch of a rejected image = %v, want exit 125 with POLICY_REJECT and the scope", r)
	}
	if n := e.reg.Count("GET", "/v2/team/app/blobs/"); n != 0 {
		t.Errorf("a rejected image had %d blob requests, want 0", n)
	}
	// Another repository of the same registry falls back to the default.
	ok := e.push("other/app:1", img)
	e.mustSigil("fetch", "-q", ok)
}

func TestConcurrentFetchDownloadsOnce(t *testing.T) {
	e := newEnv(t)
	img, err := testimage.Layered(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.push("conc/app:1", img)
	e.reg.Reset()
	for i, r := range e.concurrently(10, "fetch", "-q", ref) {
		if r.code != 0 {
			t.Errorf("concurrent fetch %d: %v", i, r)
		}
	}
	e.wantEachLayerOnce(img, "conc/app", "10 concurrent fetches")
}

// TestFetchDrawsProgressOnATerminal runs fetch on a pseudo-terminal (with
// script(1)) and checks that each layer gets a bar, and that -q or a
// non-terminal stderr gets none.
func TestFetchDrawsProgressOnATerminal(t *testing.T) {
	e := newEnv(t)
	img, err := testimage.Layered(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.push("progress/app:1", img)
	layers, _ := img.Layers()
	sigilCmd := fmt.Sprintf("stty cols 120 rows 40; %s --root %s --state %s --policy %s fetch", sigilBinary, e.root, e.state, e.policy)
	out, err := exec.Command("script", "-qfc", sigilCmd+" "+ref, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		if !strings.Contains(string(out), d.Hex[:12]) {
			t.Errorf("terminal output has no bar for layer %s:\n%q", d.Hex[:12], out)
		}
	}
	e.root = filepath.Join(t.TempDir(), "fresh-root") // so every layer is downloaded again
	if r := e.mustSigil("fetch", ref); strings.Contains(r.stderr, "[=") || !strings.Contains(r.stderr, "Fetched") {
		t.Errorf("fetch with stderr not a terminal drew bars: %q", r.stderr)
	}
}
