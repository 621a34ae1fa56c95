package config

import (
	"strings"
	"testing"
	"time"
)

// issueExample is the configuration of the registry issue, verbatim: it
// must keep working as written.
const issueExample = `
http:
  addr: 127.0.0.1:5000
  # tls: {certificate: /etc/sigil/tls.crt, key: /etc/sigil/tls.key}
storage:
  filesystem: {rootdirectory: /var/lib/sigil/registry}
auth:
  token: {issuer: sigil, expiration: 5m}
  ldap:
    url: ldap://127.0.0.1:3389        # ldaps://..., or startTLS: true, caFile: ...
    bindDN: cn=reader,dc=example,dc=org
    bindPasswordFile: /etc/sigil/ldap-password
    userSearch: {baseDN: "ou=people,dc=example,dc=org", filter: "(uid={username})"}
    groupSearch: {baseDN: "ou=groups,dc=example,dc=org", filter: "(member={dn})", nameAttribute: cn}
  # htpasswd: {path: /etc/sigil/htpasswd}   # the embedded default without LDAP
access:
  - {repositories: ["team-a/**"], groups: [team-a], actions: [pull, push, delete]}
  - {repositories: ["public/**"], anonymous: true, actions: [pull]}
  - {repositories: ["**"], users: [admin], actions: ["*"]}
signatures:
  policy: /etc/sigil/policy.json
  enforce: ["team-a/**"]
`

func TestParseIssueExample(t *testing.T) {
	t.Parallel()
	c, err := Parse("/etc/sigil/registry.yaml", []byte(issueExample))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"http.addr", c.HTTP.Addr, "127.0.0.1:5000"},
		{"rootdirectory", c.Storage.Filesystem.RootDirectory, "/var/lib/sigil/registry"},
		{"issuer", c.Auth.Token.Issuer, "sigil"},
		{"expiration", c.Auth.Token.Expiration, 5 * time.Minute},
		{"service default", c.Auth.Token.Service, DefaultService},
		{"token key default", c.Auth.Token.Key, "/var/lib/sigil/registry/token.key"},
		{"ldap url", c.Auth.LDAP.URL, "ldap://127.0.0.1:3389"},
		{"bindDN", c.Auth.LDAP.BindDN, "cn=reader,dc=example,dc=org"},
		{"user filter", c.Auth.LDAP.UserSearch.Filter, "(uid={username})"},
		{"group attr", c.Auth.LDAP.GroupSearch.NameAttribute, "cn"},
		{"htpasswd unset with ldap", c.Auth.Htpasswd == nil, true},
		{"rules", len(c.Access), 3},
		{"anonymous", c.Access[1].Anonymous, true},
		{"star action", c.Access[2].Actions[0], "*"},
		{"enforce", c.Sigs.Enforce[0], "team-a/**"},
		{"registry name", c.Sigs.RegistryName, "127.0.0.1:5000"},
		{"delete default", c.Storage.Delete.Enabled, true},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse("/srv/sigil/registry.yaml", []byte(`
http: {addr: "[::1]:5000"}
access: [{repositories: ["**"], users: [admin], actions: ["*"]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Auth.Htpasswd.Path, "/srv/sigil/htpasswd"; got != want {
		t.Errorf("htpasswd default = %q, want %q", got, want)
	}
	if got, want := c.Storage.Filesystem.RootDirectory, DefaultRootDirectory; got != want {
		t.Errorf("rootdirectory default = %q, want %q", got, want)
	}
}

// TestParseErrors: every refusal names the file, the key and the problem.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	const rules = "\naccess: [{repositories: [\"**\"], users: [admin], actions: [\"*\"]}]\n"
	tests := []struct {
		name, yaml string
		want       string // substring of the error
	}{
		{"issue's example", "http: {addr: 127.0.0.1:5000}\nauth:\n  ldap: {url: \"htp://x\", userSearch: {baseDN: a, filter: \"(uid={username})\"}}" + rules,
			`registry.yaml: auth.ldap.url: "htp://x": unsupported scheme; use ldap:// or ldaps://`},
		{"unknown key", "http: {adr: 127.0.0.1:5000}" + rules, `registry.yaml: http.adr: unknown key; known keys here: addr,`},
		{"case typo", "http: {addr: 127.0.0.1:5000}\nauth: {ldap: {URL: ldap://x}}" + rules, `auth.ldap.URL: unknown key; did you mean url?`},
		{"duplicate", "http: {addr: 127.0.0.1:5000}\nhttp: {addr: 127.0.0.1:5001}" + rules, `http: given twice`},
		{"plain http remote", "http: {addr: 0.0.0.0:5000}" + rules, `http.addr: "0.0.0.0:5000": plain HTTP is only allowed on a loopback address`},
		{"plain http all", "http: {addr: \":5000\"}" + rules, `plain HTTP is only allowed on a loopback`},
		{"no addr", "storage: {}" + rules, `http.addr: required`},
		{"tls without key", "http: {addr: 0.0.0.0:443, tls: {certificate: /c}}" + rules, `http.tls.key: required`},
		{"bad duration", "http: {addr: 127.0.0.1:5000}\nauth: {token: {expiration: soon}}" + rules, `auth.token.expiration: "soon": not a duration`},
		{"int duration", "http: {addr: 127.0.0.1:5000}\nauth: {token: {expiration: 300}}" + rules, `auth.token.expiration: "300": not a duration`},
		{"bad bool", "http: {addr: 127.0.0.1:5000}\nauth: {ldap: {startTLS: maybe}}" + rules, `auth.ldap.startTLS: "maybe": not a boolean`},
		{"list expected", "http: {addr: 127.0.0.1:5000}\naccess: {repositories: x}", `access: must be a list`},
		{"unknown action", "http: {addr: 127.0.0.1:5000}\naccess: [{repositories: [\"**\"], users: [a], actions: [pul]}]", `access[0].actions[0]: "pul": unknown action`},
		{"nobody", "http: {addr: 127.0.0.1:5000}\naccess: [{repositories: [\"**\"], actions: [pull]}]", `access[0]: names nobody`},
		{"anonymous push", "http: {addr: 127.0.0.1:5000}\naccess: [{repositories: [\"**\"], anonymous: true, actions: [push]}]", `anonymous users may only be given pull`},
		{"bad pattern", "http: {addr: 127.0.0.1:5000}\naccess: [{repositories: [\"Team/**\"], users: [a], actions: [pull]}]", `access[0].repositories[0]: "Team/**": repository names are lower case`},
		{"no rules", "http: {addr: 127.0.0.1:5000}", `access: no rules`},
		{"enforce without policy", "http: {addr: 127.0.0.1:5000}\nsignatures: {enforce: [\"a/**\"]}" + rules, `signatures.policy: required with signatures.enforce`},
		{"both backends", "http: {addr: 127.0.0.1:5000}\nauth: {htpasswd: {path: /x}, ldap: {url: ldap://127.0.0.1}}" + rules, `auth: both ldap and htpasswd are set`},
		{"filter without username", "http: {addr: 127.0.0.1:5000}\nauth: {ldap: {url: ldap://127.0.0.1, userSearch: {baseDN: a, filter: \"(uid=x)\"}}}" + rules, `auth.ldap.userSearch.filter: "(uid=x)": must contain {username}`},
		{"cleartext ldap", "http: {addr: 127.0.0.1:5000}\nauth: {ldap: {url: ldap://ldap.example.org, userSearch: {baseDN: a, filter: \"(uid={username})\"}}}" + rules, `would send passwords in clear`},
		{"ldaps and starttls", "http: {addr: 127.0.0.1:5000}\nauth: {ldap: {url: ldaps://x, startTLS: true, userSearch: {baseDN: a, filter: \"(uid={username})\"}}}" + rules, `auth.ldap.startTLS: "true": ldaps:// is already TLS`},
		{"two drivers", "http: {addr: 127.0.0.1:5000}\nstorage: {filesystem: {rootdirectory: /x}, s3: {bucket: b}}" + rules, `storage: both filesystem and s3`},
		{"redis cache without redis", "http: {addr: 127.0.0.1:5000}\nstorage: {cache: {blobdescriptor: redis}}" + rules, `storage.cache.blobdescriptor: "redis": needs a redis section`},
		{"not yaml", "http: [", `registry.yaml: not valid YAML`},
		{"empty", "", `registry.yaml: the file is empty`},
		{"version", "version: 0.2\nhttp: {addr: 127.0.0.1:5000}" + rules, `version: "0.2": unsupported version`},
		{"top level list", "- a", `(top level): must be a mapping`},
		{"enforce without a name", "http: {addr: \":443\", tls: {certificate: c, key: k}}\nsignatures: {policy: p, enforce: [\"a/**\"]}" + rules, `signatures.registryName: required with signatures.enforce`},
		{"registry name without dot", "http: {addr: 127.0.0.1:5000}\nsignatures: {registryName: registry}" + rules, `must contain a dot or a port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("registry.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.yaml)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestPattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, repo string
		want          bool
	}{
		{"team-a/**", "team-a/app", true},
		{"team-a/**", "team-a/x/y", true},
		{"team-a/**", "team-a", false},
		{"team-a/**", "team-ab/app", false},
		{"team-a/*", "team-a/x/y", false},
		{"team-a/*", "team-a/x", true},
		{"**", "anything/at/all", true},
		{"*/app", "team/app", true},
		{"public/a?p", "public/app", true},
		{"a.b/c", "aXb/c", false}, // dots are literal
	}
	for _, tt := range tests {
		p, err := CompilePattern(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(tt.repo); got != tt.want {
			t.Errorf("Pattern(%q).Match(%q) = %v, want %v", tt.pattern, tt.repo, got, tt.want)
		}
	}
}
