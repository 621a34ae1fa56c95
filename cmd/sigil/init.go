package main

import (
	"os"

	"github.com/opencontainers/runc/libcontainer"
	// nsenter's C constructor joins the container's namespaces before the
	// Go runtime starts, when this binary is re-executed as "init".
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/sigil-project/sigil/runtime/container"
)

// init hands the two re-executions of the sigil binary to their entry
// points, before cobra or anything else runs:
//
//   - "sigil init": libcontainer's container init (it sets up the
//     container from inside, then execs the container's process);
//   - "sigil __sigil-monitor ...": the monitor of a detached container
//     (runtime/container.RunMonitor).
func init() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case "init":
		libcontainer.Init() // never returns
	case container.MonitorCommand:
		os.Exit(container.RunMonitor(os.Args[2:]))
	}
}
