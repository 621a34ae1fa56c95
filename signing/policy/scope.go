package policy

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	dref "github.com/distribution/reference"
)

// Transport names with scope semantics this package knows.
const (
	TransportDocker = "docker"
	TransportOCI    = "oci"
	// TransportAtomic uses docker's scope syntax; kept for old policies.
	TransportAtomic = "atomic"
	// TransportDir uses oci's path scopes.
	TransportDir = "dir"
)

// RequirementsFor returns the requirements that apply to ref in transport
// and the scope they come from, exactly as written in the file ("" for the
// transport's default scope), or DefaultScope for the global default.
//
// For docker (and atomic) ref is a docker reference, normalised as docker
// does ("busybox" is docker.io/library/busybox:latest), and scopes are
// tried from the most specific to the least, as containers/image does:
//
//	docker.io/library/busybox@sha256:…   the image by digest, if it has one
//	docker.io/library/busybox:1.36       the image by tag, if it has one
//	docker.io/library/busybox            the repository
//	docker.io/library                    each parent namespace
//	docker.io                            the registry host[:port]
//	*.example.com, *.com                 wildcards for the host (port dropped)
//	""                                   the transport default
//	default                              the global default
//
// A reference with both a tag and a digest tries the digest scope first (the
// digest is what is fetched) and then the tag scope; containers/image
// refuses such references instead.
//
// For oci (and dir) ref is "DIR[:NAME]" (an optional "oci:" prefix is
// dropped) with DIR absolute; scopes are "DIR:NAME", DIR, then each parent
// directory except "/".
//
// For other transports only the exact ref, "" and default are tried. A ref
// that cannot be parsed matches no specific scope; Evaluator.Evaluate
// refuses such refs before looking up.
func (p *Policy) RequirementsFor(transport, ref string) (scope string, reqs Requirements) {
	if scopes, ok := p.Transports[transport]; ok {
		for _, c := range scopeCandidates(transport, ref) {
			if r, ok := scopes[c]; ok {
				return c, r
			}
		}
		if r, ok := scopes[""]; ok {
			return "", r
		}
	}
	return DefaultScope, p.Default
}

// ScopeCandidates lists the scopes RequirementsFor tries for ref, most
// specific first, before the transport default "" and DefaultScope; for
// `sigil verify --explain`.
func ScopeCandidates(transport, ref string) []string {
	return scopeCandidates(transport, ref)
}

func scopeCandidates(transport, ref string) []string {
	switch transport {
	case TransportDocker, TransportAtomic:
		named, err := parseDockerRef(ref)
		if err != nil {
			return nil
		}
		return dockerCandidates(named)
	case TransportOCI, TransportDir:
		dir, name, err := splitLayoutRef(ref)
		if err != nil {
			return nil
		}
		return layoutCandidates(dir, name)
	default:
		if ref == "" {
			return nil
		}
		return []string{ref}
	}
}

// parseDockerRef normalises ref, accepting skopeo's "docker://" spelling.
// A name without tag or digest means ":latest", as for a pull.
func parseDockerRef(ref string) (dref.Named, error) {
	named, err := dref.ParseNormalizedNamed(strings.TrimPrefix(ref, "docker://"))
	if err != nil {
		return nil, err
	}
	return dref.TagNameOnly(named), nil
}

func dockerCandidates(named dref.Named) []string {
	var out []string
	if d, ok := named.(dref.Digested); ok {
		out = append(out, named.Name()+"@"+d.Digest().String())
	}
	if t, ok := named.(dref.Tagged); ok {
		out = append(out, named.Name()+":"+t.Tag())
	}
	// The repository, then each parent namespace, ending with the host.
	name := named.Name()
	for {
		out = append(out, name)
		i := strings.LastIndex(name, "/")
		if i < 0 {
			break
		}
		name = name[:i]
	}
	// Wildcards match hosts without the port, most specific first.
	host := dref.Domain(named)
	if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	for {
		i := strings.Index(host, ".")
		if i < 0 {
			break
		}
		host = host[i+1:]
		out = append(out, "*."+host)
	}
	return out
}

// splitLayoutRef splits "[oci:]DIR[:NAME]" at the first ':' as the oci
// transport does; DIR must be absolute.
func splitLayoutRef(ref string) (dir, name string, err error) {
	ref = strings.TrimPrefix(ref, "oci:")
	dir, name, _ = strings.Cut(ref, ":")
	if !filepath.IsAbs(dir) {
		return "", "", fmt.Errorf("layout directory %q is not absolute", dir)
	}
	return filepath.Clean(dir), name, nil
}

func layoutCandidates(dir, name string) []string {
	var out []string
	if name != "" {
		out = append(out, dir+":"+name)
	}
	// "/" is not a scope: it would shadow "" with the same meaning.
	for dir != "/" && dir != "." && dir != "" {
		out = append(out, dir)
		dir = filepath.Dir(dir)
	}
	return out
}

// validateScope refuses scopes that can never match. containers/image
// accepts some of these silently; here they are errors because a dead scope
// in a trust policy is usually a rule the author believes is enforced.
func validateScope(transport, scope string) error {
	if scope == "" {
		return nil
	}
	switch transport {
	case TransportDocker, TransportAtomic:
		return validateDockerScope(scope)
	case TransportOCI, TransportDir:
		return validatePathScope(scope)
	}
	return nil
}

func validateDockerScope(scope string) error {
	if strings.Contains(scope, "://") {
		return fmt.Errorf("scope %q has a URL scheme; scopes are written like registry.example.com/team", scope)
	}
	if strings.HasPrefix(scope, "*.") {
		if rest := scope[2:]; rest == "" || strings.ContainsAny(rest, "*/:@") {
			return fmt.Errorf("scope %q: a wildcard scope names hosts only, like *.example.com (no port, path or second wildcard)", scope)
		}
		return nil
	}
	if strings.Contains(scope, "*") {
		return fmt.Errorf("scope %q: a wildcard is only allowed as a leading \"*.\", like *.example.com", scope)
	}
	host, _, _ := strings.Cut(scope, "/")
	if !strings.ContainsAny(host, ".:[") && host != "localhost" {
		// A familiar name like "busybox" or "library/busybox": references
		// are always looked up fully qualified, so this never matches.
		hint := ""
		if named, err := dref.ParseNormalizedNamed(scope); err == nil {
			hint = fmt.Sprintf("; write it fully qualified, as %q", named.String())
		}
		return fmt.Errorf("scope %q does not start with a registry host, so it can never match%s", scope, hint)
	}
	return nil
}

func validatePathScope(scope string) error {
	dir, _, _ := strings.Cut(scope, ":")
	switch {
	case !filepath.IsAbs(dir):
		return fmt.Errorf("scope %q must be an absolute path", scope)
	case scope == "/":
		return errors.New(`scope "/" is not allowed; use the transport default scope ""`)
	case filepath.Clean(dir) != dir:
		return fmt.Errorf("scope %q is not a clean path; write %q", scope, filepath.Clean(dir)+strings.TrimPrefix(scope, dir))
	}
	return nil
}
