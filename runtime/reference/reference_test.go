package reference

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

const dgst = "sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"

func TestParseDocker(t *testing.T) {
	tests := []struct {
		in           string
		str          string
		familiar     string
		domain, path string
		tag          string
		defaulted    bool
		digest       digest.Digest
	}{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io", "library/busybox", "latest", true, ""},
		{"busybox:latest", "docker.io/library/busybox:latest", "busybox:latest", "docker.io", "library/busybox", "latest", false, ""},
		{"docker://busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io", "library/busybox", "latest", true, ""},
		{"library/busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "docker.io", "library/busybox", "1.36", false, ""},
		{"index.docker.io/foo/bar", "docker.io/foo/bar:latest", "foo/bar:latest", "docker.io", "foo/bar", "latest", true, ""},
		{"localhost:5000/a/b", "localhost:5000/a/b:latest", "localhost:5000/a/b:latest", "localhost:5000", "a/b", "latest", true, ""},
		{"localhost/a", "localhost/a:latest", "localhost/a:latest", "localhost", "a", "latest", true, ""},
		{"registry.example.com/team/app:1.0", "registry.example.com/team/app:1.0", "registry.example.com/team/app:1.0", "registry.example.com", "team/app", "1.0", false, ""},
		{"[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest", "[::1]:5000", "app", "latest", true, ""},
		{"x@" + dgst, "docker.io/library/x@" + dgst, "x@" + dgst, "docker.io", "library/x", "", false, dgst},
		{"quay.io/a/b:v1@" + dgst, "quay.io/a/b:v1@" + dgst, "quay.io/a/b:v1@" + dgst, "quay.io", "a/b", "v1", false, dgst},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.Transport() != TransportDocker {
				t.Errorf("Transport = %q", r.Transport())
			}
			if got := r.String(); got != tt.str {
				t.Errorf("String = %q, want %q", got, tt.str)
			}
			if got := r.Familiar(); got != tt.familiar {
				t.Errorf("Familiar = %q, want %q", got, tt.familiar)
			}
			if r.Domain() != tt.domain || r.Path() != tt.path {
				t.Errorf("Domain/Path = %q %q, want %q %q", r.Domain(), r.Path(), tt.domain, tt.path)
			}
			if r.Name() != tt.domain+"/"+tt.path {
				t.Errorf("Name = %q", r.Name())
			}
			if r.Tag() != tt.tag || r.TagDefaulted() != tt.defaulted {
				t.Errorf("Tag = %q defaulted=%v, want %q %v", r.Tag(), r.TagDefaulted(), tt.tag, tt.defaulted)
			}
			if r.Digest() != tt.digest {
				t.Errorf("Digest = %q, want %q", r.Digest(), tt.digest)
			}
			if r.Named() == nil || r.Named().String() != tt.str {
				t.Errorf("Named = %v", r.Named())
			}
			if r.LayoutDir() != "" {
				t.Errorf("LayoutDir = %q for docker ref", r.LayoutDir())
			}
		})
	}
}

func TestParseOCI(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in        string
		dir       string
		tag       string
		defaulted bool
	}{
		{"oci:/srv/layout", "/srv/layout", "latest", true},
		{"oci:/srv/layout:", "/srv/layout", "latest", true},
		{"oci:/srv/layout:1.0", "/srv/layout", "1.0", false},
		{"oci:/srv/layout/:app:1.0", "/srv/layout", "app:1.0", false},
		{"oci:/srv/layout:example.com/app:v2", "/srv/layout", "example.com/app:v2", false},
		{"oci:rel/dir:v1", filepath.Join(wd, "rel/dir"), "v1", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.Transport() != TransportOCI {
				t.Errorf("Transport = %q", r.Transport())
			}
			if r.LayoutDir() != tt.dir || r.Tag() != tt.tag || r.TagDefaulted() != tt.defaulted {
				t.Errorf("got dir=%q tag=%q defaulted=%v, want %q %q %v", r.LayoutDir(), r.Tag(), r.TagDefaulted(), tt.dir, tt.tag, tt.defaulted)
			}
			if want := "oci:" + tt.dir + ":" + tt.tag; r.String() != want {
				t.Errorf("String = %q, want %q", r.String(), want)
			}
			if r.Named() != nil || r.Domain() != "" || r.Path() != "" || r.Name() != "" || r.Digest() != "" {
				t.Errorf("docker accessors not empty for oci ref: %v %q %q", r.Named(), r.Domain(), r.Path())
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in    string
		cause string // substring of the error
	}{
		{"", "empty"},
		{"FOO", "must be lowercase"},
		{"docker.io/Library/busybox", "must be lowercase"},
		{" busybox", "white space"},
		{"https://registry.example.com/app", "URL scheme"},
		{"busybox:", "invalid reference format"},
		{"busybox@sha256:abc", "invalid reference format"},
		{"busybox@sha256:" + strings.Repeat("a", 40), "invalid checksum digest length"},
		{"a b", "invalid reference format"},
		{strings.Repeat("a", 64), "64-byte hexadecimal"},
		{"docker://", "empty"},
		{"oci:", "layout directory is empty"},
		{"oci::tag", "layout directory is empty"},
		{"oci:/dir:bad tag", "not a valid org.opencontainers.image.ref.name"},
		{"oci:/dir:-x", "not a valid org.opencontainers.image.ref.name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not *ParseError", err)
			}
			if !errors.Is(err, ErrInvalidReference) {
				t.Error("errors.Is(err, ErrInvalidReference) = false")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.cause) {
				t.Errorf("error %q does not mention %q", msg, tt.cause)
			}
			if !strings.HasPrefix(msg, "invalid image reference \""+tt.in+"\": ") {
				t.Errorf("error %q does not start with the input", msg)
			}
			if !strings.Contains(msg, "references look like") {
				t.Errorf("error %q has no hint", msg)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	_, err := Parse("FOO")
	want := `invalid image reference "FOO": invalid reference format: repository name (library/FOO) must be lowercase; references look like registry.example.com/team/app:1.0`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestWithDigest(t *testing.T) {
	other := digest.Digest("sha256:" + strings.Repeat("b", 64))
	tests := []struct {
		in, want string
	}{
		{"busybox", "docker.io/library/busybox:latest@" + dgst},
		{"busybox@" + string(other), "docker.io/library/busybox@" + dgst},
		{"quay.io/a/b:v1@" + string(other), "quay.io/a/b:v1@" + dgst},
	}
	for _, tt := range tests {
		r, err := Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.WithDigest(dgst)
		if err != nil {
			t.Fatalf("WithDigest(%s): %v", tt.in, err)
		}
		if p.String() != tt.want || p.Digest() != dgst {
			t.Errorf("WithDigest(%s) = %s, want %s", tt.in, p, tt.want)
		}
		if r.Digest() == dgst {
			t.Errorf("WithDigest modified the original %s", r)
		}
	}
	r, _ := Parse("busybox")
	if _, err := r.WithDigest("sha256:nope"); err == nil {
		t.Error("WithDigest accepted an invalid digest")
	}
	o, _ := Parse("oci:/x:y")
	if _, err := o.WithDigest(dgst); err == nil {
		t.Error("WithDigest accepted an oci reference")
	}
}
