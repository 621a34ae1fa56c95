//go:build !sigil_shim

package main

// Built without the shim (plain `go build`): sigil re-execs itself, and
// runs every `sigil run` itself.
var (
	shimBinary   []byte
	shimDigest   string
	runnerBinary []byte
	runnerDigest string
)
