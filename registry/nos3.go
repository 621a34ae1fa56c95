//go:build !s3

package registry

// s3Compiled reports whether the s3 storage driver is linked in (see s3.go).
const s3Compiled = false
