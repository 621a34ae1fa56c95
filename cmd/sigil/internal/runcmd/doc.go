// Package runcmd is `sigil run` as both of sigil's entry points parse and
// carry it out: the full sigil binary, and the small runtime shim that
// fronts `sigil run` of a stored image whose trust policy needs no
// signature check (see cmd/sigil/shim). Keeping the global flags, the run
// flags and the steps after the image is judged in one package is what
// makes the two behave as one command.
//
// It links only the runtime's local side (stores, snapshots, containers)
// and the policy package, never cosign, the registry client or gRPC: every
// package it imports costs the shim start-up time.
package runcmd
