// Package auth decides who a registry client is and what it may do: it
// checks passwords (LDAP, htpasswd, robot accounts), maps identities to
// repository actions (ACL), and issues the short-lived JWTs of the Docker
// registry token flow that distribution's token access controller accepts.
//
// The pieces, from the outside in:
//
//   - TokenIssuer.Handler serves the token endpoint (GET with basic auth,
//     POST with the OAuth2 password and refresh_token grants), rate-limits
//     failed logins per user and per client address, and never logs a
//     secret.
//   - An Authenticator checks a user name and password and returns an
//     Identity: NewLDAP, NewHtpasswd, OpenRobots, combined with NewChain.
//   - ACL turns an Identity and a repository into granted actions.
//
// A registry wires them like this (reading files and flags is the caller's
// job; this package takes typed options):
//
//	robots, err := auth.OpenRobots("/var/lib/sigil/registry/robots.json")
//	dir, err := auth.NewLDAP(auth.LDAPConfig{
//		URL:          "ldaps://ldap.example.org",
//		BindDN:       "cn=reader,dc=example,dc=org",
//		BindPassword: password, // read from bindPasswordFile by the caller
//		UserSearch:   auth.UserSearch{BaseDN: "ou=people,dc=example,dc=org", Filter: "(uid={username})"},
//		GroupSearch:  auth.GroupSearch{BaseDN: "ou=groups,dc=example,dc=org", Filter: "(member={dn})", NameAttribute: "cn"},
//	})
//	acl, err := auth.NewACL([]auth.Rule{
//		{Repositories: []string{"team-a/**"}, Groups: []string{"team-a"}, Actions: []string{"pull", "push", "delete"}},
//		{Repositories: []string{"public/**"}, Anonymous: true, Actions: []string{"pull"}},
//	})
//	issuer, err := auth.NewTokenIssuer(auth.TokenOptions{
//		Issuer: "sigil", Service: "registry.example.org", KeyFile: "/var/lib/sigil/registry/token.key",
//	})
//	chain := auth.NewChain(robots, dir) // robots first: they own "robot$..." names
//	mux.Handle("/auth/token", issuer.Handler(chain, acl, auth.WithLogger(logger)))
//	// distribution's token auth: realm=https://registry.example.org/auth/token,
//	// service=issuer.Service(), issuer=issuer.Issuer(),
//	// rootcertbundle=issuer.RootCertBundle() (or jwks=issuer.JWKSFile())
//
// Behind distribution, a request carries only the token's subject
// (Identity.Subject: the user name, "robot$NAME", or "" for anonymous).
// Where the registry needs the whole identity (groups, to filter the
// catalog with ACL.FilterCatalog), it asks the same chain:
// chain.Lookup(ctx, subject), and uses nil for "".
//
// Errors follow one contract: every Authenticator returns an error that
// errors.Is one of ErrInvalidCredentials (the client's fault: wrong name or
// password; ErrUnknownUser is the subset where the name is not known at
// all), ErrUnavailable (the backend cannot answer: fail closed, nobody is
// let in) or ErrRateLimited (see RateLimitError). The message names the
// backend, the cause and the fix; the handler sends clients only a generic
// text for credential errors, so it never tells which user names exist.
package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error classes. Every error returned by an Authenticator in this package
// wraps exactly one of them.
var (
	// ErrInvalidCredentials: the user name or the password is wrong, or the
	// account may not log in. The client should retry with other credentials.
	ErrInvalidCredentials = errors.New("invalid username or password")
	// ErrUnknownUser: the backend does not know the user name at all. It is
	// also an ErrInvalidCredentials; a Chain uses the difference to try the
	// next backend only for names the previous one does not own.
	ErrUnknownUser = fmt.Errorf("unknown user: %w", ErrInvalidCredentials)
	// ErrUnavailable: the backend cannot decide (directory down,
	// misconfigured service account, unreadable file). Nobody is let in
	// until it is back.
	ErrUnavailable = errors.New("authentication backend unavailable")
	// ErrRateLimited: too many failed logins; errors.As a *RateLimitError
	// for when to retry.
	ErrRateLimited = errors.New("too many failed logins")
)

// Identity is who a request is: a directory user, a robot account, or
// nobody (anonymous is a nil *Identity).
type Identity struct {
	// Name is the user name as the backend spells it (for robots, the
	// robot's name without the RobotPrefix).
	Name string
	// Groups are the names of the groups the user is in, nested ones
	// included, sorted. Robots have none.
	Groups []string
	// Robot is set for robot accounts; access rules name robots separately
	// from users (Rule.Robots), so a robot called "admin" is not the user
	// "admin".
	Robot bool
	// Source names the backend that vouched for the identity ("ldap",
	// "htpasswd", "robot"). A refresh token is only honoured by the same
	// source, so a name present in two backends cannot switch between them.
	Source string
	// Permissions are grants the identity carries itself, on top of the
	// access rules: a robot account's scope.
	Permissions []Permission
}

// Subject is the name a token is issued to: the user name, or
// RobotPrefix+name for a robot (the name the robot logs in with).
func (id *Identity) Subject() string {
	if id == nil {
		return ""
	}
	if id.Robot {
		return RobotPrefix + id.Name
	}
	return id.Name
}

// String is for logs and audit lines: the subject, or "anonymous".
func (id *Identity) String() string {
	if id == nil {
		return "anonymous"
	}
	return id.Subject()
}

// InGroup reports whether the identity is a member of group.
func (id *Identity) InGroup(group string) bool {
	return id != nil && slices.Contains(id.Groups, group)
}

// Permission grants actions on the repositories matching any of the
// patterns (same syntax as Rule.Repositories).
type Permission struct {
	Repositories []string `json:"repositories"`
	Actions      []string `json:"actions"`
}

// Authenticator checks a user name and password. Implementations must
// refuse an empty password without asking anything (an LDAP bind with a DN
// and no password is an "unauthenticated bind" that many servers accept),
// and compare secrets in constant time.
//
// Errors: see the package documentation.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (*Identity, error)
}

// Lookuper finds a user without a password, to renew the identity behind a
// refresh token: the account must still exist, and its groups are read
// afresh. Authenticators that cannot look users up do not implement it;
// the token handler then issues no refresh tokens.
//
// Errors: ErrUnknownUser when the account is gone, ErrUnavailable when the
// backend cannot tell.
type Lookuper interface {
	Lookup(ctx context.Context, username string) (*Identity, error)
}

// Owner is implemented by authenticators that are the only authority for
// some user names (robot accounts own "robot$..."). A Chain asks no other
// backend about a name that an owner claims, so a directory user cannot
// pose as a robot.
type Owner interface {
	Owns(username string) bool
}

// Chain asks several authenticators in order. See NewChain.
type Chain struct {
	members []Authenticator
}

// NewChain returns an authenticator that asks each member in turn: robots
// first, then the directory, then an htpasswd file, for example.
//
//   - A member that Owns the name answers alone.
//   - The first member that knows the user decides: a wrong password at the
//     directory is not retried against the htpasswd file.
//   - A member that is unavailable is skipped, so a local break-glass
//     account in htpasswd still works while the directory is down; if no
//     later member knows the user, the result is ErrUnavailable, never
//     ErrInvalidCredentials, so the client is told the truth.
func NewChain(members ...Authenticator) *Chain {
	return &Chain{members: slices.DeleteFunc(slices.Clone(members), func(a Authenticator) bool { return a == nil })}
}

// Authenticate implements Authenticator.
func (c *Chain) Authenticate(ctx context.Context, username, password string) (*Identity, error) {
	return c.ask(username, func(a Authenticator) (*Identity, error) {
		return a.Authenticate(ctx, username, password)
	})
}

// Lookup implements Lookuper with the same order and rules as Authenticate;
// members that are not Lookupers are skipped.
func (c *Chain) Lookup(ctx context.Context, username string) (*Identity, error) {
	return c.ask(username, func(a Authenticator) (*Identity, error) {
		l, ok := a.(Lookuper)
		if !ok {
			return nil, fmt.Errorf("%T cannot look users up: %w", a, ErrUnknownUser)
		}
		return l.Lookup(ctx, username)
	})
}

// Owns implements Owner: the chain owns what any member owns.
func (c *Chain) Owns(username string) bool {
	return slices.ContainsFunc(c.members, func(a Authenticator) bool {
		o, ok := a.(Owner)
		return ok && o.Owns(username)
	})
}

func (c *Chain) ask(username string, try func(Authenticator) (*Identity, error)) (*Identity, error) {
	for _, a := range c.members {
		if o, ok := a.(Owner); ok && o.Owns(username) {
			return try(a)
		}
	}
	var unavailable, last error
	for _, a := range c.members {
		id, err := try(a)
		switch {
		case err == nil:
			return id, nil
		case errors.Is(err, ErrUnknownUser):
			last = err
		case errors.Is(err, ErrUnavailable):
			unavailable = errors.Join(unavailable, err)
		default:
			return nil, err
		}
	}
	if unavailable != nil {
		return nil, unavailable
	}
	if last == nil {
		last = fmt.Errorf("no authenticator configured: %w", ErrUnknownUser)
	}
	return nil, last
}

// checkUsername refuses names no backend should ever be asked about:
// empty, absurdly long, or with control characters (which only serve to
// forge log lines or confuse protocols).
func checkUsername(username string) error {
	if username == "" {
		return fmt.Errorf("empty user name: %w", ErrUnknownUser)
	}
	if len(username) > 256 {
		return fmt.Errorf("user name longer than 256 bytes: %w", ErrUnknownUser)
	}
	if strings.ContainsFunc(username, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("user name with control characters: %w", ErrUnknownUser)
	}
	// Directories ignore leading and trailing spaces when matching: " admin"
	// finds admin. Refused, so one account has one name (for access rules,
	// audit lines and rate limits).
	if strings.TrimSpace(username) != username {
		return fmt.Errorf("user name %q with leading or trailing spaces: %w", username, ErrUnknownUser)
	}
	return nil
}
