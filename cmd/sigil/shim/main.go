// Command shim is the small runtime half of sigil: the container init,
// the monitor of detached containers and the runner of foreground ones,
// and nothing else. It is not installed on its own: `make build` embeds it
// in the sigil binary, which writes it once under --state and runs
// containers through it, because libcontainer re-execs its caller's own
// binary (/proc/self/exe) as every container's init, and every Go process
// first initialises every package linked into it: the whole of sigil
// (signing, registry, CRI) costs 11 ms at each start where this program
// costs about 1, and its monitors hold a fraction of the memory. Built
// without it (`go build ./cmd/sigil`), sigil re-execs itself instead.
package main

import (
	"fmt"
	"os"

	// nsenter's C constructor joins the container's namespaces before the
	// Go runtime starts, when this binary is re-executed as "init".
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/sigil-project/sigil/runtime/container"
)

func init() { container.Reexec() }

func main() {
	fmt.Fprintln(os.Stderr, "this is sigil's embedded runtime shim; run sigil instead")
	os.Exit(2)
}
