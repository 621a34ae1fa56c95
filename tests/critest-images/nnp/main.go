// Command nnp stands in for the nonewprivs test image's program
// (registry.k8s.io/e2e-test-images/nonewprivs): installed setuid root, it
// prints its effective uid, so a container run as another user shows
// whether the setuid bit took effect (no_new_privs off) or not (on).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
