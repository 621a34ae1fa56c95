package runcmd

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/reference"
)

// Stored returns the stored image that refStr names (normalised as docker
// does), or an error satisfying errdefs.IsNotFound when there is none, or
// when the name is ambiguous, so that the caller fetches it.
func Stored(ctx context.Context, imgs *images.Store, refStr string) (*images.Image, error) {
	ref, err := reference.Parse(refStr)
	if err != nil {
		return nil, err
	}
	found, err := imgs.Lookup(ctx, ref.String())
	if err != nil {
		return nil, err
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("image %s: %d stored images match: %w", ref.String(), len(found), errdefs.ErrNotFound)
	}
	return found[0], nil
}
