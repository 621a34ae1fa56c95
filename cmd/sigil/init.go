package main

import (
	// nsenter's C constructor joins the container's namespaces before the
	// Go runtime starts, when this binary is re-executed as "init".
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/sigil-project/sigil/runtime/container"
)

// init hands the re-executions of the sigil binary (container init,
// monitor, foreground runner) to their entry points before cobra runs.
func init() { container.Reexec() }
