// Command runner carries out the warm case of `sigil run`: a stored image
// that the trust policy accepts without reading a signature. It is not
// installed on its own: `make build` embeds it in sigil next to the
// runtime shim, sigil writes both once under --state/shim, and sigil's C
// constructor (cmd/sigil/front.go) execs it for `sigil run` before the
// whole of sigil initialises (about 13 ms, against 2 ms here). It hands
// every other case back to sigil (see front.go).
//
// It is apart from the shim because it links what judging an image needs
// (the policy package, distribution/reference, the image store, cobra),
// whose initialisers cost 1.5 ms and 0.4 MB of heap at every start: the
// shim, which every detached container's monitor runs for as long as the
// container, stays without them.
package main

import (
	"fmt"
	"os"

	// nsenter's C constructor joins the container's namespaces before the
	// Go runtime starts, when this binary is re-executed as "init" for the
	// container it runs.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/sigil-project/sigil/runtime/container"
)

func init() { container.Reexec() }

func main() {
	full := os.Getenv(envBinary)
	if full == "" {
		fmt.Fprintln(os.Stderr, "this is sigil's embedded runner; run sigil instead")
		os.Exit(2)
	}
	os.Exit(front(full, os.Getenv(envShim)))
}
