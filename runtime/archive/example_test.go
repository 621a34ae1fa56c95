package archive_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"github.com/sigil-project/sigil/runtime/archive"
)

// Applying a downloaded layer blob, then checking it against the diff ID the
// signed image config promises before the layer may be mounted.
func ExampleApply() {
	ctx := context.Background()
	blob, err := os.Open("/var/lib/sigil/blobs/sha256/4f4fb700ef54")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer blob.Close()
	want := digest.Digest("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef")

	diff := filepath.Join("/var/lib/sigil/layers/0001", "diff")
	if err := os.MkdirAll(diff, 0o755); err != nil {
		fmt.Println(err)
		return
	}
	res, err := archive.Apply(ctx, diff, blob, archive.WithMaxSize(8<<30))
	if err == nil && res.DiffID != want {
		err = fmt.Errorf("layer diff ID is %s, image config says %s", res.DiffID, want)
	}
	if err != nil {
		os.RemoveAll(diff) // never mount a failed or unverified layer
		fmt.Println(err)
		return
	}
	fmt.Println("applied", res.Size, "bytes")
}
