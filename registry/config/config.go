// Package config reads the YAML configuration of `sigil registry serve`.
//
// Parsing is strict: an unknown key, a key given twice or a value of the
// wrong kind rejects the file, and every error names the file, the key path
// and what is wrong, e.g.
//
//	registry.yaml: auth.ldap.url: "htp://x": unsupported scheme; use ldap:// or ldaps://
//
// A misspelt key that silently did nothing would be worst for the keys that
// matter most here (access rules, enforcement patterns, TLS).
//
// Usage (the caller reads the file; this package touches nothing on disk):
//
//	data, err := os.ReadFile(path)
//	cfg, err := config.Parse(path, data)
//	// cfg has defaults applied and has been validated.
//
// Sections the registry hands to distribution unchanged (storage.s3, redis,
// storage.maintenance) are checked by distribution's own code when the
// registry starts.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole file. Zero values mean "use the default" (see
// applyDefaults); Parse returns a Config with defaults filled in.
type Config struct {
	// Version of the file format; 0.1 is the only one so far. Optional.
	Version string      `yaml:"version"`
	HTTP    HTTP        `yaml:"http"`
	Storage Storage     `yaml:"storage"`
	Redis   *yaml.Node  `yaml:"redis"` // distribution's redis section, verbatim
	Auth    Auth        `yaml:"auth"`
	Access  []Rule      `yaml:"access"`
	Sigs    Signatures  `yaml:"signatures"`
	Audit   Audit       `yaml:"audit"`
	Log     Log         `yaml:"log"`
	Catalog CatalogConf `yaml:"catalog"`
	// Validation is distribution's manifest validation.
	Validation Validation `yaml:"validation"`
}

// Validation configures which manifests pushes may store.
type Validation struct {
	Manifests ManifestValidation `yaml:"manifests"`
}

// ManifestValidation: URLs are the external locations non-distributable
// ("foreign") layers may name. Default: any https:// URL, as the OCI
// spec allows such layers (Windows base images use them) and clients
// check their digests; deny: [".*"] refuses them all, as distribution
// does by default.
type ManifestValidation struct {
	URLs URLRules `yaml:"urls"`
}

// URLRules are regular expressions a layer URL must match (Allow) and
// must not match (Deny).
type URLRules struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

// HTTP is the listener.
type HTTP struct {
	// Addr is host:port. Without TLS it must be a loopback address.
	Addr string `yaml:"addr"`
	// Host is the URL clients reach the registry at, when that differs
	// from what they send in Host (a proxy in front). It also makes the
	// token realm absolute: Host + "/auth/token".
	Host string `yaml:"host"`
	TLS  *TLS   `yaml:"tls"`
	// SecretFile holds the secret that signs upload state. Replicas
	// behind one load balancer must share it; a single process may leave
	// it empty (a random one is made at start).
	SecretFile string `yaml:"secretFile"`
	// DrainTimeout is how long a stopping server waits for requests in
	// flight. Default 30s.
	DrainTimeout time.Duration `yaml:"drainTimeout"`
}

// TLS is the server certificate.
type TLS struct {
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
	// ClientCAs, when set, makes the server ask for client certificates
	// signed by one of these CAs (mutual TLS).
	ClientCAs []string `yaml:"clientCAs"`
	// MinimumTLS is "tls1.2" (default) or "tls1.3".
	MinimumTLS string `yaml:"minimumTLS"`
}

// Storage is where blobs and manifests live. Exactly one driver.
type Storage struct {
	Filesystem *Filesystem `yaml:"filesystem"`
	// S3 holds distribution's s3 driver parameters, passed through
	// unchanged (region, bucket, accesskey, secretkey, regionendpoint,
	// rootdirectory, ...).
	S3 map[string]any `yaml:"s3"`
	// Cache is distribution's blob descriptor cache: {blobdescriptor:
	// inmemory} or {blobdescriptor: redis} (then the redis section is needed).
	Cache map[string]any `yaml:"cache"`
	// Delete enables deleting manifests and blobs through the API (still
	// subject to the delete action of the access rules). Default true.
	Delete *Delete `yaml:"delete"`
	// Maintenance is distribution's maintenance section (uploadpurging,
	// readonly), passed through.
	Maintenance map[string]any `yaml:"maintenance"`
	// Redirect is distribution's redirect section ({disable: true} keeps
	// blob downloads going through the registry instead of presigned URLs).
	Redirect map[string]any `yaml:"redirect"`
}

// Filesystem is the filesystem driver.
type Filesystem struct {
	RootDirectory string `yaml:"rootdirectory"`
}

// Delete switches API deletes.
type Delete struct {
	Enabled bool `yaml:"enabled"`
}

// Auth configures who may sign in and how tokens are issued.
type Auth struct {
	Token    Token     `yaml:"token"`
	LDAP     *LDAP     `yaml:"ldap"`
	Htpasswd *Htpasswd `yaml:"htpasswd"`
	Robots   Robots    `yaml:"robots"`
	// RateLimit limits failed logins per user and per client address.
	RateLimit RateLimit `yaml:"rateLimit"`
}

// Token configures the Docker token issuer at /auth/token.
type Token struct {
	Issuer string `yaml:"issuer"`
	// Service is the audience of the tokens, the "service" of the Bearer
	// challenge. Default "sigil-registry".
	Service    string        `yaml:"service"`
	Expiration time.Duration `yaml:"expiration"`
	// Key is the PEM file of the key that signs tokens; created when
	// missing. Replicas must share it. Default: token.key in the
	// filesystem storage root.
	Key string `yaml:"key"`
}

// LDAP is the directory users sign in against (package auth's
// LDAPConfig, with the bind password read from a file).
type LDAP struct {
	URL      string `yaml:"url"`
	StartTLS bool   `yaml:"startTLS"`
	CAFile   string `yaml:"caFile"`
	// ServerName is the name the server certificate must carry. Default:
	// the host of url.
	ServerName       string      `yaml:"serverName"`
	BindDN           string      `yaml:"bindDN"`
	BindPasswordFile string      `yaml:"bindPasswordFile"`
	UserSearch       UserSearch  `yaml:"userSearch"`
	GroupSearch      GroupSearch `yaml:"groupSearch"`
	// MemberOfAttribute names the user attribute listing group DNs
	// ("memberOf": Active Directory, OpenLDAP's memberof overlay).
	MemberOfAttribute string `yaml:"memberOfAttribute"`
	// NestingDepth is how many levels of groups in groups are followed.
	// Default 5; negative: none.
	NestingDepth int           `yaml:"nestingDepth"`
	Timeout      time.Duration `yaml:"timeout"`
	PoolSize     int           `yaml:"poolSize"`
}

// UserSearch finds the user's entry; {username} is replaced by the escaped
// user name.
type UserSearch struct {
	BaseDN string `yaml:"baseDN"`
	Filter string `yaml:"filter"`
	// NameAttribute, when set, is the attribute whose value becomes the
	// user's name as the directory spells it ("uid", "sAMAccountName").
	NameAttribute string `yaml:"nameAttribute"`
}

// GroupSearch finds the user's groups; {dn} and {username} are replaced by
// escaped values.
type GroupSearch struct {
	BaseDN        string `yaml:"baseDN"`
	Filter        string `yaml:"filter"`
	NameAttribute string `yaml:"nameAttribute"`
	// NestedFilter finds the groups containing a group ({dn}).
	NestedFilter string `yaml:"nestedFilter"`
}

// Htpasswd is a bcrypt htpasswd file, the default without LDAP.
type Htpasswd struct {
	Path string `yaml:"path"`
}

// Robots is where robot accounts are kept.
type Robots struct {
	// Path of the robot store. Default: robots.json in the filesystem
	// storage root.
	Path string `yaml:"path"`
}

// RateLimit bounds failed logins: a token bucket per user name and per
// client address. Zero values take package auth's defaults (per user 10
// at once then one per 30s; per address 30 then one per 10s).
type RateLimit struct {
	PerUser    Limit `yaml:"perUser"`
	PerAddress Limit `yaml:"perAddress"`
	// Disabled turns rate limiting off (tests and benchmarks only).
	Disabled bool `yaml:"disabled"`
}

// Limit is one token bucket: Burst failures at once, one more per Every.
type Limit struct {
	Burst int           `yaml:"burst"`
	Every time.Duration `yaml:"every"`
}

// Rule is one access rule: the principals it names get Actions on the
// repositories matching any of Repositories ("team-a/**": everything below
// team-a; "*" one path segment).
type Rule struct {
	Repositories []string `yaml:"repositories"`
	Groups       []string `yaml:"groups"`
	Users        []string `yaml:"users"`
	Robots       []string `yaml:"robots"`
	Anonymous    bool     `yaml:"anonymous"`
	Actions      []string `yaml:"actions"`
}

// Signatures configures enforcement of the trust policy on pulls.
type Signatures struct {
	// Policy is the containers-policy.json the runtime uses too.
	Policy string `yaml:"policy"`
	// Enforce lists repository patterns in which manifests that fail the
	// policy cannot be pulled.
	Enforce []string `yaml:"enforce"`
	// RegistryName is the host[:port] images are judged under: repository
	// team-a/app is checked as RegistryName/team-a/app, the name clients
	// pull it by, so policy scopes and signed identities match. Default:
	// the host of http.host, else http.addr. Never the request's Host
	// header, which a client could pick to land in a laxer scope.
	RegistryName string `yaml:"registryName"`
}

// Audit configures the audit log.
type Audit struct {
	// Path of the JSON-lines file; "-" is standard output. Empty: no audit
	// log (a warning at start).
	Path string `yaml:"path"`
}

// Log configures the process log (not the audit log).
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// CatalogConf bounds /v2/_catalog.
type CatalogConf struct {
	MaxEntries int `yaml:"maxEntries"` // default 1000
}

// Defaults used when a key is absent.
const (
	DefaultRootDirectory = "/var/lib/sigil/registry"
	DefaultIssuer        = "sigil"
	DefaultService       = "sigil-registry"
	DefaultExpiration    = 5 * time.Minute
	DefaultDrainTimeout  = 30 * time.Second
	DefaultLDAPTimeout   = 10 * time.Second
	// DefaultLayerURLs is the pattern foreign layer URLs must match.
	DefaultLayerURLs = "^https://"
)

// Actions the access rules know.
var knownActions = map[string]bool{"pull": true, "push": true, "delete": true, "*": true}

// fieldError is one problem with one key.
type fieldError struct {
	Key   string
	Value string // shown quoted when set
	Msg   string
	Line  int // when known (syntax errors)
}

func (e *fieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Key)
	b.WriteString(": ")
	if e.Value != "" {
		fmt.Fprintf(&b, "%q: ", e.Value)
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// Error is what Parse returns: the file and its problems, one a line.
type Error struct {
	File     string
	Problems []error
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = e.File + ": " + p.Error()
	}
	return strings.Join(lines, "\n")
}

func (e *Error) Unwrap() []error { return e.Problems }

// Parse decodes, fills defaults into and validates the configuration in
// data; file names it in errors. The result is ready to use.
func Parse(file string, data []byte) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Problems: []error{errors.New("the file is empty; see Documentation/registry.md for an example")}}
		}
		return nil, &Error{File: file, Problems: []error{fmt.Errorf("not valid YAML: %w", err)}}
	}
	var cfg Config
	if err := decodeStrict(&doc, reflect.ValueOf(&cfg).Elem(), ""); err != nil {
		return nil, &Error{File: file, Problems: []error{err}}
	}
	cfg.applyDefaults(file)
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, &Error{File: file, Problems: errs}
	}
	return &cfg, nil
}

// applyDefaults fills absent keys. Relative paths are taken relative to the
// configuration file, as an operator reading the file would expect.
func (c *Config) applyDefaults(file string) {
	base := filepath.Dir(file)
	rel := func(p *string) {
		if *p != "" && *p != "-" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	if c.Storage.Filesystem == nil && c.Storage.S3 == nil {
		c.Storage.Filesystem = &Filesystem{}
	}
	if fs := c.Storage.Filesystem; fs != nil {
		if fs.RootDirectory == "" {
			fs.RootDirectory = DefaultRootDirectory
		}
		rel(&fs.RootDirectory)
	}
	if c.Storage.Delete == nil {
		c.Storage.Delete = &Delete{Enabled: true}
	}
	if c.HTTP.DrainTimeout == 0 {
		c.HTTP.DrainTimeout = DefaultDrainTimeout
	}
	if c.HTTP.TLS != nil {
		rel(&c.HTTP.TLS.Certificate)
		rel(&c.HTTP.TLS.Key)
		for i := range c.HTTP.TLS.ClientCAs {
			rel(&c.HTTP.TLS.ClientCAs[i])
		}
		if c.HTTP.TLS.MinimumTLS == "" {
			c.HTTP.TLS.MinimumTLS = "tls1.2"
		}
	}
	rel(&c.HTTP.SecretFile)
	t := &c.Auth.Token
	if t.Issuer == "" {
		t.Issuer = DefaultIssuer
	}
	if t.Service == "" {
		t.Service = DefaultService
	}
	if t.Expiration == 0 {
		t.Expiration = DefaultExpiration
	}
	if t.Key == "" && c.Storage.Filesystem != nil {
		t.Key = filepath.Join(c.Storage.Filesystem.RootDirectory, "token.key")
	}
	rel(&t.Key)
	if c.Auth.LDAP == nil && c.Auth.Htpasswd == nil {
		// The embedded default for a first start: an htpasswd file next
		// to the configuration.
		c.Auth.Htpasswd = &Htpasswd{Path: "htpasswd"}
	}
	if h := c.Auth.Htpasswd; h != nil {
		rel(&h.Path)
	}
	if l := c.Auth.LDAP; l != nil {
		rel(&l.CAFile)
		rel(&l.BindPasswordFile)
		if l.Timeout == 0 {
			l.Timeout = DefaultLDAPTimeout
		}
	}
	if c.Auth.Robots.Path == "" && c.Storage.Filesystem != nil {
		c.Auth.Robots.Path = filepath.Join(c.Storage.Filesystem.RootDirectory, "robots.json")
	}
	rel(&c.Auth.Robots.Path)
	rel(&c.Sigs.Policy)
	if c.Sigs.RegistryName == "" {
		c.Sigs.RegistryName = c.defaultRegistryName()
	}
	rel(&c.Audit.Path)
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Catalog.MaxEntries == 0 {
		c.Catalog.MaxEntries = 1000
	}
	if u := &c.Validation.Manifests.URLs; len(u.Allow) == 0 && len(u.Deny) == 0 {
		u.Allow = []string{DefaultLayerURLs}
	}
}

func (c *Config) defaultRegistryName() string {
	if u, err := url.Parse(c.HTTP.Host); err == nil && u.Host != "" {
		return u.Host
	}
	host, _, err := net.SplitHostPort(c.HTTP.Addr)
	if err != nil || host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		return "" // ":443", "0.0.0.0:443": not a name anyone pulls by
	}
	return c.HTTP.Addr
}

// Validate checks the configuration without touching the host (files are
// opened when the registry starts). It returns every problem found.
func (c *Config) Validate() []error {
	var errs []error
	bad := func(key, value, msg string) {
		errs = append(errs, &fieldError{Key: key, Value: value, Msg: msg})
	}

	if c.Version != "" && c.Version != "0.1" {
		bad("version", c.Version, "unsupported version; this sigil reads 0.1")
	}

	// http
	host, port, err := net.SplitHostPort(c.HTTP.Addr)
	switch {
	case c.HTTP.Addr == "":
		bad("http.addr", "", "required; e.g. 127.0.0.1:5000")
	case err != nil:
		bad("http.addr", c.HTTP.Addr, "not host:port; e.g. 127.0.0.1:5000 or :443")
	case port == "":
		bad("http.addr", c.HTTP.Addr, "port missing; e.g. 127.0.0.1:5000")
	case c.HTTP.TLS == nil && !IsLoopback(host):
		bad("http.addr", c.HTTP.Addr, "plain HTTP is only allowed on a loopback address (127.0.0.1, ::1, localhost); set http.tls.certificate and http.tls.key, or listen on 127.0.0.1 behind a TLS proxy")
	}
	if c.HTTP.Host != "" {
		if u, err := url.Parse(c.HTTP.Host); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("http.host", c.HTTP.Host, "must be an absolute URL such as https://registry.example.com")
		}
	}
	if tls := c.HTTP.TLS; tls != nil {
		if tls.Certificate == "" {
			bad("http.tls.certificate", "", "required with http.tls; the PEM certificate (chain) file")
		}
		if tls.Key == "" {
			bad("http.tls.key", "", "required with http.tls; the PEM private key file")
		}
		if tls.MinimumTLS != "tls1.2" && tls.MinimumTLS != "tls1.3" {
			bad("http.tls.minimumTLS", tls.MinimumTLS, "use tls1.2 or tls1.3")
		}
	}
	if c.HTTP.DrainTimeout < 0 {
		bad("http.drainTimeout", c.HTTP.DrainTimeout.String(), "must not be negative")
	}

	// storage
	switch {
	case c.Storage.Filesystem != nil && c.Storage.S3 != nil:
		bad("storage", "", "both filesystem and s3 are set; keep one driver")
	case c.Storage.Filesystem != nil && !filepath.IsAbs(c.Storage.Filesystem.RootDirectory):
		bad("storage.filesystem.rootdirectory", c.Storage.Filesystem.RootDirectory, "must be an absolute path")
	}
	if c.Storage.S3 != nil {
		if c.Auth.Token.Key == "" {
			bad("auth.token.key", "", "required with s3 storage: every replica must sign tokens with the same key file")
		}
		if c.Auth.Robots.Path == "" {
			bad("auth.robots.path", "", "required with s3 storage: the file robot accounts are kept in")
		}
	}
	if v, ok := c.Storage.Cache["blobdescriptor"]; ok {
		switch v {
		case "inmemory":
		case "redis":
			if c.Redis == nil {
				bad("storage.cache.blobdescriptor", "redis", "needs a redis section (addrs: [host:6379], ...)")
			}
		default:
			bad("storage.cache.blobdescriptor", fmt.Sprint(v), "use inmemory or redis")
		}
	}

	// auth
	t := c.Auth.Token
	if strings.ContainsAny(t.Issuer, " \t\"") {
		bad("auth.token.issuer", t.Issuer, "must not contain spaces or quotes")
	}
	if strings.ContainsAny(t.Service, " \t\"") {
		bad("auth.token.service", t.Service, "must not contain spaces or quotes")
	}
	if t.Expiration < 10*time.Second || t.Expiration > 24*time.Hour {
		bad("auth.token.expiration", t.Expiration.String(), "must be between 10s and 24h; clients fetch a new token when it runs out")
	}
	switch {
	case c.Auth.LDAP != nil && c.Auth.Htpasswd != nil:
		bad("auth", "", "both ldap and htpasswd are set; keep one")
	case c.Auth.LDAP != nil:
		errs = append(errs, c.Auth.LDAP.validate()...)
	case c.Auth.Htpasswd != nil && c.Auth.Htpasswd.Path == "":
		bad("auth.htpasswd.path", "", "required: the bcrypt htpasswd file (htpasswd -B -c FILE USER)")
	}
	for key, l := range map[string]Limit{"perUser": c.Auth.RateLimit.PerUser, "perAddress": c.Auth.RateLimit.PerAddress} {
		if l.Burst < 0 || l.Every < 0 {
			bad("auth.rateLimit."+key, "", "burst and every must not be negative")
		}
	}

	// access
	if len(c.Access) == 0 {
		bad("access", "", "no rules: nobody could push or pull; add at least one rule, e.g. {repositories: [\"**\"], users: [admin], actions: [\"*\"]}")
	}
	for i, r := range c.Access {
		key := fmt.Sprintf("access[%d]", i)
		if len(r.Repositories) == 0 {
			bad(key+".repositories", "", "required: the repository patterns the rule covers, e.g. [\"team-a/**\"]")
		}
		for j, p := range r.Repositories {
			if err := ValidatePattern(p); err != nil {
				bad(fmt.Sprintf("%s.repositories[%d]", key, j), p, err.Error())
			}
		}
		if len(r.Groups)+len(r.Users)+len(r.Robots) == 0 && !r.Anonymous {
			bad(key, "", "names nobody; set groups, users, robots or anonymous: true")
		}
		if len(r.Actions) == 0 {
			bad(key+".actions", "", "required: any of pull, push, delete, \"*\"")
		}
		for j, a := range r.Actions {
			if !knownActions[a] {
				bad(fmt.Sprintf("%s.actions[%d]", key, j), a, "unknown action; use pull, push, delete or \"*\"")
			}
			if r.Anonymous && a != "pull" {
				bad(fmt.Sprintf("%s.actions[%d]", key, j), a, "anonymous users may only be given pull")
			}
		}
	}

	// signatures
	if len(c.Sigs.Enforce) > 0 && c.Sigs.Policy == "" {
		bad("signatures.policy", "", "required with signatures.enforce: the containers-policy.json to judge images by")
	}
	for j, p := range c.Sigs.Enforce {
		if err := ValidatePattern(p); err != nil {
			bad(fmt.Sprintf("signatures.enforce[%d]", j), p, err.Error())
		}
	}
	if len(c.Sigs.Enforce) > 0 && c.Sigs.RegistryName == "" {
		bad("signatures.registryName", "", "required with signatures.enforce when neither http.host nor http.addr names the registry: the host[:port] clients pull by, e.g. registry.example.org")
	}
	if n := c.Sigs.RegistryName; n != "" {
		host := n
		if h, _, err := net.SplitHostPort(n); err == nil {
			host = h
		}
		switch {
		case strings.ContainsAny(host, "/@ ") || host == "":
			bad("signatures.registryName", n, "must be host or host:port, the name clients pull by")
		case !strings.ContainsAny(n, ".:") && n != "localhost":
			// docker's rule: "registry/team/app" would mean docker.io.
			bad("signatures.registryName", n, "must contain a dot or a port (or be localhost), or image names would be read as docker.io/...")
		}
	}

	// log
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", c.Log.Level, "use debug, info, warn or error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", c.Log.Format, "use text or json")
	}
	for key, list := range map[string][]string{"allow": c.Validation.Manifests.URLs.Allow, "deny": c.Validation.Manifests.URLs.Deny} {
		for j, re := range list {
			if _, err := regexp.Compile(re); err != nil {
				bad(fmt.Sprintf("validation.manifests.urls.%s[%d]", key, j), re, "not a regular expression: "+err.Error())
			}
		}
	}
	if c.Catalog.MaxEntries < 0 {
		bad("catalog.maxEntries", fmt.Sprint(c.Catalog.MaxEntries), "must not be negative")
	}
	return errs
}

func (l *LDAP) validate() []error {
	var errs []error
	bad := func(key, value, msg string) {
		errs = append(errs, &fieldError{Key: "auth.ldap." + key, Value: value, Msg: msg})
	}
	u, err := url.Parse(l.URL)
	switch {
	case l.URL == "":
		bad("url", "", "required; e.g. ldaps://ldap.example.org or ldap://127.0.0.1:389")
	case err != nil:
		bad("url", l.URL, "not a URL; e.g. ldaps://ldap.example.org")
	case u.Scheme != "ldap" && u.Scheme != "ldaps":
		bad("url", l.URL, "unsupported scheme; use ldap:// or ldaps://")
	case u.Host == "":
		bad("url", l.URL, "host missing; e.g. ldap://127.0.0.1:389")
	case u.Scheme == "ldaps" && l.StartTLS:
		bad("startTLS", "true", "ldaps:// is already TLS; drop startTLS or use ldap://")
	case u.Scheme == "ldap" && !l.StartTLS && !IsLoopback(u.Hostname()):
		bad("url", l.URL, "plain LDAP to a remote server would send passwords in clear; use ldaps:// or set startTLS: true")
	}
	if l.CAFile != "" && u != nil && u.Scheme == "ldap" && !l.StartTLS {
		bad("caFile", l.CAFile, "only used with ldaps:// or startTLS: true")
	}
	if l.BindDN != "" && l.BindPasswordFile == "" {
		bad("bindPasswordFile", "", "required with bindDN: the file holding the service account's password")
	}
	if l.UserSearch.BaseDN == "" {
		bad("userSearch.baseDN", "", "required; e.g. ou=people,dc=example,dc=org")
	}
	switch f := l.UserSearch.Filter; {
	case f == "":
		bad("userSearch.filter", "", "required; e.g. (uid={username})")
	case !strings.Contains(f, "{username}"):
		bad("userSearch.filter", f, "must contain {username}")
	case !balancedParens(f):
		bad("userSearch.filter", f, "parentheses do not balance")
	}
	if g := l.GroupSearch; g != (GroupSearch{}) {
		if g.BaseDN == "" {
			bad("groupSearch.baseDN", "", "required; e.g. ou=groups,dc=example,dc=org")
		}
		switch f := g.Filter; {
		case f == "":
			bad("groupSearch.filter", "", "required; e.g. (member={dn}) or (memberUid={username})")
		case !strings.Contains(f, "{dn}") && !strings.Contains(f, "{username}"):
			bad("groupSearch.filter", f, "must contain {dn} or {username}")
		case !balancedParens(f):
			bad("groupSearch.filter", f, "parentheses do not balance")
		}
	} else if l.MemberOfAttribute == "" {
		bad("groupSearch", "", "set groupSearch or memberOfAttribute: without either no user has a group, and group rules match nobody")
	}
	if l.Timeout < 0 {
		bad("timeout", l.Timeout.String(), "must not be negative")
	}
	if l.PoolSize < 0 {
		bad("poolSize", fmt.Sprint(l.PoolSize), "must not be negative")
	}
	return errs
}

func balancedParens(s string) bool {
	depth := 0
	for _, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}

// IsLoopback reports whether host (a name or an address, no port) is
// loopback: 127.0.0.0/8, ::1 or "localhost".
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
