// Package reference turns what a user typed ("busybox", "quay.io/x/y:1.0",
// "oci:/srv/layouts/app:1.0") into a normalised, validated image reference:
// what sigil should fetch, and under which name the trust policy judges it.
//
// Two transports exist:
//
//   - docker (the default, optionally spelled "docker://NAME" as skopeo does):
//     a registry reference, normalised exactly as docker does with
//     github.com/distribution/reference. "busybox" becomes
//     "docker.io/library/busybox:latest"; "localhost:5000/a/b" keeps its
//     registry; a missing tag becomes "latest" unless a digest is given.
//     Both a tag and a digest may be given: the digest decides what is
//     fetched, the tag is kept for naming.
//   - oci: "oci:DIR[:NAME]", an OCI image layout directory and the
//     org.opencontainers.image.ref.name of one image in its index.
//
// Unqualified names always resolve to docker.io, as docker does: sigil does
// not consult containers-registries.conf unqualified-search-registries, so a
// name never means different images on different hosts.
//
// Usage:
//
//	ref, err := reference.Parse("busybox")
//	if err != nil {
//		return err // *ParseError: names the input, the cause and the fix
//	}
//	ref.String() // "docker.io/library/busybox:latest"
//	ref.Domain() // "docker.io"
//	ref.Path()   // "library/busybox"
//	ref.Tag()    // "latest"
package reference

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	dref "github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Transport says where an image lives.
type Transport string

const (
	// TransportDocker is a registry speaking the OCI distribution API.
	TransportDocker Transport = "docker"
	// TransportOCI is an OCI image layout directory on the local filesystem.
	TransportOCI Transport = "oci"
)

// DefaultTag is the tag used when a reference names neither a tag nor a
// digest, for both transports.
const DefaultTag = "latest"

// ErrInvalidReference is matched (errors.Is) by every *ParseError, so callers
// can tell a user typo from a network or storage failure.
var ErrInvalidReference = errors.New("invalid image reference")

// ParseError reports a reference that cannot be parsed. Err carries the
// precise cause (often an error from github.com/distribution/reference).
type ParseError struct {
	Input     string
	Transport Transport
	Err       error
}

func (e *ParseError) Error() string {
	hint := "references look like registry.example.com/team/app:1.0"
	if e.Transport == TransportOCI {
		hint = "oci references look like oci:/path/to/layout:1.0"
	}
	return fmt.Sprintf("invalid image reference %q: %v; %s", e.Input, e.Err, hint)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalidReference) true for every ParseError
// while Unwrap still exposes the underlying cause.
func (e *ParseError) Is(target error) bool { return target == ErrInvalidReference }

// Ref is a parsed, normalised image reference. The zero Ref is not valid;
// obtain one from Parse. Ref is an immutable value and safe to copy and share.
type Ref struct {
	transport Transport

	// docker
	named dref.Named

	// oci
	layoutDir string
	layoutTag string

	// tagDefaulted records that the tag was filled in with DefaultTag rather
	// than typed: an OCI layout resolver may then fall back to the only image
	// of a single-image layout, as containers/image does.
	tagDefaulted bool
}

const (
	ociPrefix    = "oci:"
	dockerPrefix = "docker://"
)

// Parse parses and normalises s. See the package documentation for the
// accepted forms. Errors are *ParseError.
//
// A string starting with "oci:" is always the OCI layout transport, so a
// registry host literally named "oci" must be written "docker://oci:PORT/...".
func Parse(s string) (Ref, error) {
	switch {
	case strings.HasPrefix(s, ociPrefix):
		return parseOCI(s)
	case strings.HasPrefix(s, dockerPrefix):
		r, err := parseDocker(strings.TrimPrefix(s, dockerPrefix))
		if err != nil {
			return Ref{}, &ParseError{Input: s, Transport: TransportDocker, Err: err}
		}
		return r, nil
	default:
		r, err := parseDocker(s)
		if err != nil {
			return Ref{}, &ParseError{Input: s, Transport: TransportDocker, Err: err}
		}
		return r, nil
	}
}

func parseDocker(s string) (Ref, error) {
	switch {
	case s == "":
		return Ref{}, errors.New("the reference is empty")
	case strings.TrimSpace(s) != s:
		// Usually a copy-paste accident; distribution/reference would only
		// say "invalid reference format", which hides the real problem.
		return Ref{}, errors.New("the reference has leading or trailing white space")
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		return Ref{}, errors.New("a reference has no URL scheme; drop the http:// or https:// prefix")
	}
	named, err := dref.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, err
	}
	defaulted := dref.IsNameOnly(named)
	return Ref{
		transport:    TransportDocker,
		named:        dref.TagNameOnly(named),
		tagDefaulted: defaulted,
	}, nil
}

// ociRefName is the grammar of org.opencontainers.image.ref.name from the
// image-spec annotations: components of alphanumerics joined by one of
// "-._:@+" (or "--"), separated by "/". containers/image validates the same.
// It is compiled on first use: only oci: references need it, and every
// sigil process (the runner of a warm `sigil run` too) links this package.
var ociRefName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$`)
})

// parseOCI follows containers/image's oci transport on Unix: DIR ends at the
// FIRST ':'; everything after it is the image name (which may itself contain
// ':' as in "app:1.0"). A directory whose path contains ':' cannot be named;
// use a symlink. This rule is simple, unambiguous and compatible with
// skopeo/podman "oci:" strings, which matters more than supporting such
// directories.
func parseOCI(s string) (Ref, error) {
	fail := func(err error) (Ref, error) {
		return Ref{}, &ParseError{Input: s, Transport: TransportOCI, Err: err}
	}
	rest := strings.TrimPrefix(s, ociPrefix)
	dir, name, hasName := strings.Cut(rest, ":")
	if dir == "" {
		return fail(errors.New("the layout directory is empty"))
	}
	defaulted := false
	if !hasName || name == "" {
		name, defaulted = DefaultTag, true
	}
	if !ociRefName().MatchString(name) {
		return fail(fmt.Errorf("image name %q is not a valid org.opencontainers.image.ref.name", name))
	}
	// Trust policy scopes for oci: are absolute paths, so the directory is
	// made absolute now; the working directory of a later step could differ.
	// Symlinks are deliberately not resolved: Parse does not touch the
	// filesystem beyond asking for the working directory.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fail(fmt.Errorf("making layout directory %q absolute: %w", dir, err))
	}
	return Ref{
		transport:    TransportOCI,
		layoutDir:    abs,
		layoutTag:    name,
		tagDefaulted: defaulted,
	}, nil
}

// Transport returns where the image lives.
func (r Ref) Transport() Transport { return r.transport }

// String returns the canonical, fully qualified form: for docker
// "docker.io/library/busybox:latest" (or "NAME:TAG@DIGEST", "NAME@DIGEST"),
// for oci "oci:/abs/dir:name". It never uses docker's familiar short form, so
// the result is the same on every host and safe to store.
func (r Ref) String() string {
	switch r.transport {
	case TransportDocker:
		return r.named.String()
	case TransportOCI:
		return ociPrefix + r.layoutDir + ":" + r.layoutTag
	}
	return ""
}

// Familiar returns the short form docker prints ("busybox:latest") for
// display; oci references are returned as String.
func (r Ref) Familiar() string {
	if r.transport == TransportDocker {
		return dref.FamiliarString(r.named)
	}
	return r.String()
}

// Name returns the repository name without tag or digest, e.g.
// "docker.io/library/busybox": the key for registries.conf and credentials.
// It is "" for oci references.
func (r Ref) Name() string {
	if r.transport == TransportDocker {
		return r.named.Name()
	}
	return ""
}

// Domain returns the registry host[:port] of a docker reference
// ("docker.io", "localhost:5000"); "" for oci.
func (r Ref) Domain() string {
	if r.transport == TransportDocker {
		return dref.Domain(r.named)
	}
	return ""
}

// Path returns the repository path within the registry, without the domain
// ("library/busybox"); "" for oci.
func (r Ref) Path() string {
	if r.transport == TransportDocker {
		return dref.Path(r.named)
	}
	return ""
}

// Tag returns the tag (docker) or image name within the layout (oci). It is
// "" only for a docker reference given by digest alone.
func (r Ref) Tag() string {
	switch r.transport {
	case TransportDocker:
		if t, ok := r.named.(dref.Tagged); ok {
			return t.Tag()
		}
	case TransportOCI:
		return r.layoutTag
	}
	return ""
}

// TagDefaulted reports whether Tag is DefaultTag because the user typed no
// tag (and no digest), rather than typing "latest".
func (r Ref) TagDefaulted() bool { return r.tagDefaulted }

// Digest returns the digest the reference pins, or "" if it has none. When a
// reference has both, the digest is what must be fetched.
func (r Ref) Digest() digest.Digest {
	if r.transport == TransportDocker {
		if d, ok := r.named.(dref.Digested); ok {
			return d.Digest()
		}
	}
	return ""
}

// Named returns the distribution reference of a docker reference (tagged,
// digested or both, never name-only); nil for oci.
func (r Ref) Named() dref.Named {
	if r.transport == TransportDocker {
		return r.named
	}
	return nil
}

// LayoutDir returns the absolute OCI layout directory of an oci reference;
// "" for docker.
func (r Ref) LayoutDir() string {
	if r.transport == TransportOCI {
		return r.layoutDir
	}
	return ""
}

// WithDigest returns a copy of a docker reference pinned to d, keeping its
// tag for naming: after resolving "app:1.0" the fetch continues with
// "app:1.0@sha256:…", so what was judged is what is fetched.
func (r Ref) WithDigest(d digest.Digest) (Ref, error) {
	if r.transport != TransportDocker {
		return Ref{}, fmt.Errorf("cannot pin %s to digest %s: only docker references carry digests", r, d)
	}
	if err := d.Validate(); err != nil {
		return Ref{}, fmt.Errorf("cannot pin %s to digest %q: %w", r, d, err)
	}
	name, err := dref.WithName(r.named.Name())
	if err != nil {
		return Ref{}, fmt.Errorf("cannot pin %s to digest %s: %w", r, d, err)
	}
	var named dref.Named = name
	if t, ok := r.named.(dref.Tagged); ok {
		if named, err = dref.WithTag(name, t.Tag()); err != nil {
			return Ref{}, fmt.Errorf("cannot pin %s to digest %s: %w", r, d, err)
		}
	}
	canonical, err := dref.WithDigest(named, d)
	if err != nil {
		return Ref{}, fmt.Errorf("cannot pin %s to digest %s: %w", r, d, err)
	}
	out := r
	out.named = canonical
	return out, nil
}
