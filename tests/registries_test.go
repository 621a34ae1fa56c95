package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-project/sigil/tests/testimage"
)

// imageListed reports whether `sigil images` shows repo with tag.
func imageListed(out, repo, tag string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == repo && f[1] == tag {
			return true
		}
	}
	return false
}

func TestRegistriesConfMirror(t *testing.T) {
	e := newEnv(t)
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	_, pushed := e.pushDigest("k8s-mirror/pause:3.9", img)
	conf := filepath.Join(t.TempDir(), "registries.conf")
	// As podman ships it, plus a mirror for registry.k8s.io.
	text := `# For more information on this configuration file, see containers-registries.conf(5).
#
# NOTE: RISK OF USING UNQUALIFIED IMAGE NAMES
unqualified-search-registries = ["registry.fedoraproject.org", "registry.access.redhat.com", "docker.io", "quay.io"]
short-name-mode = "enforcing"

# The pause image comes from the site's mirror.
[[registry]]
prefix = "registry.k8s.io"
location = "registry.k8s.io"

[[registry.mirror]]
location = "` + e.reg.Host + `/k8s-mirror"   # loopback: plain HTTP
`
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, r result, how string) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("fetch registry.k8s.io/pause:3.9 with %s = %v, want exit 0 from the mirror", how, r)
		}
		if got := strings.TrimSpace(r.stdout); got != pushed {
			t.Errorf("fetch with %s printed %q, want the mirror's digest %s", how, got, pushed)
		}
		if n := e.reg.Count("GET", "/v2/k8s-mirror/pause/manifests/3.9"); n != 1 {
			t.Errorf("fetch with %s: mirror answered %d manifest requests for k8s-mirror/pause:3.9, want 1", how, n)
		}
		list := e.mustSigil("images")
		if !imageListed(list.stdout, "registry.k8s.io/pause", "3.9") {
			t.Errorf("images after fetch with %s:\n%s\nwant registry.k8s.io/pause 3.9, the name asked for", how, list.stdout)
		}
		if strings.Contains(list.stdout, "k8s-mirror") {
			t.Errorf("images after fetch with %s:\n%s\nwant the mirror's name nowhere", how, list.stdout)
		}
	}

	t.Run("--registries-conf", func(t *testing.T) {
		e.reg.Reset()
		r, err := e.sigil("--registries-conf", conf, "fetch", "-q", "registry.k8s.io/pause:3.9")
		if err != nil {
			t.Fatal(err)
		}
		check(t, r, "--registries-conf")
		if n := e.reg.Count("GET", "/v2/k8s-mirror/pause/blobs/"); n != 2 {
			t.Errorf("mirror answered %d blob requests, want 2 (config and layer)", n)
		}
		run := e.mustSigil("run", "--rm", "registry.k8s.io/pause:3.9", "echo", "ok")
		if run.stdout != "ok\n" {
			t.Errorf("run registry.k8s.io/pause:3.9 echo ok = %q, want \"ok\\n\"", run.stdout)
		}
	})

	t.Run("$SIGIL_REGISTRIES_CONF", func(t *testing.T) {
		e.mustSigil("image", "rm", "registry.k8s.io/pause:3.9")
		e.reg.Reset()
		r := e.sigilEnv(append(os.Environ(), "SIGIL_REGISTRIES_CONF="+conf), nil, "fetch", "-q", "registry.k8s.io/pause:3.9")
		check(t, r, "$SIGIL_REGISTRIES_CONF")
	})

	// A mirror without the image is skipped; the location (rewritten
	// from the prefix) answers. A digest-only mirror is not asked for a tag.
	t.Run("fallback to location", func(t *testing.T) {
		_, want := e.pushDigest("primary/team/app:1", img)
		fb := filepath.Join(t.TempDir(), "fallback.conf")
		text := "[[registry]]\nprefix = \"example.test/team\"\nlocation = \"" + e.reg.Host + "/primary/team\"\n\n" +
			"[[registry.mirror]]\nlocation = \"" + e.reg.Host + "/empty-mirror\"\n\n" +
			"[[registry.mirror]]\nlocation = \"" + e.reg.Host + "/digest-mirror\"\npull-from-mirror = \"digest-only\"\n"
		if err := os.WriteFile(fb, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		e.reg.Reset()
		r, err := e.sigil("--registries-conf", fb, "fetch", "-q", "example.test/team/app:1")
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 0 || strings.TrimSpace(r.stdout) != want {
			t.Fatalf("fetch example.test/team/app:1 = %v, want exit 0 and %s from the location", r, want)
		}
		if n := e.reg.Count("GET", "/v2/empty-mirror/app/manifests/1"); n != 1 {
			t.Errorf("the mirror was asked %d times for app:1, want 1 (tried first)", n)
		}
		if n := e.reg.Count("GET", "/v2/digest-mirror/"); n != 0 {
			t.Errorf("a digest-only mirror was asked %d times for a tag, want 0", n)
		}
		if n := e.reg.Count("GET", "/v2/primary/team/app/manifests/1"); n != 1 {
			t.Errorf("the location was asked %d times for app:1, want 1", n)
		}
		if list := e.mustSigil("images"); !imageListed(list.stdout, "example.test/team/app", "1") {
			t.Errorf("images after fetch through the location:\n%s\nwant example.test/team/app 1", list.stdout)
		}
	})

	t.Run("blocked", func(t *testing.T) {
		ref := e.push("blocked/app:1", img)
		blocked := filepath.Join(t.TempDir(), "blocked.conf")
		text := "unqualified-search-registries = [\"docker.io\"]\n\n" +
			"[[registry]]\nprefix = \"" + e.reg.Host + "/blocked\"\nlocation = \"" + e.reg.Host + "/blocked\"\nblocked = true\n"
		if err := os.WriteFile(blocked, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		e.reg.Reset()
		r, err := e.sigil("--registries-conf", blocked, "fetch", "-q", ref)
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 125 || !strings.Contains(r.stderr, "blocked") || !strings.Contains(r.stderr, blocked) {
			t.Errorf("fetch from a blocked registry = %v, want exit 125 saying blocked and naming %s", r, blocked)
		}
		if n := e.reg.Count("GET", "/v2/"); n != 0 {
			t.Errorf("fetch from a blocked registry made %d requests to it, want 0", n)
		}
		// The block is by prefix: the rest of the registry is reachable.
		e.mustSigil("--registries-conf", blocked, "fetch", "-q", e.push("open/app:1", img))
	})

	t.Run("v1 format", func(t *testing.T) {
		v1 := filepath.Join(t.TempDir(), "v1.conf")
		text := "# old style\n[registries.search]\nregistries = ['docker.io', 'quay.io']\n\n[registries.insecure]\nregistries = ['" + e.reg.Host + "']\n\n[registries.block]\nregistries = []\n"
		if err := os.WriteFile(v1, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		ref := e.push("v1/app:1", img)
		e.reg.Reset()
		r, err := e.sigil("--registries-conf", v1, "fetch", "-q", ref)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{v1, "v1 format", "convert it to v2", `unqualified-search-registries = ["docker.io", "quay.io"]`} {
			if r.code != 125 || !strings.Contains(r.stderr, want) {
				t.Errorf("fetch with a v1 registries.conf = %v, want exit 125 and %q", r, want)
			}
		}
		if n := e.reg.Count("GET", "/v2/"); n != 0 {
			t.Errorf("fetch with an unusable registries.conf made %d registry requests, want 0", n)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope.conf")
		r, err := e.sigil("--registries-conf", missing, "fetch", "-q", "registry.k8s.io/pause:3.9")
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 125 || !strings.Contains(r.stderr, missing) {
			t.Errorf("fetch with a missing --registries-conf = %v, want exit 125 naming %s", r, missing)
		}
	})
}
