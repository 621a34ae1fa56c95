package registry

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/sirupsen/logrus"
	yamlv2 "go.yaml.in/yaml/v2"
	"go.yaml.in/yaml/v3"

	// Drivers and the access controller distribution finds by name.
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"github.com/sigil-project/sigil/auth"
	"github.com/sigil-project/sigil/registry/config"
)

// tokenPath is where the token issuer is served.
const tokenPath = "/auth/token"

// distributionConfig translates Sigil's configuration into distribution's
// (without auth, which needs the issuer). Sections Sigil passes through
// (s3, redis, cache, maintenance, redirect) go over unchanged.
func distributionConfig(cfg *config.Config) (*configuration.Configuration, error) {
	d := &configuration.Configuration{}
	d.Version = configuration.MajorMinorVersion(0, 1)
	// Distribution logs every request at info; Sigil keeps its own
	// request metrics and audit log, so only its warnings come through.
	d.Log.Level = "warn"
	if cfg.Log.Level == "debug" {
		d.Log.Level = "debug"
	}
	d.Log.AccessLog.Disabled = true
	d.Storage = configuration.Storage{}
	switch {
	case cfg.Storage.Filesystem != nil:
		d.Storage["filesystem"] = configuration.Parameters{"rootdirectory": cfg.Storage.Filesystem.RootDirectory}
	case cfg.Storage.S3 != nil:
		d.Storage["s3"] = configuration.Parameters(cfg.Storage.S3)
	}
	d.Storage["delete"] = configuration.Parameters{"enabled": cfg.Storage.Delete.Enabled}
	if cfg.Storage.Cache != nil {
		d.Storage["cache"] = configuration.Parameters(cfg.Storage.Cache)
	}
	if cfg.Storage.Maintenance != nil {
		// Distribution type-asserts map[any]any here.
		m := configuration.Parameters{}
		for k, v := range cfg.Storage.Maintenance {
			m[k] = anyKeys(v)
		}
		d.Storage["maintenance"] = m
	}
	if cfg.Storage.Redirect != nil {
		d.Storage["redirect"] = configuration.Parameters(cfg.Storage.Redirect)
	}
	if cfg.Redis != nil {
		// Re-encode and let distribution's own YAML types read it, so the
		// section means exactly what distribution's documentation says.
		raw, err := yaml.Marshal(cfg.Redis)
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		if err := yamlv2.UnmarshalStrict(raw, &d.Redis); err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
	}
	d.HTTP.Addr = cfg.HTTP.Addr
	d.HTTP.Host = cfg.HTTP.Host
	if cfg.HTTP.SecretFile != "" {
		secret, err := os.ReadFile(cfg.HTTP.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("http.secretFile: %w", err)
		}
		d.HTTP.Secret = strings.TrimSpace(string(secret))
		if len(d.HTTP.Secret) < 16 {
			return nil, fmt.Errorf("http.secretFile: %s holds fewer than 16 characters; use e.g. openssl rand -hex 32", cfg.HTTP.SecretFile)
		}
	}
	if d.HTTP.Secret == "" {
		// Distribution would make one too, with a warning that names its
		// own configuration keys; Sigil's is http.secretFile.
		d.HTTP.Secret = rand.Text()
	}
	d.Catalog.MaxEntries = cfg.Catalog.MaxEntries
	d.Validation.Manifests.URLs.Allow = cfg.Validation.Manifests.URLs.Allow
	d.Validation.Manifests.URLs.Deny = cfg.Validation.Manifests.URLs.Deny
	return d, nil
}

// anyKeys converts nested map[string]any (YAML v3) into map[any]any (what
// distribution's YAML v2 parsing produces and its code asserts).
func anyKeys(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[any]any, len(m))
	for k, v := range m {
		out[k] = anyKeys(v)
	}
	return out
}

// tokenAuthConfig points distribution's token access controller at the
// issuer: its certificate, issuer name and service. The realm clients are
// sent to is http.host + /auth/token when configured, else built from each
// request (scheme and Host), so the registry works under whatever name
// clients reach it by.
func tokenAuthConfig(cfg *config.Config, issuer *auth.TokenIssuer) configuration.Auth {
	p := configuration.Parameters{
		"issuer":         issuer.Issuer(),
		"service":        issuer.Service(),
		"rootcertbundle": issuer.RootCertBundle(),
	}
	if cfg.HTTP.Host != "" {
		p["realm"] = strings.TrimSuffix(cfg.HTTP.Host, "/") + tokenPath
	} else {
		p["realm"] = tokenPath // unused with autoredirect, but required
		p["autoredirect"] = true
		p["autoredirectpath"] = tokenPath
	}
	return configuration.Auth{"token": p}
}

// storageParams returns the driver name and parameters of the storage
// section.
func storageParams(cfg *config.Config) (string, map[string]any) {
	if cfg.Storage.S3 != nil {
		return "s3", cfg.Storage.S3
	}
	return "filesystem", map[string]any{"rootdirectory": cfg.Storage.Filesystem.RootDirectory}
}

func newDriver(ctx context.Context, cfg *config.Config) (storagedriver.StorageDriver, error) {
	name, params := storageParams(cfg)
	if name == "s3" && !s3Compiled {
		return nil, fmt.Errorf("storage.s3: this sigil was built without the s3 driver; build it with: make build TAGS=\"seccomp s3\"")
	}
	d, err := factory.Create(ctx, name, params)
	if err != nil {
		return nil, fmt.Errorf("storage.%s: %w", name, err)
	}
	return d, nil
}

// newApp wraps handlers.NewApp, which reports configuration problems by
// panicking.
func newApp(ctx context.Context, d *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("starting distribution: %v", p)
		}
	}()
	return handlers.NewApp(ctx, d), nil
}

// RouteDistributionLogs sends distribution's logs (logrus' standard
// logger, which it logs through) to logger at their levels. Distribution
// offers no per-instance logger, so this changes process-wide state: call
// it once, from main.
func RouteDistributionLogs(logger *slog.Logger, debug bool) {
	std := logrus.StandardLogger()
	std.SetOutput(discardWriter{})
	std.SetFormatter(nopFormatter{}) // the hook formats; logrus' own output is discarded
	std.SetLevel(logrus.WarnLevel)
	if debug {
		std.SetLevel(logrus.DebugLevel)
	}
	std.ReplaceHooks(logrus.LevelHooks{})
	std.AddHook(slogHook{logger: logger.With("component", "distribution")})
}

// nopFormatter spares logrus formatting every entry (distribution logs
// each 404 as an error) for an output nobody reads.
type nopFormatter struct{}

func (nopFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// slogHook forwards logrus entries to slog.
type slogHook struct{ logger *slog.Logger }

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	level := slog.LevelInfo
	switch {
	case e.Level <= logrus.ErrorLevel:
		level = slog.LevelError
	case e.Level == logrus.WarnLevel:
		level = slog.LevelWarn
	case e.Level >= logrus.DebugLevel:
		level = slog.LevelDebug
	}
	// Distribution reports every 4xx it answers as an error and every
	// challenge as a warning: routine for a registry, debug for us.
	if status, ok := e.Data["http.response.status"].(int); ok && status < 500 && level > slog.LevelDebug {
		level = slog.LevelDebug
	}
	if strings.HasPrefix(e.Message, "error authorizing context") {
		level = slog.LevelDebug
	}
	if !h.logger.Enabled(context.Background(), level) {
		return nil
	}
	attrs := make([]any, 0, 2*len(e.Data))
	for k, v := range e.Data {
		if strings.HasPrefix(k, "http.request.") && k != "http.request.uri" && k != "http.request.method" {
			continue // headers and such: noise, and possibly credentials
		}
		attrs = append(attrs, k, v)
	}
	h.logger.Log(context.Background(), level, e.Message, attrs...)
	return nil
}

func loadCertPool(files []string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate in it", f)
		}
	}
	return pool, nil
}
