// Package registry is Sigil's on-prem container registry: distribution/v3
// embedded behind Sigil's own front, on one listener.
//
//	/v2/...          distribution (blobs, uploads, manifests, tags), with
//	                 Sigil in front of it for trust enforcement on manifest
//	                 pulls, the referrers index on manifest pushes, the
//	                 audit log, and two APIs distribution lacks or gets
//	                 wrong for us:
//	/v2/<name>/referrers/<digest>   OCI 1.1 referrers API
//	/v2/_catalog     filtered to the repositories the caller may pull
//	/auth/token      the Docker token issuer (package auth): LDAP, htpasswd
//	                 and robot accounts, the access rules
//	/healthz         storage reachable
//	/metrics         Prometheus
//
// Distribution validates the tokens itself (its "token" access controller,
// trusting the issuer's certificate), so every distribution handler is
// protected exactly as upstream; Sigil's own handlers check the same token
// with the same controller.
//
// Usage:
//
//	cfg, err := config.Parse(path, data)
//	reg, err := registry.New(ctx, cfg, registry.WithLogger(logger))
//	defer reg.Close()
//	err = reg.ListenAndServe(ctx) // until ctx is cancelled
//
// Enforcement (signatures.enforce): a manifest GET or HEAD in a matching
// repository is answered only if the trust policy accepts the image, else
// 403 DENIED with the policy's reason code first in the message
// ("SIGNATURE_MISSING: ..."). What is judged is exactly the manifest
// distribution is about to send (its Docker-Content-Digest), so a tag moved
// between check and answer cannot slip through. Only runnable images and
// image indexes are judged; signatures, attestations, SBOMs and other
// artifacts are served, so clients can fetch what they need to verify. A
// platform manifest is also accepted when an image index in the same
// repository that lists it is accepted (a signed multi-platform image signs
// the index).
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	dauth "github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/auth"
	"github.com/sigil-project/sigil/registry/audit"
	"github.com/sigil-project/sigil/registry/config"
	"github.com/sigil-project/sigil/registry/refindex"
)

// Registry is a configured registry, ready to serve. Create it with New.
type Registry struct {
	cfg    *config.Config
	logger *slog.Logger

	app     *handlers.App // distribution
	driver  storagedriver.StorageDriver
	ns      distribution.Namespace // Sigil's own read view of the storage
	index   *refindex.Index
	access  dauth.AccessController // distribution's token checker, for Sigil's handlers
	tokens  accessVerifier
	acl     *auth.ACL
	users   auth.Lookuper // nil when the authenticator cannot look users up
	audit   *audit.Logger
	enforce *enforcer // nil when nothing is enforced
	metrics *metrics
	tls     *tls.Config // nil: plain HTTP (loopback only)

	handler http.Handler

	callers verifiedCache[caller]

	closeOnce sync.Once
	closers   []func() error
}

// accessVerifier reads the claims of an access token this registry's
// issuer signed (auth.TokenIssuer).
type accessVerifier interface {
	VerifyAccess(raw string) (*auth.AccessClaims, error)
}

// ImageJudge decides whether the image name (host/repository[:tag] or
// @digest) at target may be pulled: nil, or why not (a
// *policy.RejectedError for a refusal, another error when the policy could
// not be evaluated). signing.ImageVerifier is one.
type ImageJudge interface {
	VerifyImage(ctx context.Context, name string, target ocispec.Descriptor) error
}

// Option adjusts New.
type Option func(*options)

type options struct {
	logger *slog.Logger
	audit  *audit.Logger
}

// WithLogger sets the process logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithAuditLogger replaces the audit log New opens from audit.path.
func WithAuditLogger(l *audit.Logger) Option { return func(o *options) { o.audit = l } }

// New builds the registry from cfg (as config.Parse returns it): it opens
// the storage, loads or creates the token signing key, connects the
// authenticators, loads the trust policy and opens the audit log. Errors
// name the configuration key or file at fault.
func New(ctx context.Context, cfg *config.Config, opts ...Option) (_ *Registry, err error) {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	r := &Registry{cfg: cfg, logger: o.logger, metrics: newMetrics()}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()

	if cfg.HTTP.TLS != nil {
		if r.tls, err = serverTLS(cfg.HTTP.TLS); err != nil {
			return nil, err
		}
	}

	// Storage: Sigil's own view, over a driver of its own; distribution's
	// app makes another over the same backend. Creating it first turns a
	// bad storage section into an error instead of NewApp's panic.
	dcfg, err := distributionConfig(cfg)
	if err != nil {
		return nil, err
	}
	r.driver, err = newDriver(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var nsOpts []storage.RegistryOption
	if cfg.Storage.Delete.Enabled {
		// Sigil deletes the sha256 revision of a manifest deleted by its
		// sha512 digest (see digests.go).
		nsOpts = append(nsOpts, storage.EnableDelete)
	}
	r.ns, err = storage.NewRegistry(ctx, r.driver, nsOpts...)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	r.index = refindex.New(r.driver)

	// Auth: the token issuer and the access rules.
	issuer, err := auth.NewTokenIssuer(auth.TokenOptions{
		Issuer:     cfg.Auth.Token.Issuer,
		Service:    cfg.Auth.Token.Service,
		Expiration: cfg.Auth.Token.Expiration,
		KeyFile:    cfg.Auth.Token.Key,
	})
	if err != nil {
		return nil, fmt.Errorf("auth.token: %w", err)
	}
	r.tokens = issuer
	r.acl, err = auth.NewACL(aclRules(cfg.Access))
	if err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	authn, closeAuthn, err := buildAuthenticator(ctx, cfg, o.logger)
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, closeAuthn)
	if l, ok := authn.(auth.Lookuper); ok {
		r.users = l
	}

	// Audit log.
	r.audit = o.audit
	if r.audit == nil {
		if cfg.Audit.Path == "" {
			o.logger.Warn("no audit log: set audit.path in the configuration to keep one")
			r.audit = audit.Discard()
		} else if r.audit, err = audit.OpenFile(cfg.Audit.Path); err != nil {
			return nil, fmt.Errorf("audit.path: %w", err)
		}
		r.closers = append(r.closers, r.audit.Close)
	}

	// Enforcement.
	if len(cfg.Sigs.Enforce) > 0 {
		judge, err := buildJudge(ctx, cfg, r)
		if err != nil {
			return nil, err
		}
		patterns, err := config.CompilePatterns(cfg.Sigs.Enforce)
		if err != nil {
			return nil, fmt.Errorf("signatures.enforce: %w", err)
		}
		r.enforce = newEnforcer(patterns, judge, cfg.Sigs.RegistryName, r.index, r.ns)
	}

	// Distribution, with token auth pointing at the issuer, its checks
	// remembered per token (tokencache.go); Sigil's handlers use the same.
	tokenAuth := tokenAuthConfig(cfg, issuer)
	inner, err := dauth.GetAccessController("token", tokenAuth.Parameters())
	if err != nil {
		return nil, fmt.Errorf("auth.token: distribution's token access controller: %w", err)
	}
	cached := newCachingAccessController(inner)
	r.access = cached
	dcfg.Auth = configuration.Auth{cachingControllerName: configuration.Parameters{cacheOption: cached}}
	r.app, err = newApp(ctx, dcfg)
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, r.app.Shutdown)

	r.handler = r.routes(r.tokenHandler(issuer, authn))
	return r, nil
}

// Handler is the registry's whole HTTP surface.
func (r *Registry) Handler() http.Handler { return r.handler }

// ListenAndServe listens on http.addr and serves until ctx is cancelled.
func (r *Registry) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", r.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	return r.Serve(ctx, ln)
}

// Serve serves on ln (TLS when http.tls is set) until ctx is cancelled,
// then lets requests in flight finish for up to http.drainTimeout.
func (r *Registry) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           r.handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(r.logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if r.tls != nil {
		srv.TLSConfig = r.tls
		ln = tls.NewListener(ln, r.tls)
	}
	r.logger.Info("registry serving", "addr", ln.Addr().String(), "tls", r.tls != nil)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	r.logger.Info("registry stopping", "drain_timeout", r.cfg.HTTP.DrainTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), r.cfg.HTTP.DrainTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	r.logger.Info("registry stopped")
	return err
}

// Close releases what New opened: directory connections, the audit file,
// distribution's background work. It is safe to call more than once.
func (r *Registry) Close() error {
	var errs []error
	r.closeOnce.Do(func() {
		for i := len(r.closers) - 1; i >= 0; i-- {
			if r.closers[i] != nil {
				errs = append(errs, r.closers[i]())
			}
		}
	})
	return errors.Join(errs...)
}

func serverTLS(t *config.TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.Certificate, t.Key)
	if err != nil {
		return nil, fmt.Errorf("http.tls: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.MinimumTLS == "tls1.3" {
		c.MinVersion = tls.VersionTLS13
	}
	if len(t.ClientCAs) > 0 {
		pool, err := loadCertPool(t.ClientCAs)
		if err != nil {
			return nil, fmt.Errorf("http.tls.clientCAs: %w", err)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

func aclRules(rules []config.Rule) []auth.Rule {
	out := make([]auth.Rule, len(rules))
	for i, r := range rules {
		out[i] = auth.Rule{
			Repositories: r.Repositories,
			Groups:       r.Groups,
			Users:        r.Users,
			Robots:       r.Robots,
			Anonymous:    r.Anonymous,
			Actions:      r.Actions,
		}
	}
	return out
}
