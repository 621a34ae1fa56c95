package runcmd

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/errdefs"

	"github.com/sigil-project/sigil/runtime/container"
	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/local"
	"github.com/sigil-project/sigil/runtime/snapshots"
)

// ExitError carries a container's exit code (or 125, sigil's own failure
// already reported) out through cobra to the process's exit status.
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Prepare gives the judged image img a new container ID and a writable
// snapshot, and returns the container's creation options. Until the
// container has a record the snapshot is the caller's: Release gives it
// back on failure.
func Prepare(ctx context.Context, stores *local.Stores, img *images.Image, f *Flags, c Checked) (container.CreateOptions, error) {
	config, err := stores.ImageConfig(ctx, img)
	if err != nil {
		return container.CreateOptions{}, err
	}
	id := container.NewID()
	var snapOpts []snapshots.PrepareOption
	if f.Rm {
		// Nothing of a --rm container survives it: its upper layer need
		// not reach the disk.
		snapOpts = append(snapOpts, snapshots.WithVolatile())
	}
	rootfs, err := stores.Snapshots.Prepare(ctx, id, img.ChainIDs(), snapOpts...)
	if err != nil {
		return container.CreateOptions{}, err
	}
	return container.CreateOptions{
		ID:          id,
		Name:        f.Name,
		ImageRef:    img.Name,
		ImageDigest: img.Target.Digest,
		Image:       config.Config,
		Rootfs:      rootfs,
		Run:         c.Options,
		Stdin:       f.Interactive,
		AutoRemove:  f.Rm,
		Network:     c.Network,
		OwnedDirs:   []string{stores.Snapshots.ActiveDir(id)},
	}, nil
}

// Release removes the snapshot Prepare made for co if the container got
// no record; once it has one, the snapshot goes with it.
func Release(ctx context.Context, stores *local.Stores, mgr *container.Manager, co container.CreateOptions) {
	if _, err := mgr.Inspect(ctx, co.ID); errdefs.IsNotFound(err) {
		stores.Snapshots.Remove(context.WithoutCancel(ctx), co.ID)
	}
}

// Detach starts co under a monitor and prints its ID to out.
func Detach(ctx context.Context, out io.Writer, stores *local.Stores, mgr *container.Manager, co container.CreateOptions) error {
	id, err := mgr.Start(ctx, co)
	if err != nil {
		Release(ctx, stores, mgr, co)
		return err
	}
	fmt.Fprintln(out, id)
	return nil
}

// Request is the foreground run of co with run's flags.
func Request(co container.CreateOptions, f *Flags) container.RunRequest {
	return container.RunRequest{Options: co, Stdin: f.Interactive, MemoryLimit: f.Memory}
}

// Foreground runs req attached to stdio and returns nil or the ExitError
// of its exit code. SIGINT and SIGTERM go to the container itself, so ctx
// should not be one those signals cancel.
func Foreground(ctx context.Context, mgr *container.Manager, req container.RunRequest, stdio container.IO) error {
	if code := mgr.RunInForeground(ctx, req, stdio); code != 0 {
		return ExitError{Code: code}
	}
	return nil
}
