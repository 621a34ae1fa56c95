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

	"github.com/sigil-project/sigil/cmd/sigil/internal/runcmd"
)

// exitCodeSigil is returned for Sigil's own failures, as docker and podman
// do; any other code is the container's.
const exitCodeSigil = 125

func main() {
	// Set by the runtime shim when it hands `sigil run` back to this binary
	// (see front.go); it has done its job once the process is here.
	os.Unsetenv("_SIGIL_FULL")
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
	var ee runcmd.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	fmt.Fprintf(os.Stderr, "sigil: %v\n", err)
	return exitCodeSigil
}
