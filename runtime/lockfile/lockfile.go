// Package lockfile gives several sigil processes on one root exclusive
// access to a named resource (a blob being downloaded, a snapshot being
// unpacked, the image index) with flock(2). The kernel drops the lock when
// the holder dies, so a killed process never leaves a stale lock behind.
//
//	unlock, err := lockfile.Lock(ctx, filepath.Join(root, "locks", "blob-"+hex))
//	if err != nil { return err }
//	defer unlock()
package lockfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval bounds how late a waiter notices a released lock; flock has
// no cancellable blocking form, and polling lets ctx end the wait.
const pollInterval = 10 * time.Millisecond

// Lock takes an exclusive lock on path, creating the file and its parent
// directory when missing, and waits until it is free or ctx ends.
func Lock(ctx context.Context, path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}
