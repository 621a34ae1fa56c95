package main

import (
	"io"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// globalOptions are the flags every command takes. Only cmd/ reads files
// and the environment; packages get these as plain values.
type globalOptions struct {
	root               string
	state              string
	policy             string
	insecurePolicy     bool
	registriesConf     string
	logLevel           string
	insecureRegistries []string
	cpuProfile         string
}

// app is what every subcommand is given: the global options and a logger.
type app struct {
	opts        globalOptions
	logger      *slog.Logger
	stopProfile func()
}

func newRootCommand() *cobra.Command {
	a := &app{stopProfile: func() {}}
	cmd := &cobra.Command{
		Use:           "sigil",
		Short:         "Fetch, verify and run signed container images, with no daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup(cmd.ErrOrStderr())
		},
	}
	f := cmd.PersistentFlags()
	f.StringVar(&a.opts.root, "root", "/var/lib/sigil", "directory for content, snapshots and metadata")
	f.StringVar(&a.opts.state, "state", "/run/sigil", "directory for runtime state (pods, containers, monitors)")
	f.StringVar(&a.opts.policy, "policy", "/etc/sigil/policy.json", "trust policy (containers-policy.json format)")
	f.BoolVar(&a.opts.insecurePolicy, "insecure-policy", false, "accept every image, ignoring the trust policy (as skopeo --insecure-policy)")
	f.StringVar(&a.opts.registriesConf, "registries-conf", "", "registries.conf (containers-registries.conf v2); default $SIGIL_REGISTRIES_CONF, then /etc/containers/registries.conf if present")
	f.StringSliceVar(&a.opts.insecureRegistries, "insecure-registry", nil, "registry host[:port] to reach over plain HTTP or unverified TLS (loopback always is)")
	f.StringVar(&a.opts.logLevel, "log-level", "warn", "log level: debug, info, warn, error")

	f.StringVar(&a.opts.cpuProfile, "cpuprofile", "", "write a CPU profile of this sigil process to FILE (for benchmarks)")
	_ = f.MarkHidden("cpuprofile")
	cmd.PersistentPostRunE = func(*cobra.Command, []string) error { a.stopProfile(); return nil }

	// The command tree, in the order help lists it.
	for _, add := range []func(*app) *cobra.Command{
		newFetchCommand, newVerifyCommand, newRunCommand,
		newPsCommand, newLogsCommand, newExecCommand, newStopCommand, newRmCommand, newInspectCommand,
		newImagesCommand, newImageCommand, newGCCommand, newLoginCommand,
		newKeyCommand, newSignCommand, newTrustCommand,
		newRegistryCommand, newCRICommand,
	} {
		cmd.AddCommand(add(a))
	}
	return cmd
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// microseconds prints log times to the microsecond: a container starts in
// tens of milliseconds, and the debug log is how its phases are timed.
func microseconds(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		return slog.String(slog.TimeKey, a.Value.Time().UTC().Format("2006-01-02T15:04:05.000000Z"))
	}
	return a
}

func (a *app) setup(stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.opts.logLevel)); err != nil {
		return err
	}
	a.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: microseconds}))
	a.logger.Debug("sigil started", "pid", os.Getpid(), "args", os.Args[1:])
	if a.opts.cpuProfile != "" {
		f, err := os.Create(a.opts.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		a.stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
	}
	if a.opts.registriesConf == "" {
		a.opts.registriesConf = os.Getenv("SIGIL_REGISTRIES_CONF")
	}
	return nil
}
