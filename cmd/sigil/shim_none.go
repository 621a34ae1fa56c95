//go:build !sigil_shim

package main

// Built without the shim (plain `go build`): sigil re-execs itself.
var (
	shimBinary []byte
	shimDigest string
)
