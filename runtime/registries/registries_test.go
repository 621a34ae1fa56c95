package registries

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// podmanConf is shaped like a real /etc/containers/registries.conf: the
// distribution comments, short-name settings, aliases, and a few tables.
const podmanConf = `
# For more information on this configuration file, see containers-registries.conf(5).
#
# NOTE: RISK OF USING UNQUALIFIED IMAGE NAMES
# We recommend always using fully qualified image names including the registry
# server (full dns name), namespace, image name, and tag
# (e.g., registry.redhat.io/ubi8/ubi:latest).
unqualified-search-registries = ["registry.fedoraproject.org", "registry.access.redhat.com", "docker.io", "quay.io/"]

short-name-mode = "enforcing"
credential-helpers = ["containers-auth.json", "secretservice"]

[aliases]
  "fedora" = "registry.fedoraproject.org/fedora"
  "ubi8" = "registry.access.redhat.com/ubi8"

# A local pull-through cache for Kubernetes images; tags only come from upstream.
[[registry]]
prefix = "registry.k8s.io"
location = "registry.k8s.io"

[[registry.mirror]]
location = "127.0.0.1:5000/k8s"
insecure = true

[[registry.mirror]]
location = "mirror.example.net/k8s"
pull-from-mirror = "digest-only"

[[registry.mirror]]
location = "tags.example.net/k8s"
pull-from-mirror = "tag-only"

# Docker Hub through a mirror, by digest only.
[[registry]]
location = "docker.io"
mirror-by-digest-only = true

[[registry.mirror]]
location = "mirror.gcr.io"

# The team namespace lives elsewhere now.
[[registry]]
prefix = "example.com/foo"
location = "new.example.com/bar"

[[registry]]
prefix = "example.com"
location = "example.com"
blocked = true

[[registry]]
prefix = "*.internal.example"
insecure = true

[[registry]]
location = "localhost:5000"
insecure = true
`

func mustParse(t *testing.T, data string) *Config {
	t.Helper()
	c, err := Parse([]byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestParsePodmanFile(t *testing.T) {
	c := mustParse(t, podmanConf)
	wantSearch := []string{"registry.fedoraproject.org", "registry.access.redhat.com", "docker.io", "quay.io"}
	if !reflect.DeepEqual(c.UnqualifiedSearchRegistries, wantSearch) {
		t.Errorf("UnqualifiedSearchRegistries = %q", c.UnqualifiedSearchRegistries)
	}
	if c.ShortNameMode != "enforcing" || len(c.CredentialHelpers) != 2 || c.Aliases["fedora"] != "registry.fedoraproject.org/fedora" {
		t.Errorf("kept fields wrong: %q %q %v", c.ShortNameMode, c.CredentialHelpers, c.Aliases)
	}
	if len(c.Registries) != 6 {
		t.Fatalf("got %d registries", len(c.Registries))
	}
	if r := c.Registries[1]; r.Prefix != "docker.io" || !r.MirrorByDigestOnly || len(r.Mirrors) != 1 {
		t.Errorf("prefix not defaulted to location or mirror lost: %+v", r)
	}
	if len(c.UnknownKeys) != 0 {
		t.Errorf("UnknownKeys = %q", c.UnknownKeys)
	}
}

func TestEndpoints(t *testing.T) {
	c := mustParse(t, podmanConf)
	type ep = Endpoint
	tests := []struct {
		name     string
		repo     string
		byDigest bool
		want     []Endpoint
	}{
		{"no table: own registry", "quay.io/podman/stable", false, []ep{
			{Registry: "quay.io", Repository: "podman/stable"},
		}},
		{"mirror order, tag pull skips digest-only mirror", "registry.k8s.io/pause", false, []ep{
			{Registry: "127.0.0.1:5000", Repository: "k8s/pause", Insecure: true, Mirror: true},
			{Registry: "tags.example.net", Repository: "k8s/pause", Mirror: true},
			{Registry: "registry.k8s.io", Repository: "pause"},
		}},
		{"digest pull skips tag-only mirror", "registry.k8s.io/pause", true, []ep{
			{Registry: "127.0.0.1:5000", Repository: "k8s/pause", Insecure: true, Mirror: true},
			{Registry: "mirror.example.net", Repository: "k8s/pause", Mirror: true},
			{Registry: "registry.k8s.io", Repository: "pause"},
		}},
		{"nested path is rewritten", "registry.k8s.io/sig-storage/csi-provisioner", true, []ep{
			{Registry: "127.0.0.1:5000", Repository: "k8s/sig-storage/csi-provisioner", Insecure: true, Mirror: true},
			{Registry: "mirror.example.net", Repository: "k8s/sig-storage/csi-provisioner", Mirror: true},
			{Registry: "registry.k8s.io", Repository: "sig-storage/csi-provisioner"},
		}},
		{"mirror-by-digest-only: tag pull uses no mirror", "docker.io/library/busybox", false, []ep{
			{Registry: "docker.io", Repository: "library/busybox"},
		}},
		{"mirror-by-digest-only: digest pull uses mirror", "docker.io/library/busybox", true, []ep{
			{Registry: "mirror.gcr.io", Repository: "library/busybox", Mirror: true},
			{Registry: "docker.io", Repository: "library/busybox"},
		}},
		{"longest prefix wins over blocked host", "example.com/foo/app", false, []ep{
			{Registry: "new.example.com", Repository: "bar/app"},
		}},
		{"exact prefix", "example.com/foo", false, []ep{
			{Registry: "new.example.com", Repository: "bar"},
		}},
		{"wildcard, empty location keeps the host", "a.b.internal.example/team/app", false, []ep{
			{Registry: "a.b.internal.example", Repository: "team/app", Insecure: true},
		}},
		{"wildcard with port", "reg.internal.example:8443/app", false, []ep{
			{Registry: "reg.internal.example:8443", Repository: "app", Insecure: true},
		}},
		{"wildcard does not match the bare domain", "internal.example/app", false, []ep{
			{Registry: "internal.example", Repository: "app"},
		}},
		{"location-only insecure registry", "localhost:5000/a/b", false, []ep{
			{Registry: "localhost:5000", Repository: "a/b", Insecure: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Endpoints(tt.repo, tt.byDigest)
			if err != nil {
				t.Fatalf("Endpoints: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Endpoints(%q, %v)\n got %+v\nwant %+v", tt.repo, tt.byDigest, got, tt.want)
			}
		})
	}
}

func TestBlocked(t *testing.T) {
	c := mustParse(t, podmanConf)
	c.Path = "/etc/containers/registries.conf"
	for _, name := range []string{"example.com/foobar", "example.com/other/app", "example.com:5000/x"} {
		_, err := c.Endpoints(name, true)
		if !errors.Is(err, ErrBlocked) {
			t.Fatalf("Endpoints(%q) err = %v, want ErrBlocked", name, err)
		}
		var be *BlockedError
		if !errors.As(err, &be) || be.Name != name || be.Prefix != "example.com" {
			t.Errorf("BlockedError = %+v", be)
		}
		for _, s := range []string{name, `"example.com"`, "/etc/containers/registries.conf"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %q", err, s)
			}
		}
	}
}

func TestMatchPrefix(t *testing.T) {
	tests := []struct {
		ref, prefix string
		want        int
	}{
		{"example.com/foo", "example.com/foo", 15},
		{"example.com/foo/bar", "example.com/foo", 15},
		{"example.com/foo:tag", "example.com/foo", 15},
		{"example.com/foo@sha256:abc", "example.com/foo", 15},
		{"example.com/foobar", "example.com/foo", -1},
		{"example.com/fo", "example.com/foo", -1},
		{"example.com", "example.com", 11},
		{"example.community/x", "example.com", -1},
		{"a.example.com/x", "*.example.com", 13},
		{"a.b.example.com/x", "*.example.com", 15},
		{"a.example.com:5000/x", "*.example.com", 13},
		{"example.com/x", "*.example.com", -1},
		{"aexample.com/x", "*.example.com", -1},
		{"a.example.com.evil.net/x", "*.example.com", -1},
		{"evil.net/a.example.com/x", "*.example.com", -1},
	}
	for _, tt := range tests {
		if got := matchPrefix(tt.ref, tt.prefix); got != tt.want {
			t.Errorf("matchPrefix(%q, %q) = %d, want %d", tt.ref, tt.prefix, got, tt.want)
		}
	}
}

func TestWithInsecure(t *testing.T) {
	c := mustParse(t, podmanConf)
	c2 := c.WithInsecure("Quay.io", "registry.k8s.io/")
	eps, err := c2.Endpoints("quay.io/a/b", false)
	if err != nil || !eps[0].Insecure {
		t.Errorf("WithInsecure not applied: %+v %v", eps, err)
	}
	eps, _ = c2.Endpoints("registry.k8s.io/pause", false)
	if last := eps[len(eps)-1]; !last.Insecure || last.Registry != "registry.k8s.io" {
		t.Errorf("primary not insecure: %+v", last)
	}
	if eps[1].Insecure {
		t.Errorf("unrelated mirror became insecure: %+v", eps[1])
	}
	eps, _ = c2.Endpoints("quay.io:8443/a/b", false)
	if eps[0].Insecure {
		t.Errorf("insecure host without port matched another port: %+v", eps[0])
	}
	if eps, _ := c.Endpoints("quay.io/a/b", false); eps[0].Insecure {
		t.Error("WithInsecure modified the original config")
	}
	c3 := c2.WithInsecure("other:5000")
	if eps, _ := c3.Endpoints("quay.io/a/b", false); !eps[0].Insecure {
		t.Error("WithInsecure dropped earlier hosts")
	}
}

func TestEndpointsBadName(t *testing.T) {
	c := &Config{}
	for _, name := range []string{"busybox", "docker.io/library/busybox:latest", "docker.io/Library/x", "docker.io/library/busybox@sha256:" + strings.Repeat("a", 64), ""} {
		if _, err := c.Endpoints(name, false); err == nil {
			t.Errorf("Endpoints(%q) succeeded, want error", name)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, conf, want string
	}{
		{"v1 format", `
# v1 file from an old distribution
[registries.search]
registries = ['docker.io', 'quay.io']

[registries.insecure]
registries = ['localhost:5000']

[registries.block]
registries = []
`, "v1 format ([registries.search], [registries.insecure], [registries.block]) is not supported; convert it to v2"},
		{"toml syntax", "[[registry]\nlocation=1", "invalid registries configuration: "},
		{"no prefix no location", "[[registry]]\ninsecure = true", `registry[0] (location ""): neither prefix nor location is set`},
		{"url scheme", "[[registry]]\nlocation = \"https://quay.io\"", "URL schemes are not supported"},
		{"empty location without wildcard", "[[registry]]\nprefix = \"quay.io\"", "location is empty; it may only be omitted with a wildcard prefix"},
		{"bad wildcard", "[[registry]]\nprefix = \"*.example.com/ns\"", "wildcard prefix names hosts only"},
		{"star in the middle", "[[registry]]\nprefix = \"registry.*.com\"\nlocation = \"x.com\"", `only allowed as a leading "*."`},
		{"pull-from-mirror on registry", "[[registry]]\nlocation = \"quay.io\"\npull-from-mirror = \"all\"", "pull-from-mirror belongs in a [[registry.mirror]]"},
		{"bad pull-from-mirror", "[[registry]]\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"sometimes\"", `mirror[0] (location "m.io"): pull-from-mirror "sometimes" is not one of`},
		{"digest-only twice", "[[registry]]\nlocation = \"quay.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"tag-only\"", "cannot be combined with the registry's mirror-by-digest-only"},
		{"mirror without location", "[[registry]]\nlocation = \"quay.io\"\n[[registry.mirror]]\ninsecure = true", "location is empty"},
		{"conflicting insecure", "[[registry]]\nprefix = \"quay.io/a\"\nlocation = \"quay.io\"\ninsecure = true\n[[registry]]\nprefix = \"quay.io/b\"\nlocation = \"quay.io\"", "conflicting insecure"},
		{"conflicting blocked", "[[registry]]\nlocation = \"quay.io\"\nblocked = true\n[[registry]]\nprefix = \"quay.io/b\"\nlocation = \"quay.io\"", "conflicting blocked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.conf))
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not *FormatError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.want)
			}
		})
	}
}

func TestV1Conversion(t *testing.T) {
	_, err := Parse([]byte("[registries.search]\nregistries = ['docker.io']\n[registries.insecure]\nregistries = ['localhost:5000']\n"))
	want := "unqualified-search-registries = [\"docker.io\"]\n[[registry]]\nlocation = \"localhost:5000\"\ninsecure = true"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v\ndoes not suggest\n%s", err, want)
	}
}

func TestUnknownKeys(t *testing.T) {
	c := mustParse(t, "[[registry]]\nlocation = \"quay.io\"\nblock = true\nfuture-key = 1\n")
	want := []string{"registry.block", "registry.future-key"}
	if !reflect.DeepEqual(c.UnknownKeys, want) {
		t.Errorf("UnknownKeys = %q, want %q", c.UnknownKeys, want)
	}
}

func TestBadRewrite(t *testing.T) {
	c := mustParse(t, "[[registry]]\nprefix = \"example.com/foo\"\nlocation = \"mirror.local\"\n")
	_, err := c.Endpoints("example.com/foo", false)
	if err == nil || !strings.Contains(err.Error(), "has no repository path") {
		t.Errorf("err = %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.conf")
	if _, err := Load(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v, want ENOENT naming the path", err)
	}
	c, err := LoadOptional(missing)
	if err != nil || len(c.Registries) != 0 || c.Path != missing {
		t.Errorf("LoadOptional(missing) = %+v, %v", c, err)
	}
	eps, err := c.Endpoints("docker.io/library/busybox", false)
	if err != nil || len(eps) != 1 || eps[0] != (Endpoint{Registry: "docker.io", Repository: "library/busybox"}) {
		t.Errorf("empty config endpoints = %+v, %v", eps, err)
	}

	good := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(good, []byte(podmanConf), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = LoadOptional(good)
	if err != nil || c.Path != good || len(c.Registries) != 6 {
		t.Fatalf("LoadOptional(good) = %v", err)
	}

	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("[registries.search]\nregistries=[]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOptional(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("LoadOptional(bad) = %v, want error naming %s", err, bad)
	}
}
