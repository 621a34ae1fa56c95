package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/sigil-project/sigil/auth"
	"github.com/sigil-project/sigil/registry/audit"
	"github.com/sigil-project/sigil/registry/config"
	"github.com/sigil-project/sigil/signing"
	"github.com/sigil-project/sigil/signing/policy"
)

// buildAuthenticator connects the auth section: robot accounts first (they
// own the "robot$" names), then the directory or the htpasswd file. The
// returned func closes directory connections.
func buildAuthenticator(_ context.Context, cfg *config.Config, logger *slog.Logger) (auth.Authenticator, func() error, error) {
	robots, err := auth.OpenRobots(cfg.Auth.Robots.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("auth.robots.path: %w", err)
	}
	switch {
	case cfg.Auth.LDAP != nil:
		l := cfg.Auth.LDAP
		lc := auth.LDAPConfig{
			URL:               l.URL,
			StartTLS:          l.StartTLS,
			CAFile:            l.CAFile,
			ServerName:        l.ServerName,
			BindDN:            l.BindDN,
			UserSearch:        auth.UserSearch{BaseDN: l.UserSearch.BaseDN, Filter: l.UserSearch.Filter, NameAttribute: l.UserSearch.NameAttribute},
			GroupSearch:       auth.GroupSearch{BaseDN: l.GroupSearch.BaseDN, Filter: l.GroupSearch.Filter, NameAttribute: l.GroupSearch.NameAttribute, NestedFilter: l.GroupSearch.NestedFilter},
			MemberOfAttribute: l.MemberOfAttribute,
			NestingDepth:      l.NestingDepth,
			Timeout:           l.Timeout,
			PoolSize:          l.PoolSize,
		}
		if l.BindPasswordFile != "" {
			pw, err := os.ReadFile(l.BindPasswordFile)
			if err != nil {
				return nil, nil, fmt.Errorf("auth.ldap.bindPasswordFile: %w", err)
			}
			lc.BindPassword = strings.TrimRight(string(pw), "\r\n")
			if lc.BindPassword == "" {
				return nil, nil, fmt.Errorf("auth.ldap.bindPasswordFile: %s is empty", l.BindPasswordFile)
			}
		}
		dir, err := auth.NewLDAP(lc, auth.WithLDAPLogger(logger))
		if err != nil {
			return nil, nil, fmt.Errorf("auth.%w", err)
		}
		return auth.NewChain(robots, dir), dir.Close, nil
	default:
		h, err := auth.NewHtpasswd(cfg.Auth.Htpasswd.Path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("auth.htpasswd.path: %s does not exist; create it with: htpasswd -B -c %s USER", cfg.Auth.Htpasswd.Path, cfg.Auth.Htpasswd.Path)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("auth.htpasswd.path: %w", err)
		}
		return auth.NewChain(robots, h), nil, nil
	}
}

// tokenHandler is the issuer's handler with the registry's login audit and
// rate limits.
func (r *Registry) tokenHandler(issuer *auth.TokenIssuer, authn auth.Authenticator) http.Handler {
	opts := []auth.HandlerOption{
		auth.WithLogger(r.logger.With("component", "auth")),
		auth.WithEvents(r.auditLogin),
	}
	rl := r.cfg.Auth.RateLimit
	if rl.Disabled {
		opts = append(opts, auth.WithRateLimiter(nil))
	} else {
		opts = append(opts, auth.WithRateLimiter(auth.NewRateLimiter(auth.RateLimitOptions{
			PerUser:    auth.Limit{Burst: rl.PerUser.Burst, Every: rl.PerUser.Every},
			PerAddress: auth.Limit{Burst: rl.PerAddress.Burst, Every: rl.PerAddress.Every},
		})))
	}
	return issuer.Handler(authn, r.acl, opts...)
}

// auditLogin writes one audit line per token request that presented
// credentials; anonymous token requests are not logins.
func (r *Registry) auditLogin(ctx context.Context, ev auth.LoginEvent) {
	if ev.Grant == "anonymous" || ev.Grant == "" {
		return
	}
	e := audit.Event{
		Time:    ev.Time,
		User:    ev.Username,
		Robot:   strings.HasPrefix(ev.Username, auth.RobotPrefix),
		Client:  ev.ClientAddress,
		Action:  audit.Login,
		Outcome: audit.Success,
		Status:  ev.Status,
	}
	if ev.Identity != nil {
		e.User, e.Robot = ev.Identity.Subject(), ev.Identity.Robot
	}
	if ev.Outcome != auth.OutcomeSuccess {
		e.Outcome = audit.Failure
		e.Reason = loginReason(ev)
	}
	r.metrics.login(e.Outcome, ev.Status)
	if err := r.audit.Log(e); err != nil {
		r.metrics.auditErrors.Inc()
		r.logger.ErrorContext(ctx, "writing audit log", "error", err)
	}
}

// loginReason is the audit reason of a failed login: a stable code, then
// the cause. Credential errors stay generic (which of name or password was
// wrong is not for the log reader to learn either).
func loginReason(ev auth.LoginEvent) string {
	switch ev.Outcome {
	case auth.OutcomeDenied:
		return "INVALID_CREDENTIALS: wrong user name or password"
	case auth.OutcomeRateLimited:
		return "RATE_LIMITED: " + errText(ev.Err)
	case auth.OutcomeUnavailable:
		return "UNAVAILABLE: " + errText(ev.Err)
	case auth.OutcomeInvalid:
		return "INVALID_REQUEST: " + errText(ev.Err)
	}
	return strings.ToUpper(ev.Outcome) + ": " + errText(ev.Err)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// buildJudge loads signatures.policy and returns the verifier that judges
// images by it, reading signatures (cosign tags, sigstore bundle
// referrers) from this registry's storage.
func buildJudge(_ context.Context, cfg *config.Config, r *Registry) (ImageJudge, error) {
	p, err := policy.Load(cfg.Sigs.Policy)
	if err != nil {
		return nil, fmt.Errorf("signatures.policy: %w", err)
	}
	sv := signing.NewSigstoreVerifier(
		&localLocator{registryName: cfg.Sigs.RegistryName, ns: r.ns, index: r.index},
		signing.WithLogger(r.logger.With("component", "signing")),
	)
	v, err := signing.NewImageVerifier(p, policy.WithSignatureVerifier(sv))
	if err != nil {
		return nil, fmt.Errorf("signatures.policy: %w", err)
	}
	return v, nil
}
