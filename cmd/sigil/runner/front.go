package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/sigil-project/sigil/cmd/sigil/internal/runcmd"
	"github.com/sigil-project/sigil/runtime/container"
	"github.com/sigil-project/sigil/runtime/local"
	"github.com/sigil-project/sigil/signing/policy"
	"github.com/sigil-project/sigil/signing/verdicts"
)

// The handshake with sigil's C constructor (cmd/sigil/front.go): sigil
// execs this runner for `sigil run` with envBinary naming itself and
// envShim the runtime shim (for the monitors of detached containers), and
// the runner hands back what it does not carry out with envFull set, so
// the constructor lets the full binary run.
const (
	envBinary = "_SIGIL_BINARY"
	envShim   = "_SIGIL_SHIM"
	envFull   = "_SIGIL_FULL"
)

// front carries out `sigil run` (os.Args as sigil got them) when the image
// is stored and the trust policy accepts it without reading a signature:
// its requirements are insecureAcceptAnything, or sigstoreSigned with an
// acceptance in the verdict cache for this policy file, name, digest and
// key material. Everything else (fetching, verifying signatures, a refusal
// and its message, help, a flag error) is handed back to the full binary
// before anything is changed, so the two behave as one command: the only
// difference is that the warm case does not start the whole of sigil.
func front(full, shim string) int {
	os.Unsetenv(envBinary)
	os.Unsetenv(envShim)
	var g runcmd.Globals
	committed := false
	root := &cobra.Command{Use: "sigil", SilenceUsage: true, SilenceErrors: true}
	g.Register(root.PersistentFlags())
	root.AddCommand(runcmd.NewCommand(func(cmd *cobra.Command, f *runcmd.Flags, image string, args []string) error {
		err := runStored(cmd, &g, shim, f, image, args)
		if errors.Is(err, errHandBack) {
			return err
		}
		committed = true
		return err
	}))
	root.SetArgs(os.Args[1:])
	err := root.Execute()
	if !committed {
		return handBack(full, err)
	}
	var ee runcmd.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	fmt.Fprintf(os.Stderr, "sigil: %v\n", err)
	return 125
}

// errHandBack means "the full sigil binary must do this".
var errHandBack = errors.New("not a stored image the policy accepts without a signature check")

// handBack execs the full sigil binary with the same arguments.
func handBack(full string, why error) int {
	env := append(os.Environ(), envFull+"=1")
	err := syscall.Exec(full, os.Args, env)
	fmt.Fprintf(os.Stderr, "sigil: cannot run %s (%v) after its runner handed this command back (%v); reinstall sigil\n", full, err, why)
	return 125
}

func runStored(cmd *cobra.Command, g *runcmd.Globals, shim string, f *runcmd.Flags, image string, args []string) error {
	ctx := context.Background()
	if g.CPUProfile != "" || shim == "" {
		return errHandBack
	}
	checked, err := f.Check(args)
	if err != nil || checked.Pull == runcmd.PullAlways {
		return errHandBack
	}
	logger, err := g.NewLogger(cmd.ErrOrStderr())
	if err != nil {
		return errHandBack
	}
	stores, err := local.Open(ctx, g.Root)
	if err != nil {
		return errHandBack
	}
	img, err := runcmd.Stored(ctx, stores.Images, image)
	if err != nil {
		logger.Debug("the runner hands the run back to sigil", "reason", err)
		return errHandBack
	}
	p, sum := policy.AcceptAnything(), digest.Digest("")
	if !g.InsecurePolicy {
		if p, sum, err = policy.LoadWithDigest(g.Policy); err != nil {
			return errHandBack
		}
	}
	cached := &verdicts.Lookup{Cache: verdicts.New(filepath.Join(g.Root, "verdicts"), sum)}
	eval, err := policy.NewEvaluator(p, policy.WithSignatureVerifier(cached))
	if err != nil {
		return errHandBack
	}
	if _, err := eval.EvaluateImage(ctx, img.Name, img.Target.Digest); err != nil {
		logger.Debug("the runner hands the run back to sigil", "reason", err)
		return errHandBack
	}
	logger.Debug("image ready; sigil's runner runs it (the full binary is not started)", "ref", img.Name, "digest", img.Target.Digest)

	// Detached containers' monitors are the runtime shim, as when the full
	// sigil starts them; this runner is only the container's init.
	mgr, err := container.New(g.Root, g.State, container.WithLogger(logger), container.WithExecutable(shim))
	if err != nil {
		return err
	}
	co, err := runcmd.Prepare(ctx, stores, img, f, checked)
	if err != nil {
		return err
	}
	if f.Detach {
		return runcmd.Detach(ctx, cmd.OutOrStdout(), stores, mgr, co)
	}
	stdio := container.IO{Stdout: os.Stdout, Stderr: os.Stderr}
	if f.Interactive {
		stdio.Stdin = os.Stdin
	}
	return runcmd.Foreground(ctx, mgr, runcmd.Request(co, f), stdio)
}
