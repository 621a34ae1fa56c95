// Command pause is the infra process of a CRI pod whose containers share a
// PID namespace: that namespace's PID 1, which keeps it alive while the
// pod's containers come and go, and reaps the zombies they leave (orphans
// are reparented to PID 1). It exits 0 on SIGINT or SIGTERM and otherwise
// waits, doing nothing.
//
// It is not installed on its own: `make build` builds it static
// (CGO_ENABLED=0) and embeds it in sigil, and `sigil cri serve` writes it
// once under --state as the only file of the infra container's read-only
// root filesystem. It uses the standard library only, so that what runs in
// every such pod is small and has nothing to load.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: not PID 1 of a PID namespace: orphaned processes will not be reaped here")
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	reap() // whatever exited before the handler was in place
	for sig := range sigs {
		switch sig {
		case syscall.SIGINT, syscall.SIGTERM:
			os.Exit(0)
		case syscall.SIGCHLD:
			reap()
		}
	}
}

// reap collects every child that has exited. SIGCHLD signals coalesce, so
// one may stand for several exits.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
	}
}
