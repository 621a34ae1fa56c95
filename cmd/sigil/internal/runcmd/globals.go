package runcmd

import (
	"io"
	"log/slog"

	"github.com/spf13/pflag"
)

// Globals are the flags every sigil command takes. Only cmd/ reads files
// and the environment; packages get these as plain values.
type Globals struct {
	Root               string
	State              string
	Policy             string
	InsecurePolicy     bool
	RegistriesConf     string
	LogLevel           string
	InsecureRegistries []string
	CPUProfile         string
}

// Register defines the global flags on fs (the root command's persistent
// flags).
func (g *Globals) Register(fs *pflag.FlagSet) {
	fs.StringVar(&g.Root, "root", "/var/lib/sigil", "directory for content, snapshots and metadata")
	fs.StringVar(&g.State, "state", "/run/sigil", "directory for runtime state (pods, containers, monitors)")
	fs.StringVar(&g.Policy, "policy", "/etc/sigil/policy.json", "trust policy (containers-policy.json format)")
	fs.BoolVar(&g.InsecurePolicy, "insecure-policy", false, "accept every image, ignoring the trust policy (as skopeo --insecure-policy)")
	fs.StringVar(&g.RegistriesConf, "registries-conf", "", "registries.conf (containers-registries.conf v2); default $SIGIL_REGISTRIES_CONF, then /etc/containers/registries.conf if present")
	fs.StringSliceVar(&g.InsecureRegistries, "insecure-registry", nil, "registry host[:port] to reach over plain HTTP or unverified TLS (loopback always is)")
	fs.StringVar(&g.LogLevel, "log-level", "warn", "log level: debug, info, warn, error")
	fs.StringVar(&g.CPUProfile, "cpuprofile", "", "write a CPU profile of this sigil process to FILE (for benchmarks)")
	_ = fs.MarkHidden("cpuprofile")
}

// NewLogger returns the logger of --log-level, writing to w. Times are
// printed to the microsecond: a container starts in tens of milliseconds,
// and the debug log is how its phases are timed.
func (g *Globals) NewLogger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.LogLevel)); err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: microseconds})), nil
}

func microseconds(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		return slog.String(slog.TimeKey, a.Value.Time().UTC().Format("2006-01-02T15:04:05.000000Z"))
	}
	return a
}
