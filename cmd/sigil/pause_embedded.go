//go:build sigil_pause

package main

import _ "embed"

// The pause program (cmd/sigil/pause/pause.c), compiled static and embedded by
// `make build`: PID 1 of the pods that share a PID namespace.
//
//go:embed pause/pause.bin
var pauseBinary []byte
