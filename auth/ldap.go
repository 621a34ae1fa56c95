package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAPConfig configures NewLDAP. The yaml and json names are those of the
// registry config's auth.ldap section; BindPassword is read from
// bindPasswordFile by the caller.
type LDAPConfig struct {
	// URL is ldap://host[:port] or ldaps://host[:port].
	URL string `json:"url" yaml:"url"`
	// StartTLS upgrades an ldap:// connection to TLS before anything is
	// sent. Without it (and without ldaps://), passwords cross the network
	// in clear text; NewLDAP logs a warning unless the host is loopback.
	StartTLS bool `json:"startTLS,omitempty" yaml:"startTLS,omitempty"`
	// CAFile is a PEM bundle of the CAs trusted for the server's
	// certificate. Default: the system roots.
	CAFile string `json:"caFile,omitempty" yaml:"caFile,omitempty"`
	// ServerName is the name the certificate must carry. Default: the
	// host of URL.
	ServerName string `json:"serverName,omitempty" yaml:"serverName,omitempty"`
	// BindDN and BindPassword are the service account that searches.
	// Both empty: searches run anonymously.
	BindDN       string `json:"bindDN,omitempty" yaml:"bindDN,omitempty"`
	BindPassword string `json:"-" yaml:"-"`
	// UserSearch finds the user's entry.
	UserSearch UserSearch `json:"userSearch" yaml:"userSearch"`
	// GroupSearch finds the user's groups by search. Optional when
	// MemberOfAttribute is set.
	GroupSearch GroupSearch `json:"groupSearch,omitempty" yaml:"groupSearch,omitempty"`
	// MemberOfAttribute names the attribute of the user entry listing the
	// DNs of its groups ("memberOf" in Active Directory and with
	// OpenLDAP's memberof overlay). Empty: not used.
	MemberOfAttribute string `json:"memberOfAttribute,omitempty" yaml:"memberOfAttribute,omitempty"`
	// NestingDepth is how many levels of groups inside groups are
	// followed (a cycle stops early). Default 5; negative: none. With
	// Active Directory, the filter
	// (member:1.2.840.113556.1.4.1941:={dn}) does it in one query.
	NestingDepth int `json:"nestingDepth,omitempty" yaml:"nestingDepth,omitempty"`
	// Timeout bounds one login, connecting included. Default 10s.
	Timeout time.Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// PoolSize is the number of connections kept open, and the number of
	// logins that talk to the server at once. Default 4.
	PoolSize int `json:"poolSize,omitempty" yaml:"poolSize,omitempty"`
}

// UserSearch finds a user: Filter with {username} replaced by the escaped
// user name, under BaseDN (whole subtree). It must match one entry.
type UserSearch struct {
	BaseDN string `json:"baseDN" yaml:"baseDN"`
	Filter string `json:"filter" yaml:"filter"`
	// NameAttribute is the attribute whose value becomes the identity's
	// name ("uid", "sAMAccountName"), so that "Alice" logs in as "alice",
	// as the directory spells it and as access rules name it. Default:
	// the attribute the filter compares with {username} when there is one
	// ("(uid={username})": uid); otherwise the name as typed.
	NameAttribute string `json:"nameAttribute,omitempty" yaml:"nameAttribute,omitempty"`
}

// GroupSearch finds the groups of a user: Filter with {dn} replaced by
// the user's DN and {username} by the user name (both escaped), under
// BaseDN. Examples: "(member={dn})", "(uniqueMember={dn})",
// "(memberUid={username})", or an "|" of them.
type GroupSearch struct {
	BaseDN string `json:"baseDN,omitempty" yaml:"baseDN,omitempty"`
	Filter string `json:"filter,omitempty" yaml:"filter,omitempty"`
	// NameAttribute is the attribute holding the group's name. Default "cn".
	NameAttribute string `json:"nameAttribute,omitempty" yaml:"nameAttribute,omitempty"`
	// NestedFilter finds the groups that contain a group, with {dn} the
	// inner group's DN. Default: Filter when it uses {dn} and not
	// {username}; otherwise "(|(member={dn})(uniqueMember={dn}))".
	NestedFilter string `json:"nestedFilter,omitempty" yaml:"nestedFilter,omitempty"`
}

// LDAPOption configures NewLDAP.
type LDAPOption func(*LDAP)

// WithLDAPLogger sends configuration warnings to l. Default: discarded.
func WithLDAPLogger(l *slog.Logger) LDAPOption {
	return func(a *LDAP) {
		if l != nil {
			a.log = l
		}
	}
}

// LDAP authenticates against a directory: service bind, user search with
// the user name escaped, a bind as the user's DN with the password, then
// the groups (search, memberOf, nested) as the service account. It is a
// Lookuper too, for refresh tokens. Safe for concurrent use; Close it to
// drop its connections.
type LDAP struct {
	cfg    LDAPConfig
	url    *url.URL
	tls    *tls.Config
	log    *slog.Logger
	pool   *ldapPool
	nested string // filter for groups containing a group
}

// maxGroups bounds what one login may pull out of the directory.
const maxGroups = 1000

// NewLDAP checks cfg without connecting (Ping does), and returns the
// authenticator. Errors name the setting and the fix.
func NewLDAP(cfg LDAPConfig, opts ...LDAPOption) (*LDAP, error) {
	a := &LDAP{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(a)
	}
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		return nil, errors.New("ldap: no url: set url to ldap://host:port or ldaps://host:port")
	case err != nil:
		return nil, fmt.Errorf("ldap: url %q: %w", cfg.URL, err)
	case u.Scheme != "ldap" && u.Scheme != "ldaps":
		return nil, fmt.Errorf("ldap: url %q: scheme must be ldap or ldaps", cfg.URL)
	case u.Host == "":
		return nil, fmt.Errorf("ldap: url %q has no host", cfg.URL)
	case cfg.StartTLS && u.Scheme == "ldaps":
		return nil, fmt.Errorf("ldap: url %q is already TLS: drop startTLS, or use ldap://", cfg.URL)
	case cfg.UserSearch.BaseDN == "":
		return nil, errors.New("ldap: userSearch.baseDN is empty: set the subtree holding the users, e.g. ou=people,dc=example,dc=org")
	case !strings.Contains(cfg.UserSearch.Filter, "{username}"):
		return nil, fmt.Errorf("ldap: userSearch.filter %q does not contain {username}: write e.g. (uid={username})", cfg.UserSearch.Filter)
	case (cfg.BindDN == "") != (cfg.BindPassword == ""):
		return nil, errors.New("ldap: bindDN and the bind password go together: set both (or neither, for anonymous searches)")
	case cfg.GroupSearch.Filter != "" && cfg.GroupSearch.BaseDN == "":
		return nil, errors.New("ldap: groupSearch.baseDN is empty: set the subtree holding the groups")
	case cfg.GroupSearch.Filter != "" && !strings.Contains(cfg.GroupSearch.Filter, "{dn}") && !strings.Contains(cfg.GroupSearch.Filter, "{username}"):
		return nil, fmt.Errorf("ldap: groupSearch.filter %q uses neither {dn} nor {username}: write e.g. (member={dn})", cfg.GroupSearch.Filter)
	}
	if err := checkFilter(cfg.UserSearch.Filter); err != nil {
		return nil, fmt.Errorf("ldap: userSearch.filter %q: %w", cfg.UserSearch.Filter, err)
	}
	if cfg.GroupSearch.Filter != "" {
		if err := checkFilter(cfg.GroupSearch.Filter); err != nil {
			return nil, fmt.Errorf("ldap: groupSearch.filter %q: %w", cfg.GroupSearch.Filter, err)
		}
	}
	a.url = u
	if a.cfg.UserSearch.NameAttribute == "" {
		a.cfg.UserSearch.NameAttribute = filterAttribute(cfg.UserSearch.Filter)
	}
	if a.cfg.GroupSearch.NameAttribute == "" {
		a.cfg.GroupSearch.NameAttribute = "cn"
	}
	if a.cfg.NestingDepth == 0 {
		a.cfg.NestingDepth = 5
	}
	if a.cfg.Timeout <= 0 {
		a.cfg.Timeout = 10 * time.Second
	}
	if a.cfg.PoolSize <= 0 {
		a.cfg.PoolSize = 4
	}
	switch gs := a.cfg.GroupSearch; {
	case gs.NestedFilter != "":
		a.nested = gs.NestedFilter
	case strings.Contains(gs.Filter, "{dn}") && !strings.Contains(gs.Filter, "{username}"):
		a.nested = gs.Filter
	default:
		a.nested = "(|(member={dn})(uniqueMember={dn}))"
	}
	if err := checkFilter(a.nested); err != nil {
		return nil, fmt.Errorf("ldap: groupSearch.nestedFilter %q: %w", a.nested, err)
	}
	if u.Scheme == "ldaps" || cfg.StartTLS {
		a.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}
		if a.tls.ServerName == "" {
			a.tls.ServerName = u.Hostname()
		}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ldap: caFile: %w", err)
			}
			a.tls.RootCAs = x509.NewCertPool()
			if !a.tls.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ldap: caFile %s holds no PEM certificate", cfg.CAFile)
			}
		}
	} else if ip := net.ParseIP(u.Hostname()); !(ip != nil && ip.IsLoopback()) && u.Hostname() != "localhost" {
		a.log.Warn("LDAP without TLS: passwords cross the network in clear text; use ldaps:// or startTLS: true",
			slog.String("url", cfg.URL))
	}
	a.pool = newLDAPPool(a.cfg.PoolSize, a.dial)
	return a, nil
}

// checkFilter compiles f with its placeholders filled, so a typo in the
// config fails at start instead of at every login.
func checkFilter(f string) error {
	r := strings.NewReplacer("{username}", "x", "{dn}", "cn=x")
	if _, err := ldap.CompileFilter(r.Replace(f)); err != nil {
		return err
	}
	return nil
}

// Close drops the pooled connections. Logins after Close dial anew.
func (a *LDAP) Close() error {
	a.pool.close()
	return nil
}

// Ping connects and binds as the service account: a start-up check that
// the URL, TLS and bind credentials work.
func (a *LDAP) Ping(ctx context.Context) error {
	return a.withConn(ctx, func(c *ldap.Conn) error { return a.serviceBind(c) })
}

// Authenticate implements Authenticator.
func (a *LDAP) Authenticate(ctx context.Context, username, password string) (*Identity, error) {
	if err := checkUsername(username); err != nil {
		return nil, err
	}
	if password == "" {
		// A simple bind with a DN and no password is an "unauthenticated
		// bind": servers that allow it report success without checking
		// anything. Refuse before the directory is asked.
		return nil, fmt.Errorf("ldap: empty password for %q refused: %w", username, ErrInvalidCredentials)
	}
	return a.lookup(ctx, username, func(c *ldap.Conn, entry *ldap.Entry) error {
		if err := c.Bind(entry.DN, password); err != nil {
			if isNetworkError(err) {
				return a.unreachable(err)
			}
			return fmt.Errorf("ldap: bind as %q: %s: %w", entry.DN, ldapMessage(err), ErrInvalidCredentials)
		}
		// Back to the service account: the user may not read groups.
		return a.serviceBind(c)
	})
}

// Lookup implements Lookuper: the user's entry and groups, without a
// password.
func (a *LDAP) Lookup(ctx context.Context, username string) (*Identity, error) {
	if err := checkUsername(username); err != nil {
		return nil, err
	}
	return a.lookup(ctx, username, nil)
}

// lookup binds as the service account, finds username's entry, runs
// check on it when not nil (Authenticate's bind as the user, which leaves
// the connection bound as the service account again), and returns the
// user's identity.
func (a *LDAP) lookup(ctx context.Context, username string, check func(*ldap.Conn, *ldap.Entry) error) (*Identity, error) {
	var id *Identity
	err := a.withConn(ctx, func(c *ldap.Conn) error {
		if err := a.serviceBind(c); err != nil {
			return err
		}
		entry, err := a.findUser(c, username)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(c, entry); err != nil {
				return err
			}
		}
		id, err = a.identity(c, username, entry)
		return err
	})
	return id, err
}

func (a *LDAP) identity(c *ldap.Conn, username string, entry *ldap.Entry) (*Identity, error) {
	name := username
	if attr := a.cfg.UserSearch.NameAttribute; attr != "" {
		if v := entry.GetEqualFoldAttributeValue(attr); v != "" {
			name = v
		}
	}
	groups, err := a.groups(c, username, entry)
	if err != nil {
		return nil, err
	}
	return &Identity{Name: name, Groups: groups, Source: "ldap"}, nil
}

func (a *LDAP) serviceBind(c *ldap.Conn) error {
	var err error
	if a.cfg.BindDN == "" {
		err = c.UnauthenticatedBind("")
	} else {
		err = c.Bind(a.cfg.BindDN, a.cfg.BindPassword)
	}
	switch {
	case err == nil:
		return nil
	case isNetworkError(err):
		return a.unreachable(err)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		return unavailablef(err, "LDAP service bind as %q at %s refused: %s; check bindDN and the bind password file; logins fail until it is fixed",
			a.cfg.BindDN, a.cfg.URL, ldapMessage(err))
	default:
		return unavailablef(err, "LDAP service bind as %q at %s failed: %s; logins fail until it is fixed",
			a.cfg.BindDN, a.cfg.URL, ldapMessage(err))
	}
}

// findUser returns the one entry the user search finds for username.
func (a *LDAP) findUser(c *ldap.Conn, username string) (*ldap.Entry, error) {
	filter := strings.ReplaceAll(a.cfg.UserSearch.Filter, "{username}", ldap.EscapeFilter(username))
	attrs := []string{"1.1"} // no attributes but the DN
	if a.cfg.UserSearch.NameAttribute != "" {
		attrs = append(attrs, a.cfg.UserSearch.NameAttribute)
	}
	if a.cfg.MemberOfAttribute != "" {
		attrs = append(attrs, a.cfg.MemberOfAttribute)
	}
	if len(attrs) > 1 {
		attrs = attrs[1:]
	}
	res, err := c.Search(ldap.NewSearchRequest(a.cfg.UserSearch.BaseDN, ldap.ScopeWholeSubtree, ldap.DerefAlways,
		2, int(a.cfg.Timeout/time.Second), false, filter, attrs, nil))
	switch {
	case err == nil:
	case isNetworkError(err):
		return nil, a.unreachable(err)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		return nil, fmt.Errorf("ldap: user search %s matches several entries for %q: make userSearch.filter match one: %w", filter, username, ErrInvalidCredentials)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return nil, unavailablef(err, "LDAP user search at %s: base %q does not exist; fix userSearch.baseDN", a.cfg.URL, a.cfg.UserSearch.BaseDN)
	default:
		return nil, unavailablef(err, "LDAP user search %s at %s failed: %s", filter, a.cfg.URL, ldapMessage(err))
	}
	switch len(res.Entries) {
	case 0:
		return nil, fmt.Errorf("ldap: no entry matches %s: %w", filter, ErrUnknownUser)
	case 1:
		return res.Entries[0], nil
	default:
		return nil, fmt.Errorf("ldap: user search %s matches %d entries for %q: make userSearch.filter match one: %w", filter, len(res.Entries), username, ErrInvalidCredentials)
	}
}

// groups collects the names of the user's groups: the memberOf values,
// the group search, then the groups containing those, level by level,
// up to NestingDepth, never visiting a group twice.
func (a *LDAP) groups(c *ldap.Conn, username string, user *ldap.Entry) ([]string, error) {
	names := map[string]bool{}
	seen := map[string]bool{} // normalised group DNs
	var frontier []string
	add := func(dn, name string) {
		key := normDN(dn)
		if seen[key] || len(seen) >= maxGroups {
			return
		}
		seen[key] = true
		frontier = append(frontier, dn)
		if name != "" {
			names[name] = true
		}
	}
	nameAttr := a.cfg.GroupSearch.NameAttribute
	var fromMemberOf []string
	if a.cfg.MemberOfAttribute != "" {
		fromMemberOf = user.GetEqualFoldAttributeValues(a.cfg.MemberOfAttribute)
	}
	if err := a.addByDN(c, fromMemberOf, add); err != nil {
		return nil, err
	}
	if gs := a.cfg.GroupSearch; gs.Filter != "" {
		r := strings.NewReplacer("{dn}", ldap.EscapeFilter(user.DN), "{username}", ldap.EscapeFilter(username))
		entries, err := a.search(c, gs.BaseDN, r.Replace(gs.Filter), []string{nameAttr})
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			add(e.DN, e.GetEqualFoldAttributeValue(nameAttr))
		}
	}
	for depth := 0; depth < a.cfg.NestingDepth && len(frontier) > 0; depth++ {
		level := frontier
		frontier = nil
		if a.cfg.GroupSearch.BaseDN != "" {
			// One search per level (in chunks): groups having any group
			// of this level as a member.
			for chunk := range slices.Chunk(level, 50) {
				var b strings.Builder
				b.WriteString("(|")
				for _, dn := range chunk {
					b.WriteString(strings.ReplaceAll(a.nested, "{dn}", ldap.EscapeFilter(dn)))
				}
				b.WriteString(")")
				entries, err := a.search(c, a.cfg.GroupSearch.BaseDN, b.String(), []string{nameAttr})
				if err != nil {
					return nil, err
				}
				for _, e := range entries {
					add(e.DN, e.GetEqualFoldAttributeValue(nameAttr))
				}
			}
		}
		if a.cfg.MemberOfAttribute != "" {
			for _, dn := range level {
				entries, err := a.searchBase(c, dn, []string{a.cfg.MemberOfAttribute})
				if err != nil {
					return nil, err
				}
				for _, e := range entries {
					if err := a.addByDN(c, e.GetEqualFoldAttributeValues(a.cfg.MemberOfAttribute), add); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// addByDN adds groups known by DN (memberOf values). The name is the
// first RDN's value when its type is the name attribute (cn=team-a,...),
// and is read from the entry otherwise.
func (a *LDAP) addByDN(c *ldap.Conn, dns []string, add func(dn, name string)) error {
	nameAttr := a.cfg.GroupSearch.NameAttribute
	for _, dn := range dns {
		parsed, err := ldap.ParseDN(dn)
		if err == nil && len(parsed.RDNs) > 0 && len(parsed.RDNs[0].Attributes) == 1 &&
			strings.EqualFold(parsed.RDNs[0].Attributes[0].Type, nameAttr) {
			add(dn, parsed.RDNs[0].Attributes[0].Value)
			continue
		}
		entries, err := a.searchBase(c, dn, []string{nameAttr})
		if err != nil {
			return err
		}
		for _, e := range entries {
			add(dn, e.GetEqualFoldAttributeValue(nameAttr))
		}
	}
	return nil
}

func (a *LDAP) search(c *ldap.Conn, base, filter string, attrs []string) ([]*ldap.Entry, error) {
	res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.DerefAlways,
		maxGroups, int(a.cfg.Timeout/time.Second), false, filter, attrs, nil))
	switch {
	case err == nil, ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		return res.Entries, nil
	case isNetworkError(err):
		return nil, a.unreachable(err)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return nil, unavailablef(err, "LDAP group search at %s: base %q does not exist, or the service account may not read it; fix groupSearch.baseDN or the directory's access rules",
			a.cfg.URL, base)
	default:
		return nil, unavailablef(err, "LDAP group search %s under %q at %s failed: %s; check groupSearch", filter, base, a.cfg.URL, ldapMessage(err))
	}
}

// searchBase reads one entry; a missing entry (a dangling memberOf) is no
// error, just no group.
func (a *LDAP) searchBase(c *ldap.Conn, dn string, attrs []string) ([]*ldap.Entry, error) {
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		1, int(a.cfg.Timeout/time.Second), false, "(objectClass=*)", attrs, nil))
	switch {
	case err == nil:
		return res.Entries, nil
	case isNetworkError(err):
		return nil, a.unreachable(err)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return nil, nil
	default:
		return nil, unavailablef(err, "LDAP read of group %q at %s failed: %s", dn, a.cfg.URL, ldapMessage(err))
	}
}

func normDN(dn string) string {
	if p, err := ldap.ParseDN(dn); err == nil {
		return strings.ToLower(p.String())
	}
	return strings.ToLower(dn)
}

// withConn runs f on a pooled connection under the login timeout. ctx
// ending closes the connection, which unblocks any request in flight. A
// pooled connection the server has dropped meanwhile shows as a network
// error; f is then retried once on a fresh connection (binds and searches
// are safe to repeat).
func (a *LDAP) withConn(ctx context.Context, f func(*ldap.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		c, reused, err := a.pool.get(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return a.timedOut(ctx, err)
			}
			return a.connectError(err)
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		err = f(c)
		stopped := stop()
		healthy := stopped && (err == nil || !errors.Is(err, ErrUnavailable)) && !c.IsClosing()
		a.pool.put(c, healthy)
		switch {
		case err == nil:
			return nil
		case !stopped:
			return a.timedOut(ctx, err)
		case reused && attempt == 0 && isNetworkError(err):
			continue
		}
		return err
	}
}

func (a *LDAP) dial(ctx context.Context) (*ldap.Conn, error) {
	d := &net.Dialer{Timeout: a.cfg.Timeout}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	opts := []ldap.DialOpt{ldap.DialWithDialer(d)}
	if a.url.Scheme == "ldaps" {
		opts = append(opts, ldap.DialWithTLSConfig(a.tls))
	}
	c, err := ldap.DialURL(a.cfg.URL, opts...)
	if err != nil {
		return nil, err
	}
	c.SetTimeout(a.cfg.Timeout)
	if a.cfg.StartTLS {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		err := c.StartTLS(a.tls)
		if !stop() && err == nil {
			err = ctx.Err()
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("StartTLS: %w", err)
		}
	}
	return c, nil
}

// connectError explains a failed connection: TLS trouble says which
// setting to check, anything else is "unreachable".
func (a *LDAP) connectError(err error) error {
	var (
		unknownCA *x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   *tls.CertificateVerificationError
	)
	switch {
	// go-ldap's StartTLS flattens the handshake error into text, hence
	// the string test next to the typed ones.
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &certErr),
		strings.Contains(err.Error(), "x509: "):
		return unavailablef(err, "LDAP server %s: TLS certificate not trusted: %s; check caFile (and serverName); logins fail until it is fixed",
			a.cfg.URL, ldapMessage(err))
	case a.cfg.StartTLS && strings.Contains(err.Error(), "StartTLS"):
		return unavailablef(err, "LDAP server %s: StartTLS failed: %s; check that the server offers StartTLS, or use ldaps://; logins fail until it is fixed",
			a.cfg.URL, ldapMessage(err))
	}
	return a.unreachable(err)
}

func (a *LDAP) unreachable(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || strings.Contains(ldapMessage(err), "timed out") {
		return unavailablef(err, "LDAP server %s did not answer in time (timeout %s): %s; logins fail until it answers",
			a.cfg.URL, a.cfg.Timeout, ldapMessage(err))
	}
	return unavailablef(err, "LDAP server %s unreachable: %s; logins fail until it is back", a.cfg.URL, ldapMessage(err))
}

func (a *LDAP) timedOut(ctx context.Context, err error) error {
	return unavailablef(errors.Join(ctx.Err(), err), "LDAP server %s did not answer in time (%s): %s; logins fail until it answers",
		a.cfg.URL, context.Cause(ctx), ldapMessage(err))
}

// filterAttribute finds the attribute a user filter compares with
// {username}, as in (uid={username}); "" unless there is exactly one.
func filterAttribute(filter string) string {
	m := usernameAttr().FindAllStringSubmatch(filter, -1)
	if len(m) != 1 {
		return ""
	}
	return m[0][1]
}

// usernameAttr is compiled on first use (NewLDAP), not at package
// initialisation, which every sigil process pays for (container init and
// monitors too).
var usernameAttr = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`\(([A-Za-z][A-Za-z0-9-]*)=\{username\}\)`)
})

func isNetworkError(err error) bool {
	return ldap.IsErrorWithCode(err, ldap.ErrorNetwork)
}

// ldapMessage is the useful part of a go-ldap error: its cause for
// network errors, the result code's name and the server's diagnostic
// otherwise.
func ldapMessage(err error) string {
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode == ldap.ErrorNetwork && le.Err != nil {
		return le.Err.Error()
	}
	return err.Error()
}

// classError is an error of one class (ErrUnavailable...) with its own
// message, keeping its cause for errors.Is/As.
type classError struct {
	class error
	msg   string
	cause error
}

func (e *classError) Error() string   { return e.msg }
func (e *classError) Unwrap() []error { return []error{e.class, e.cause} }

func unavailablef(cause error, format string, args ...any) error {
	return &classError{class: ErrUnavailable, msg: fmt.Sprintf(format, args...), cause: cause}
}

// ldapPool keeps up to size idle connections and lets at most size
// logins use the server at once; the rest wait (bounded by their
// context). Idle connections are reused LIFO-ish through a channel.
type ldapPool struct {
	slots chan struct{}
	idle  chan *ldap.Conn
	dial  func(context.Context) (*ldap.Conn, error)
}

func newLDAPPool(size int, dial func(context.Context) (*ldap.Conn, error)) *ldapPool {
	return &ldapPool{slots: make(chan struct{}, size), idle: make(chan *ldap.Conn, size), dial: dial}
}

func (p *ldapPool) get(ctx context.Context) (c *ldap.Conn, reused bool, err error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	for {
		select {
		case c := <-p.idle:
			if c.IsClosing() {
				continue
			}
			return c, true, nil
		default:
		}
		c, err := p.dial(ctx)
		if err != nil {
			<-p.slots
			return nil, false, err
		}
		return c, false, nil
	}
}

func (p *ldapPool) put(c *ldap.Conn, healthy bool) {
	defer func() { <-p.slots }()
	if healthy && !c.IsClosing() {
		select {
		case p.idle <- c:
			return
		default:
		}
	}
	c.Close()
}

func (p *ldapPool) close() {
	for {
		select {
		case c := <-p.idle:
			c.Close()
		default:
			return
		}
	}
}
