//go:build !sigil_pause

package main

// Built without the pause program (plain go build): `sigil cri serve`
// refuses pods that share a PID namespace, saying how to build sigil.
var pauseBinary []byte
