//go:build s3

package registry

// The s3 storage driver, compiled in with the build tag "s3" (make build
// TAGS="seccomp s3"): aws-sdk-go's package initialisation costs every
// sigil command, and most installations use the filesystem driver.
import _ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"

const s3Compiled = true
