package main

import (
	"io"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/sigil-project/sigil/cmd/sigil/internal/runcmd"
)

// app is what every subcommand is given: the global options and a logger.
type app struct {
	opts        runcmd.Globals
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
	a.opts.Register(cmd.PersistentFlags())
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

func (a *app) setup(stderr io.Writer) error {
	logger, err := a.opts.NewLogger(stderr)
	if err != nil {
		return err
	}
	a.logger = logger
	a.logger.Debug("sigil started", "pid", os.Getpid(), "args", os.Args[1:])
	if a.opts.CPUProfile != "" {
		f, err := os.Create(a.opts.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		a.stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
	}
	if a.opts.RegistriesConf == "" {
		a.opts.RegistriesConf = os.Getenv("SIGIL_REGISTRIES_CONF")
	}
	return nil
}
