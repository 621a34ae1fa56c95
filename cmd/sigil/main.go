// Command sigil is the single Sigil binary: the daemonless CLI, and, when
// re-executed by itself, the container init and the container monitor.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// exitCodeSigil is returned for Sigil's own failures, as docker and podman
// do; any other code is the container's.
const exitCodeSigil = 125

// exitError carries a container's exit code out through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	cmd := newRootCommand()
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "sigil: %v\n", err)
	return exitCodeSigil
}
