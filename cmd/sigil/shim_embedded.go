//go:build sigil_shim

package main

import _ "embed"

// The runtime shim (./cmd/sigil/shim) and the runner (./cmd/sigil/runner),
// built and embedded by `make build`.
var (
	//go:embed shim/shim.bin
	shimBinary []byte
	//go:embed shim/shim.sha256
	shimDigest string
	//go:embed runner/runner.bin
	runnerBinary []byte
	//go:embed runner/runner.sha256
	runnerDigest string
)
