//go:build sigil_shim

package main

import _ "embed"

// The runtime shim (./cmd/sigil/shim), built and embedded by `make build`.
//
//go:embed shim/shim.bin
var shimBinary []byte

//go:embed shim/shim.sha256
var shimDigest string
