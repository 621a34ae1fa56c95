package main

import (
	"os"
	"runtime"

	"github.com/opencontainers/runc/libcontainer"
	// nsenter's C constructor joins the container's namespaces before the
	// Go runtime starts, when this binary is re-executed as "init".
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"golang.org/x/sys/unix"

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
	// Keep the main thread to the main goroutine. Goroutines that change
	// their thread's namespaces (pod pinning, libcontainer's mount-source
	// thread) rely on the Go runtime discarding that thread when they end;
	// the main thread cannot be discarded, and if one of them ran there it
	// would leave the process's /proc/self in a container's namespaces.
	runtime.LockOSThread()
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case "init":
		// The container's process dies with whoever started it (sigil run
		// or the monitor). libcontainer's ParentDeathSignal only reaches
		// its first, short-lived stage; set it here, in the final stage,
		// and libcontainer keeps it across the change of user.
		_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
		libcontainer.Init() // never returns
	case container.MonitorCommand:
		os.Exit(container.RunMonitor(os.Args[2:]))
	}
}
