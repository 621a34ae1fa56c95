package main

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sigil-project/sigil/cmd/sigil/internal/runcmd"
	"github.com/sigil-project/sigil/runtime/container"
)

// newRunCommand is `sigil run`. Its flags and the steps after the image is
// judged live in runcmd, shared with the runner, which carries out the
// warm case (a stored image the policy accepts without a signature check)
// without this binary (see front.go and runner/).
func newRunCommand(a *app) *cobra.Command {
	return runcmd.NewCommand(a.run)
}

func (a *app) run(cmd *cobra.Command, f *runcmd.Flags, ref string, args []string) error {
	ctx := cmd.Context()
	checked, err := f.Check(args)
	if err != nil {
		return err
	}
	img, err := a.imageForRun(ctx, ref, checked.Pull, f.Fetch, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	a.logger.Debug("image ready", "ref", img.Name, "digest", img.Target.Digest)
	stores, err := a.stores(ctx)
	if err != nil {
		return err
	}
	mgr, err := a.containers()
	if err != nil {
		return err
	}
	co, err := runcmd.Prepare(ctx, stores, img, f, checked)
	if err != nil {
		return err
	}
	// The next warm run of a stored image goes through the runner (see
	// front.go); write it now if this build has one.
	if _, err := a.runnerPath(); err != nil {
		a.logger.Debug("runner not written", "error", err)
	}
	if f.Detach {
		return runcmd.Detach(ctx, cmd.OutOrStdout(), stores, mgr, co)
	}
	req := runcmd.Request(co, f)
	if shim, err := a.shimPath(); err != nil {
		runcmd.Release(ctx, stores, mgr, co)
		return err
	} else if shim != "" {
		// Become the small runtime shim for the rest of the run, keeping
		// this process, its standard streams and its exit code: the
		// container's init is then re-executed from the shim, not from
		// the whole of sigil (see shim.go and cmd/sigil/shim). If the
		// exec fails, run the container from here instead.
		err := a.execShim(shim, req, mgr)
		a.logger.Warn("running the container without the runtime shim", "error", err)
	}
	stdio := container.IO{Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
	if f.Interactive {
		stdio.Stdin = cmd.InOrStdin()
	}
	// The container gets SIGINT and SIGTERM itself; the context main
	// cancels on SIGTERM must not stop it a second time.
	return runcmd.Foreground(context.WithoutCancel(ctx), mgr, req, stdio)
}

// execShim replaces this process with the runtime shim running req. It
// returns only if that failed.
func (a *app) execShim(shim string, req container.RunRequest, mgr *container.Manager) error {
	path, err := mgr.WriteRunRequest(req)
	if err != nil {
		return err
	}
	a.logger.Debug("handing the run to the runtime shim", "shim", shim, "container_id", req.Options.ID)
	a.stopProfile()
	argv := []string{shim, container.RunCommand, "--root=" + a.opts.Root, "--state=" + a.opts.State, "--log-level=" + a.opts.LogLevel, path}
	err = syscall.Exec(shim, argv, os.Environ())
	os.Remove(path)
	return fmt.Errorf("run the runtime shim %s: %w", shim, err)
}
