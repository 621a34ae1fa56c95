package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigil-project/sigil/auth"
	"github.com/sigil-project/sigil/auth/ldaptest"
)

// ldapConfig is the issue's example configuration for srv.
func ldapConfig(srv *ldaptest.Server) auth.LDAPConfig {
	return auth.LDAPConfig{
		URL:          srv.URL,
		BindDN:       srv.BindDN,
		BindPassword: srv.BindPassword,
		UserSearch:   auth.UserSearch{BaseDN: ldaptest.PeopleDN, Filter: "(uid={username})"},
		GroupSearch:  auth.GroupSearch{BaseDN: ldaptest.GroupsDN, Filter: "(member={dn})", NameAttribute: "cn"},
		Timeout:      5 * time.Second,
	}
}

func newLDAP(t *testing.T, cfg auth.LDAPConfig) *auth.LDAP {
	t.Helper()
	a, err := auth.NewLDAP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestLDAPGroups(t *testing.T) {
	srv := ldaptest.StartSlapd(t)
	base := ldapConfig(srv)
	memberOf := base
	memberOf.GroupSearch = auth.GroupSearch{}
	memberOf.MemberOfAttribute = "memberOf"
	allKinds := base
	allKinds.GroupSearch.Filter = "(|(member={dn})(uniqueMember={dn})(memberUid={username}))"
	flat := base
	flat.NestingDepth = -1
	both := allKinds
	both.MemberOfAttribute = "memberOf"

	for _, tc := range []struct {
		name string
		cfg  auth.LDAPConfig
		want map[string][]string
	}{
		{"group search by member, nested", base, map[string][]string{
			ldaptest.Alice: {"team-a"},
			ldaptest.Bob:   {"team-b"},
			ldaptest.Carol: {"team-a", "team-a-contractors"},
			ldaptest.Dave:  {},
			ldaptest.Admin: {"admins"},
		}},
		{"memberOf attribute, nested", memberOf, map[string][]string{
			ldaptest.Alice: {"team-a"},
			ldaptest.Bob:   {"team-b"},
			ldaptest.Carol: {"team-a", "team-a-contractors"},
			ldaptest.Dave:  {},
		}},
		{"member, uniqueMember and memberUid", allKinds, map[string][]string{
			ldaptest.Alice: {"ops", "team-a"},
			ldaptest.Bob:   {"team-b", "web"},
			ldaptest.Carol: {"team-a", "team-a-contractors"},
			ldaptest.Dave:  {},
		}},
		{"search and memberOf together", both, map[string][]string{
			ldaptest.Alice: {"ops", "team-a"},
			ldaptest.Carol: {"team-a", "team-a-contractors"},
		}},
		{"nesting off", flat, map[string][]string{
			ldaptest.Carol: {"team-a-contractors"},
			ldaptest.Alice: {"team-a"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newLDAP(t, tc.cfg)
			for user, want := range tc.want {
				id, err := a.Authenticate(context.Background(), user, ldaptest.Password(user))
				if err != nil {
					t.Errorf("%s: %v", user, err)
					continue
				}
				if id.Name != user || id.Robot || id.Source != "ldap" || !slices.Equal(id.Groups, want) && len(id.Groups)+len(want) > 0 {
					t.Errorf("%s: identity %+v, want groups %q", user, id, want)
				}
				// Lookup (refresh tokens) sees the same, without a password.
				lid, err := a.Lookup(context.Background(), user)
				if err != nil || !slices.Equal(lid.Groups, id.Groups) {
					t.Errorf("Lookup(%s) = %+v, %v; want groups %q", user, lid, err, id.Groups)
				}
			}
		})
	}
}

func TestLDAPRefusals(t *testing.T) {
	srv := ldaptest.StartSlapd(t)
	a := newLDAP(t, ldapConfig(srv))
	ctx := context.Background()

	// Wrong passwords: invalid credentials, and the user is known.
	for _, tc := range []struct{ user, pass string }{
		{ldaptest.Alice, ldaptest.Password(ldaptest.Bob)},
		{ldaptest.Alice, ldaptest.Password(ldaptest.Alice) + " "},
		{ldaptest.Admin, "admin"},
	} {
		id, err := a.Authenticate(ctx, tc.user, tc.pass)
		if id != nil || !errors.Is(err, auth.ErrInvalidCredentials) || errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("Authenticate(%s, wrong) = %v, %v; want ErrInvalidCredentials", tc.user, id, err)
		}
	}

	// Empty password: refused, although this server would accept the
	// unauthenticated bind it amounts to.
	for _, user := range ldaptest.Users {
		if id, err := a.Authenticate(ctx, user, ""); id != nil || !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("Authenticate(%s, \"\") = %v, %v; want ErrInvalidCredentials", user, id, err)
		}
	}

	// Filter injection: never anyone, whatever password is tried. Each
	// name would match somebody if it reached the filter unescaped.
	for _, user := range []string{
		"*",
		")(uid=*",
		"admin)(|(uid=*",
		"alice*",
		"al*ce",
		"*)(uid=*))(|(uid=*",
		"admin)(userPassword=*",
		"*)(|(objectClass=*",
		`\2a`,
		"(uid=admin)",
		"admin\x00",
		" admin", // directories ignore the spaces: admin would be found
		"admin ",
	} {
		for _, pass := range []string{ldaptest.Password(ldaptest.Admin), ldaptest.Password(ldaptest.Alice), "x"} {
			id, err := a.Authenticate(ctx, user, pass)
			if id != nil || !errors.Is(err, auth.ErrUnknownUser) {
				t.Errorf("Authenticate(%q) = %v, %v; want ErrUnknownUser and nobody", user, id, err)
			}
		}
		if id, err := a.Lookup(ctx, user); id != nil || !errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("Lookup(%q) = %v, %v; want ErrUnknownUser", user, id, err)
		}
	}

	// Unknown users.
	if _, err := a.Authenticate(ctx, "mallory", "x"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Errorf("unknown user: %v, want ErrUnknownUser", err)
	}

	// The directory's spelling of the name: by default the attribute of
	// the filter, or the one configured.
	if id, err := a.Authenticate(ctx, "ADMIN", ldaptest.Password(ldaptest.Admin)); err != nil || id.Name != "admin" {
		t.Errorf("ADMIN: %v, %v; want admin, as the directory spells it", id, err)
	}
	cfg := ldapConfig(srv)
	cfg.UserSearch.NameAttribute = "mail"
	if id, err := newLDAP(t, cfg).Authenticate(ctx, "Alice", ldaptest.Password(ldaptest.Alice)); err != nil || id.Name != "alice@example.org" {
		t.Errorf("Alice with nameAttribute mail: %v, %v; want alice@example.org", id, err)
	}

	// A filter matching several users never picks one.
	cfg = ldapConfig(srv)
	cfg.UserSearch.Filter = "(|(uid={username})(objectClass=inetOrgPerson))"
	if id, err := newLDAP(t, cfg).Authenticate(ctx, ldaptest.Alice, ldaptest.Password(ldaptest.Alice)); id != nil || !errors.Is(err, auth.ErrInvalidCredentials) ||
		!strings.Contains(err.Error(), "several entries") {
		t.Errorf("ambiguous filter: %v, %v; want a refusal naming the filter", id, err)
	}
}

// With slapd gone, logins fail closed with a message naming the server,
// the cause and the consequence; when it is back, they work again (the
// pool's dead connections are replaced).
func TestLDAPUnavailable(t *testing.T) {
	srv := ldaptest.StartSlapd(t)
	cfg := ldapConfig(srv)
	cfg.PoolSize = 2
	a := newLDAP(t, cfg)
	ctx := context.Background()
	// Fill the pool.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := a.Authenticate(ctx, ldaptest.Alice, ldaptest.Password(ldaptest.Alice)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	srv.Stop()
	for _, user := range []string{ldaptest.Alice, ldaptest.Admin, "*"} {
		id, err := a.Authenticate(ctx, user, ldaptest.Password(user))
		if id != nil || !errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("%s with slapd stopped: %v, %v; want ErrUnavailable", user, id, err)
		}
		for _, want := range []string{srv.URL, "unreachable", "connection refused", "logins fail until it is back"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	}
	if _, err := a.Lookup(ctx, ldaptest.Alice); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("Lookup with slapd stopped: %v, want ErrUnavailable", err)
	}
	if err := a.Ping(ctx); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("Ping with slapd stopped: %v, want ErrUnavailable", err)
	}
	// An empty password is refused before any connection: the answer
	// does not depend on the server.
	if _, err := a.Authenticate(ctx, ldaptest.Alice, ""); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("empty password with slapd stopped: %v, want ErrInvalidCredentials (refused before LDAP)", err)
	}

	srv.Restart(t)
	for range 3 {
		if _, err := a.Authenticate(ctx, ldaptest.Alice, ldaptest.Password(ldaptest.Alice)); err != nil {
			t.Errorf("after restart: %v", err)
		}
	}
}

func TestLDAPMisconfigured(t *testing.T) {
	srv := ldaptest.StartSlapd(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(*auth.LDAPConfig)
		want []string
	}{
		{"wrong bind password", func(c *auth.LDAPConfig) { c.BindPassword = "nope" },
			[]string{"service bind", ldaptest.ReaderDN, "check bindDN and the bind password file"}},
		{"user base missing", func(c *auth.LDAPConfig) { c.UserSearch.BaseDN = "ou=nobody," + ldaptest.BaseDN },
			[]string{"userSearch.baseDN"}},
		{"anonymous search refused by the server's ACLs", func(c *auth.LDAPConfig) { c.BindDN, c.BindPassword = "", "" },
			nil}, // finds nobody: the directory hides users from anonymous
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ldapConfig(srv)
			tc.edit(&cfg)
			id, err := newLDAP(t, cfg).Authenticate(ctx, ldaptest.Alice, ldaptest.Password(ldaptest.Alice))
			if id != nil {
				t.Fatalf("logged in: %+v", id)
			}
			if tc.want == nil {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if !errors.Is(err, auth.ErrUnavailable) {
				t.Errorf("error %v: want ErrUnavailable", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A server that accepts connections and never answers costs a login its
// timeout, not forever.
func TestLDAPTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	cfg := auth.LDAPConfig{
		URL:    "ldap://" + l.Addr().String(),
		BindDN: "cn=x", BindPassword: "y",
		UserSearch: auth.UserSearch{BaseDN: "dc=x", Filter: "(uid={username})"},
		Timeout:    300 * time.Millisecond,
	}
	a := newLDAP(t, cfg)
	start := time.Now()
	id, err := a.Authenticate(context.Background(), "alice", "pw")
	if id != nil || !errors.Is(err, auth.ErrUnavailable) || !strings.Contains(err.Error(), "did not answer in time") {
		t.Errorf("silent server: %v, %v; want ErrUnavailable saying it did not answer", id, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s with a 300ms timeout", d)
	}
	// The caller's context counts too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	cfg.Timeout = time.Minute
	start = time.Now()
	if _, err := newLDAP(t, cfg).Authenticate(ctx, "alice", "pw"); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("cancelled context: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s with a 100ms context", d)
	}
}

func TestLDAPTLS(t *testing.T) {
	srv := ldaptest.StartSlapd(t, ldaptest.WithTLS())
	wrongCA := writeCA(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		edit     func(*auth.LDAPConfig)
		ok       bool
		wantText string
	}{
		{"StartTLS with the CA", func(c *auth.LDAPConfig) { c.StartTLS, c.CAFile = true, srv.CAFile }, true, ""},
		{"LDAPS with the CA", func(c *auth.LDAPConfig) { c.URL, c.CAFile = srv.LDAPSURL, srv.CAFile }, true, ""},
		{"LDAPS by name", func(c *auth.LDAPConfig) {
			c.URL, c.CAFile = strings.Replace(srv.LDAPSURL, "127.0.0.1", "localhost", 1), srv.CAFile
		}, true, ""},
		{"StartTLS with a wrong CA", func(c *auth.LDAPConfig) { c.StartTLS, c.CAFile = true, wrongCA }, false, "caFile"},
		{"LDAPS with a wrong CA", func(c *auth.LDAPConfig) { c.URL, c.CAFile = srv.LDAPSURL, wrongCA }, false, "caFile"},
		{"LDAPS with the system roots", func(c *auth.LDAPConfig) { c.URL = srv.LDAPSURL }, false, "not trusted"},
		{"LDAPS with a wrong server name", func(c *auth.LDAPConfig) {
			c.URL, c.CAFile, c.ServerName = srv.LDAPSURL, srv.CAFile, "ldap.example.org"
		}, false, "not trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ldapConfig(srv)
			tc.edit(&cfg)
			a := newLDAP(t, cfg)
			id, err := a.Authenticate(ctx, ldaptest.Alice, ldaptest.Password(ldaptest.Alice))
			if tc.ok {
				if err != nil || id == nil || !slices.Equal(id.Groups, []string{"team-a"}) {
					t.Errorf("= %+v, %v; want alice in team-a", id, err)
				}
				return
			}
			if id != nil || !errors.Is(err, auth.ErrUnavailable) || !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("= %+v, %v; want ErrUnavailable mentioning %q", id, err, tc.wantText)
			}
			if err := a.Ping(ctx); !errors.Is(err, auth.ErrUnavailable) {
				t.Errorf("Ping = %v, want ErrUnavailable", err)
			}
		})
	}
}

func writeCA(t *testing.T) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "someone else's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "wrong-ca.crt")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The pool lets PoolSize logins talk to slapd at once; more wait their
// turn and succeed.
func TestLDAPConcurrent(t *testing.T) {
	srv := ldaptest.StartSlapd(t)
	cfg := ldapConfig(srv)
	cfg.PoolSize = 2
	a := newLDAP(t, cfg)
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			user := ldaptest.Users[i%len(ldaptest.Users)]
			pass := ldaptest.Password(user)
			if i%3 == 0 {
				pass += "-wrong"
			}
			id, err := a.Authenticate(context.Background(), user, pass)
			switch {
			case i%3 == 0 && !errors.Is(err, auth.ErrInvalidCredentials):
				t.Errorf("%s wrong password: %v", user, err)
			case i%3 != 0 && (err != nil || id.Name != user):
				t.Errorf("%s: %v, %v", user, id, err)
			}
		})
	}
	wg.Wait()
}

func TestNewLDAPErrors(t *testing.T) {
	good := auth.LDAPConfig{
		URL: "ldap://127.0.0.1:1", BindDN: "cn=r", BindPassword: "p",
		UserSearch:  auth.UserSearch{BaseDN: "dc=x", Filter: "(uid={username})"},
		GroupSearch: auth.GroupSearch{BaseDN: "dc=x", Filter: "(member={dn})"},
	}
	if _, err := auth.NewLDAP(good); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	// The Active Directory example of the README.
	ad := auth.LDAPConfig{
		URL: "ldaps://dc1.corp.example.com", BindDN: "CN=sigil-reader,DC=corp", BindPassword: "p",
		UserSearch: auth.UserSearch{BaseDN: "DC=corp,DC=example,DC=com",
			Filter: "(&(sAMAccountName={username})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))", NameAttribute: "sAMAccountName"},
		GroupSearch:  auth.GroupSearch{BaseDN: "DC=corp,DC=example,DC=com", Filter: "(member:1.2.840.113556.1.4.1941:={dn})", NameAttribute: "cn"},
		NestingDepth: -1,
	}
	if _, err := auth.NewLDAP(ad); err != nil {
		t.Errorf("Active Directory config refused: %v", err)
	}
	for _, tc := range []struct {
		edit func(*auth.LDAPConfig)
		want string
	}{
		{func(c *auth.LDAPConfig) { c.URL = "" }, "no url"},
		{func(c *auth.LDAPConfig) { c.URL = "http://x" }, "scheme must be ldap or ldaps"},
		{func(c *auth.LDAPConfig) { c.URL = "ldap://" }, "has no host"},
		{func(c *auth.LDAPConfig) { c.URL, c.StartTLS = "ldaps://x", true }, "drop startTLS"},
		{func(c *auth.LDAPConfig) { c.UserSearch.BaseDN = "" }, "userSearch.baseDN"},
		{func(c *auth.LDAPConfig) { c.UserSearch.Filter = "(uid=alice)" }, "{username}"},
		{func(c *auth.LDAPConfig) { c.UserSearch.Filter = "(uid={username}" }, "userSearch.filter"},
		{func(c *auth.LDAPConfig) { c.BindPassword = "" }, "go together"},
		{func(c *auth.LDAPConfig) { c.GroupSearch.BaseDN = "" }, "groupSearch.baseDN"},
		{func(c *auth.LDAPConfig) { c.GroupSearch.Filter = "(cn=admins)" }, "neither {dn} nor {username}"},
		{func(c *auth.LDAPConfig) { c.GroupSearch.NestedFilter = "(member={dn}" }, "nestedFilter"},
		{func(c *auth.LDAPConfig) { c.URL, c.CAFile = "ldaps://x", "/nonexistent/ca.pem" }, "caFile"},
	} {
		cfg := good
		tc.edit(&cfg)
		if _, err := auth.NewLDAP(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewLDAP(%+v) = %v, want %q", cfg, err, tc.want)
		}
	}
}

// The whole path with the issue's configuration: LDAP users and groups
// through the token handler to distribution's verifier; robots and a
// break-glass htpasswd account in the chain; slapd stopping.
func TestLDAPTokenEndToEnd(t *testing.T) {
	srv := ldaptest.StartSlapd(t)
	dir, err := auth.NewLDAP(ldapConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	robots := openRobots(t, filepath.Join(t.TempDir(), "robots.json"))
	secret, err := robots.CreateRobot(context.Background(), "ci", []string{"team-a/**"}, []string{"pull"})
	if err != nil {
		t.Fatal(err)
	}
	breakGlass, err := auth.NewHtpasswd(writeHtpasswd(t, map[string]string{"root": "break-glass-pw"}))
	if err != nil {
		t.Fatal(err)
	}
	acl, err := auth.NewACL(append(slices.Clone(issueRules),
		auth.Rule{Repositories: []string{"**"}, Users: []string{"root"}, Actions: []string{"pull"}}))
	if err != nil {
		t.Fatal(err)
	}
	issuer := newIssuer(t, auth.TokenOptions{})
	verifier := distributionVerifier(t, issuer.Issuer(), issuer.Service(), issuer.RootCertBundle())
	logger, logs := newLogger(t)
	e := &tokenEnv{issuer: issuer, verifier: verifier, logs: logs}
	e.srv = newServer(t, issuer.Handler(auth.NewChain(robots, dir, breakGlass), acl, auth.WithLogger(logger)))

	scope := func(s string) string { return url.Values{"scope": {s}, "service": {"registry.test"}}.Encode() }
	for _, tc := range []struct {
		user, pass, repo, action string
		status                   int
		allowed                  bool
	}{
		{ldaptest.Alice, ldaptest.Password(ldaptest.Alice), "team-a/app", "push", 200, true},
		{ldaptest.Carol, ldaptest.Password(ldaptest.Carol), "team-a/app", "delete", 200, true}, // nested group
		{ldaptest.Bob, ldaptest.Password(ldaptest.Bob), "team-a/app", "push", 200, false},
		{ldaptest.Dave, ldaptest.Password(ldaptest.Dave), "team-a/app", "pull", 200, false},
		{ldaptest.Dave, ldaptest.Password(ldaptest.Dave), "public/tools", "pull", 200, true},
		{ldaptest.Admin, ldaptest.Password(ldaptest.Admin), "team-b/x", "delete", 200, true},
		{"robot$ci", secret, "team-a/app", "pull", 200, true},
		{"robot$ci", secret, "team-a/app", "push", 200, false},
		{ldaptest.Alice, "wrong", "team-a/app", "pull", 401, false},
		{ldaptest.Alice, "", "team-a/app", "pull", 401, false},
		{"admin)(|(uid=*", ldaptest.Password(ldaptest.Admin), "team-a/app", "pull", 401, false},
		{"*", ldaptest.Password(ldaptest.Alice), "team-a/app", "pull", 401, false},
		{"alice*", ldaptest.Password(ldaptest.Alice), "team-a/app", "pull", 401, false},
	} {
		r := e.get(t, tc.user, tc.pass, scope("repository:"+tc.repo+":"+tc.action))
		if r.status != tc.status {
			t.Errorf("%q: status %d (%v), want %d", tc.user, r.status, r.body, tc.status)
			continue
		}
		if r.status != 200 {
			continue
		}
		if err := authorize(verifier, r.token, tc.repo, tc.action); (err == nil) != tc.allowed {
			t.Errorf("%q %s %s at distribution: %v, want allowed=%v", tc.user, tc.action, tc.repo, err, tc.allowed)
		}
	}

	// A refresh token for an LDAP user picks up group changes: here, the
	// user is simply looked up again and still in team-a.
	login := e.get(t, ldaptest.Alice, ldaptest.Password(ldaptest.Alice), "service=registry.test&offline_token=true")
	r := e.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {login.refresh}, "scope": {"repository:team-a/app:push"}})
	if r.status != 200 || len(r.access) != 1 {
		t.Errorf("refresh for an LDAP user: %d %v", r.status, r.body)
	}

	srv.Stop()
	r = e.get(t, ldaptest.Alice, ldaptest.Password(ldaptest.Alice), scope("repository:team-a/app:pull"))
	if r.status != 503 || r.token != "" || !strings.Contains(r.body["error_description"].(string), "unreachable") {
		t.Errorf("slapd stopped: %d %v; want 503 saying the server is unreachable, and no token", r.status, r.body)
	}
	for _, u := range []string{"*", ldaptest.Admin, "nobody"} {
		if r := e.get(t, u, "x", ""); r.status == 200 {
			t.Errorf("%q let in with slapd stopped", u)
		}
	}
	if r := e.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {login.refresh}}); r.status != 503 {
		t.Errorf("refresh with slapd stopped: %d, want 503", r.status)
	}
	// Robots and the break-glass account do not need the directory.
	if r := e.get(t, "robot$ci", secret, scope("repository:team-a/app:pull")); r.status != 200 {
		t.Errorf("robot with slapd stopped: %d", r.status)
	}
	if r := e.get(t, "root", "break-glass-pw", scope("repository:team-a/app:pull")); r.status != 200 || len(r.access) != 1 {
		t.Errorf("break-glass account with slapd stopped: %d %v", r.status, r.body)
	}

	for _, s := range []string{ldaptest.Password(ldaptest.Alice), ldaptest.Password(ldaptest.Admin), secret, "break-glass-pw", login.refresh[len(login.refresh)/2:]} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log contains the secret %.12q...", s)
		}
	}
}
