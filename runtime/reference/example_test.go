package reference_test

import (
	"fmt"

	"github.com/sigil-project/sigil/runtime/reference"
)

func ExampleParse() {
	ref, err := reference.Parse("busybox")
	if err != nil {
		panic(err)
	}
	fmt.Println(ref.String(), ref.Domain(), ref.Path(), ref.Tag(), ref.TagDefaulted())

	ref, _ = reference.Parse("oci:/srv/layouts/app:1.0")
	fmt.Println(ref.Transport(), ref.LayoutDir(), ref.Tag())

	_, err = reference.Parse("FOO")
	fmt.Println(err)
	// Output:
	// docker.io/library/busybox:latest docker.io library/busybox latest true
	// oci /srv/layouts/app 1.0
	// invalid image reference "FOO": invalid reference format: repository name (library/FOO) must be lowercase; references look like registry.example.com/team/app:1.0
}
