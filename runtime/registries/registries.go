// Package registries reads containers-registries.conf version 2, the file
// podman, CRI-O, buildah and skopeo use (containers-registries.conf(5)), and
// answers one question: for a repository, which registries should be tried,
// in which order, under which repository path, and over plain HTTP or not.
//
// An unchanged podman /etc/containers/registries.conf parses. What sigil
// uses from it: [[registry]] tables (prefix, location, insecure, blocked,
// mirror-by-digest-only) and their [[registry.mirror]] tables (location,
// insecure, pull-from-mirror). unqualified-search-registries, short-name-mode,
// credential-helpers and [aliases] are parsed and kept, but sigil never
// searches: short names are normalised to docker.io exactly as docker does
// (see runtime/reference), so "busybox" means the same image on every host.
// The v1 format ([registries.search] ...) is refused with a suggested v2
// translation. Drop-in directories (registries.conf.d) are not read.
//
// Usage:
//
//	conf, err := registries.LoadOptional("/etc/containers/registries.conf")
//	if err != nil {
//		return err
//	}
//	conf = conf.WithInsecure(insecureRegistryFlags...)
//	eps, err := conf.Endpoints("registry.k8s.io/pause", ref.Digest() != "")
//	if errors.Is(err, registries.ErrBlocked) { ... }
//	for _, ep := range eps {
//		// try ep.Registry / ep.Repository; plain HTTP allowed iff ep.Insecure
//	}
package registries

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
	dref "github.com/distribution/reference"
)

// PullFromMirror restricts which pulls a mirror serves.
type PullFromMirror string

const (
	// PullFromMirrorAll (the default, also spelled "") serves every pull.
	PullFromMirrorAll PullFromMirror = "all"
	// PullFromMirrorDigestOnly serves only pulls by digest: a mirror can then
	// not hand out a stale or substituted tag.
	PullFromMirrorDigestOnly PullFromMirror = "digest-only"
	// PullFromMirrorTagOnly serves only pulls by tag.
	PullFromMirrorTagOnly PullFromMirror = "tag-only"
)

// Config is a parsed registries.conf. It is not modified after Parse; derive
// variants with WithInsecure, so one Config can be shared by goroutines.
type Config struct {
	// Path is the file the configuration came from ("" if parsed from
	// memory); error messages name it.
	Path string

	// UnqualifiedSearchRegistries is kept for completeness; sigil does not
	// search (see the package documentation).
	UnqualifiedSearchRegistries []string
	// ShortNameMode, CredentialHelpers and Aliases are kept verbatim and not
	// used by sigil.
	ShortNameMode     string
	CredentialHelpers []string
	Aliases           map[string]string

	// Registries are the [[registry]] tables in file order, with Prefix
	// defaulted to Location.
	Registries []Registry

	// UnknownKeys lists keys in the file this package does not know, e.g.
	// "registry.block" for a misspelt "blocked". They are not errors, so a
	// file written for a newer podman still works, but a CLI should print
	// them: a typo in a security setting is otherwise silent.
	UnknownKeys []string

	// insecure holds host[:port] values from --insecure-registry.
	insecure map[string]bool
}

// Registry is one [[registry]] table.
type Registry struct {
	// Prefix selects the repositories this table applies to: "host",
	// "host/ns", "host/ns/repo" or "*.example.com". It defaults to Location.
	Prefix string
	// Location is where the primary copy lives ("host[:port][/ns...]");
	// "" only with a wildcard prefix, meaning "the host being pulled from".
	Location           string
	Insecure           bool
	Blocked            bool
	MirrorByDigestOnly bool
	Mirrors            []Mirror
}

// Mirror is one [[registry.mirror]] table.
type Mirror struct {
	Location       string
	Insecure       bool
	PullFromMirror PullFromMirror
}

// Endpoint is one place to try when pulling a repository.
type Endpoint struct {
	// Registry is the host[:port] to contact. "docker.io" is left as is;
	// mapping it to its API host is the registry client's business.
	Registry string
	// Repository is the repository path inside Registry, after the prefix
	// was rewritten to the location.
	Repository string
	// Insecure allows plain HTTP and unverified TLS for this endpoint.
	Insecure bool
	// Mirror is true for mirrors, false for the primary location.
	Mirror bool
}

// String returns "registry/repository".
func (e Endpoint) String() string { return e.Registry + "/" + e.Repository }

// ErrBlocked is matched (errors.Is) by *BlockedError.
var ErrBlocked = errors.New("registry is blocked")

// BlockedError reports a pull from a registry that the configuration blocks.
type BlockedError struct {
	Name   string // repository being pulled
	Prefix string // prefix of the [[registry]] table that blocks it
	Source string // configuration file, or "" if parsed from memory
}

func (e *BlockedError) Error() string {
	src := e.Source
	if src == "" {
		src = "the registries configuration"
	}
	return fmt.Sprintf("cannot pull %s: registry %q is blocked (blocked = true) in %s; remove that setting to allow pulls from it",
		e.Name, e.Prefix, src)
}

// Is makes errors.Is(err, ErrBlocked) true.
func (e *BlockedError) Is(target error) bool { return target == ErrBlocked }

// FormatError reports a registries.conf that cannot be used.
type FormatError struct {
	Path string // "" if parsed from memory
	Err  error
}

func (e *FormatError) Error() string {
	if e.Path == "" {
		return "invalid registries configuration: " + e.Err.Error()
	}
	return fmt.Sprintf("invalid registries configuration %s: %v", e.Path, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

// Load reads and parses the file at path. A missing file is an error naming
// the path: a path the user gave explicitly must exist.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading registries configuration: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			fe.Path = path
		}
		return nil, err
	}
	c.Path = path
	return c, nil
}

// LoadOptional is Load for default locations: a missing file yields an empty
// configuration (every repository pulled from its own registry, securely).
func LoadOptional(path string) (*Config, error) {
	c, err := Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{Path: path}, nil
	}
	return c, err
}

// The wire types mirror the TOML file; they are separate from the public
// types so that keys that are invalid in a position (pull-from-mirror on a
// [[registry]]) can be detected and so that the public types need no tags.
type wireConfig struct {
	UnqualifiedSearchRegistries []string          `toml:"unqualified-search-registries"`
	ShortNameMode               string            `toml:"short-name-mode"`
	CredentialHelpers           []string          `toml:"credential-helpers"`
	Aliases                     map[string]string `toml:"aliases"`
	Registries                  []wireRegistry    `toml:"registry"`
	// Newer podman key; accepted so such files are not reported as unknown.
	AdditionalLayerStoreAuthHelper string `toml:"additional-layer-store-auth-helper"`
	// V1 is the v1 format's [registries.*] tables, decoded only to refuse
	// them with a useful message.
	V1 *wireV1 `toml:"registries"`
}

type wireV1 struct {
	Search   struct{ Registries []string } `toml:"search"`
	Insecure struct{ Registries []string } `toml:"insecure"`
	Block    struct{ Registries []string } `toml:"block"`
}

type wireRegistry struct {
	Prefix             string       `toml:"prefix"`
	Location           string       `toml:"location"`
	Insecure           bool         `toml:"insecure"`
	Blocked            bool         `toml:"blocked"`
	MirrorByDigestOnly bool         `toml:"mirror-by-digest-only"`
	PullFromMirror     string       `toml:"pull-from-mirror"`
	Mirrors            []wireMirror `toml:"mirror"`
}

type wireMirror struct {
	Location       string `toml:"location"`
	Insecure       bool   `toml:"insecure"`
	PullFromMirror string `toml:"pull-from-mirror"`
}

// Parse parses a registries.conf v2 document. Errors are *FormatError.
func Parse(data []byte) (*Config, error) {
	var w wireConfig
	md, err := toml.Decode(string(data), &w)
	if err != nil {
		return nil, &FormatError{Err: err}
	}
	if md.IsDefined("registries") {
		return nil, &FormatError{Err: v1Error(w.V1)}
	}
	c := &Config{
		UnqualifiedSearchRegistries: w.UnqualifiedSearchRegistries,
		ShortNameMode:               w.ShortNameMode,
		CredentialHelpers:           w.CredentialHelpers,
		Aliases:                     w.Aliases,
	}
	for _, k := range md.Undecoded() {
		c.UnknownKeys = append(c.UnknownKeys, k.String())
	}
	for i, s := range c.UnqualifiedSearchRegistries {
		loc, err := parseLocation(s)
		if err != nil {
			return nil, &FormatError{Err: fmt.Errorf("unqualified-search-registries[%d]: %w", i, err)}
		}
		c.UnqualifiedSearchRegistries[i] = loc
	}
	for i, wr := range w.Registries {
		r, err := convertRegistry(wr)
		if err != nil {
			return nil, &FormatError{Err: fmt.Errorf("registry[%d] (%s): %w", i, describe(wr), err)}
		}
		c.Registries = append(c.Registries, r)
	}
	if err := checkConflicts(c.Registries); err != nil {
		return nil, &FormatError{Err: err}
	}
	return c, nil
}

func describe(wr wireRegistry) string {
	if wr.Prefix != "" {
		return fmt.Sprintf("prefix %q", wr.Prefix)
	}
	return fmt.Sprintf("location %q", wr.Location)
}

func convertRegistry(wr wireRegistry) (Registry, error) {
	loc, err := parseLocation(wr.Location)
	if err != nil {
		return Registry{}, fmt.Errorf("location: %w", err)
	}
	r := Registry{
		Location:           loc,
		Insecure:           wr.Insecure,
		Blocked:            wr.Blocked,
		MirrorByDigestOnly: wr.MirrorByDigestOnly,
	}
	if wr.Prefix == "" {
		if loc == "" {
			return Registry{}, errors.New("neither prefix nor location is set")
		}
		r.Prefix = loc
	} else {
		if r.Prefix, err = parseLocation(wr.Prefix); err != nil {
			return Registry{}, fmt.Errorf("prefix: %w", err)
		}
		if err := checkPrefix(r.Prefix); err != nil {
			return Registry{}, fmt.Errorf("prefix: %w", err)
		}
		if loc == "" && !isWildcard(r.Prefix) {
			// Only a wildcard can mean "wherever the name points".
			return Registry{}, errors.New("location is empty; it may only be omitted with a wildcard prefix like *.example.com")
		}
	}
	if wr.PullFromMirror != "" {
		return Registry{}, errors.New("pull-from-mirror belongs in a [[registry.mirror]] table, not in [[registry]]")
	}
	for j, wm := range wr.Mirrors {
		m, err := convertMirror(wm)
		if err != nil {
			return Registry{}, fmt.Errorf("mirror[%d] (location %q): %w", j, wm.Location, err)
		}
		if r.MirrorByDigestOnly && m.PullFromMirror != "" {
			return Registry{}, fmt.Errorf("mirror[%d] (location %q): pull-from-mirror cannot be combined with the registry's mirror-by-digest-only; use one of them", j, wm.Location)
		}
		r.Mirrors = append(r.Mirrors, m)
	}
	return r, nil
}

func convertMirror(wm wireMirror) (Mirror, error) {
	loc, err := parseLocation(wm.Location)
	if err != nil {
		return Mirror{}, fmt.Errorf("location: %w", err)
	}
	if loc == "" {
		return Mirror{}, errors.New("location is empty")
	}
	m := Mirror{Location: loc, Insecure: wm.Insecure, PullFromMirror: PullFromMirror(wm.PullFromMirror)}
	switch m.PullFromMirror {
	case "", PullFromMirrorAll, PullFromMirrorDigestOnly, PullFromMirrorTagOnly:
	default:
		return Mirror{}, fmt.Errorf("pull-from-mirror %q is not one of %q, %q, %q", wm.PullFromMirror,
			PullFromMirrorAll, PullFromMirrorDigestOnly, PullFromMirrorTagOnly)
	}
	return m, nil
}

// parseLocation normalises a location or prefix as containers/image does: a
// trailing "/" is dropped and URL schemes are refused, because a location is
// a registry name, not a URL (TLS or not is the insecure setting).
func parseLocation(s string) (string, error) {
	t := strings.TrimRight(strings.TrimSpace(s), "/")
	if strings.HasPrefix(t, "http://") || strings.HasPrefix(t, "https://") {
		return "", fmt.Errorf("%q: URL schemes are not supported; write host[:port][/namespace] and use insecure = true for plain HTTP", s)
	}
	return t, nil
}

func isWildcard(prefix string) bool { return strings.HasPrefix(prefix, "*.") }

// checkPrefix refuses prefixes that could never match, so a typo does not
// silently leave a registry unblocked or unmirrored.
func checkPrefix(p string) error {
	if isWildcard(p) {
		if strings.ContainsAny(p[2:], "*/:@") || p == "*." {
			return fmt.Errorf("%q: a wildcard prefix names hosts only, like *.example.com (no port, path or second wildcard)", p)
		}
		return nil
	}
	if strings.Contains(p, "*") {
		return fmt.Errorf("%q: a wildcard is only allowed as a leading \"*.\", like *.example.com", p)
	}
	return nil
}

// checkConflicts refuses a registry described twice with contradicting
// insecure or blocked settings (containers/image does the same): which one
// applied would otherwise depend on which prefix matched.
func checkConflicts(regs []Registry) error {
	type seen struct {
		insecure, blocked bool
		prefix            string
	}
	byLoc := map[string]seen{}
	for _, r := range regs {
		key := r.Location
		if key == "" {
			key = r.Prefix
		}
		s, ok := byLoc[key]
		if !ok {
			byLoc[key] = seen{r.Insecure, r.Blocked, r.Prefix}
			continue
		}
		if s.insecure != r.Insecure {
			return fmt.Errorf("registry %q is defined twice (prefixes %q and %q) with conflicting insecure settings", key, s.prefix, r.Prefix)
		}
		if s.blocked != r.Blocked {
			return fmt.Errorf("registry %q is defined twice (prefixes %q and %q) with conflicting blocked settings", key, s.prefix, r.Prefix)
		}
	}
	return nil
}

// v1Error explains how to convert a v1 file, with the converted text when the
// v1 content could be read.
func v1Error(v1 *wireV1) error {
	var b strings.Builder
	b.WriteString("registries.conf v1 format ([registries.search], [registries.insecure], [registries.block]) is not supported; convert it to v2 (containers-registries.conf(5))")
	if v1 == nil {
		return errors.New(b.String())
	}
	var v2 strings.Builder
	if len(v1.Search.Registries) > 0 {
		fmt.Fprintf(&v2, "unqualified-search-registries = [%s]\n", quoteList(v1.Search.Registries))
	}
	for _, h := range v1.Insecure.Registries {
		fmt.Fprintf(&v2, "[[registry]]\nlocation = %q\ninsecure = true\n", h)
	}
	for _, h := range v1.Block.Registries {
		fmt.Fprintf(&v2, "[[registry]]\nlocation = %q\nblocked = true\n", h)
	}
	if v2.Len() > 0 {
		b.WriteString(", for example:\n")
		b.WriteString(v2.String())
	}
	return errors.New(strings.TrimRight(b.String(), "\n"))
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// WithInsecure returns a copy of c in which endpoints whose Registry equals
// one of hosts (host[:port], compared case-insensitively; a port must match
// exactly) are insecure, as docker's and podman's --insecure-registry do.
// c itself is unchanged.
func (c *Config) WithInsecure(hosts ...string) *Config {
	out := *c
	out.insecure = make(map[string]bool, len(c.insecure)+len(hosts))
	for h := range c.insecure {
		out.insecure[h] = true
	}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimRight(strings.TrimSpace(h), "/"))
		if h != "" {
			out.insecure[h] = true
		}
	}
	return &out
}

// FindRegistry returns the [[registry]] table that applies to name (a
// normalised repository name), or nil. Like containers/image, the longest
// matching prefix wins, and the first table wins among equal prefixes.
func (c *Config) FindRegistry(name string) *Registry {
	var best *Registry
	for i := range c.Registries {
		r := &c.Registries[i]
		if matchPrefix(name, r.Prefix) < 0 {
			continue
		}
		if best == nil || len(r.Prefix) > len(best.Prefix) {
			best = r
		}
	}
	return best
}

// matchPrefix returns how many bytes of ref the prefix covers, or -1. A
// plain prefix matches at a path boundary: "example.com/foo" matches
// "example.com/foo", "example.com/foo/bar", "example.com/foo:tag" and
// "example.com/foo@sha256:…", never "example.com/foobar". A wildcard
// "*.example.com" matches any subdomain host (not example.com itself) and
// covers that host.
//
// As in containers/image, a host prefix also matches the same host with a
// port ("example.com" covers "example.com:5000/x"), because ':' is a
// boundary; we keep that for compatibility with existing files.
func matchPrefix(ref, prefix string) int {
	if isWildcard(prefix) {
		host, _, _ := strings.Cut(ref, "/")
		hostNoPort := host
		if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
			hostNoPort = host[:i]
		}
		if strings.HasSuffix(hostNoPort, prefix[1:]) && len(hostNoPort) > len(prefix)-1 {
			return len(hostNoPort)
		}
		return -1
	}
	if !strings.HasPrefix(ref, prefix) {
		return -1
	}
	if len(ref) == len(prefix) {
		return len(prefix)
	}
	switch ref[len(prefix)] {
	case '/', ':', '@':
		return len(prefix)
	}
	return -1
}

// Endpoints returns where to pull the repository name from, in order: the
// mirrors that serve this kind of pull, then the primary location. name must
// be a normalised repository name without tag or digest, such as
// "docker.io/library/busybox" (reference.Ref.Name()); byDigest says whether
// the pull is by digest, which decides whether digest-only or tag-only
// mirrors apply. A blocked registry yields a *BlockedError (ErrBlocked) and
// no endpoints, mirrors included: blocking is about the content, not a host.
func (c *Config) Endpoints(name string, byDigest bool) ([]Endpoint, error) {
	named, err := dref.ParseNormalizedNamed(name)
	if err != nil {
		return nil, fmt.Errorf("repository name %q: %w", name, err)
	}
	if !dref.IsNameOnly(named) || named.String() != name {
		return nil, fmt.Errorf("repository name %q: want a normalised name without tag or digest, like %q", name, dref.TrimNamed(named).String())
	}

	reg := c.FindRegistry(name)
	if reg == nil {
		return []Endpoint{c.endpoint(dref.Domain(named), dref.Path(named), false, false)}, nil
	}
	if reg.Blocked {
		return nil, &BlockedError{Name: name, Prefix: reg.Prefix, Source: c.Path}
	}

	var eps []Endpoint
	for _, m := range reg.Mirrors {
		if !mirrorServes(reg, m, byDigest) {
			continue
		}
		ep, err := c.rewrite(name, reg.Prefix, m.Location, m.Insecure, true)
		if err != nil {
			return nil, err
		}
		eps = append(eps, ep)
	}
	primary, err := c.rewrite(name, reg.Prefix, reg.Location, reg.Insecure, false)
	if err != nil {
		return nil, err
	}
	return append(eps, primary), nil
}

// mirrorServes applies mirror-by-digest-only and pull-from-mirror. Tags are
// mutable, so a mirror restricted to digests is never asked for a tag.
func mirrorServes(reg *Registry, m Mirror, byDigest bool) bool {
	if reg.MirrorByDigestOnly {
		return byDigest
	}
	switch m.PullFromMirror {
	case PullFromMirrorDigestOnly:
		return byDigest
	case PullFromMirrorTagOnly:
		return !byDigest
	}
	return true
}

// rewrite replaces the part of name covered by prefix with location.
func (c *Config) rewrite(name, prefix, location string, insecure, mirror bool) (Endpoint, error) {
	n := matchPrefix(name, prefix)
	if n < 0 {
		// FindRegistry matched this prefix, so this is a bug, not bad input.
		return Endpoint{}, fmt.Errorf("internal error: prefix %q does not match %q", prefix, name)
	}
	newName := name
	if location != "" {
		newName = location + name[n:]
	}
	host, repo, _ := strings.Cut(newName, "/")
	if host == "" || repo == "" {
		return Endpoint{}, &FormatError{Path: c.Path, Err: fmt.Errorf("location %q (prefix %q) turns %s into %q, which has no repository path", location, prefix, name, newName)}
	}
	if _, err := dref.WithName(newName); err != nil {
		return Endpoint{}, &FormatError{Path: c.Path, Err: fmt.Errorf("location %q (prefix %q) turns %s into %q: %w", location, prefix, name, newName, err)}
	}
	return c.endpoint(host, repo, insecure, mirror), nil
}

func (c *Config) endpoint(host, repo string, insecure, mirror bool) Endpoint {
	return Endpoint{
		Registry:   host,
		Repository: repo,
		Insecure:   insecure || c.insecure[strings.ToLower(host)],
		Mirror:     mirror,
	}
}
