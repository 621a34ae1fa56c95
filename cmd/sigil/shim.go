package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sigil-project/sigil/runtime/atomicfile"
)

// shimPath returns the runtime shim's path under --state, writing it
// there the first time, or "" when this build has no shim (sigil then
// runs containers through itself). The file is named by its digest, so a
// new sigil never runs an old shim, and it lives in a root-only directory.
func (a *app) shimPath() (string, error) {
	if len(shimBinary) == 0 {
		return "", nil
	}
	digest := strings.TrimSpace(shimDigest)
	if len(digest) < 16 {
		return "", fmt.Errorf("embedded runtime shim has no digest: rebuild sigil with make build")
	}
	dir := filepath.Join(a.opts.State, "shim")
	path := filepath.Join(dir, "sigil-shim-"+digest[:16])
	if fi, err := os.Stat(path); err == nil && fi.Size() == int64(len(shimBinary)) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("runtime shim: %w (choose another --state)", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Flags&unix.ST_NOEXEC != 0 {
		// Nothing can be executed from there: run containers through
		// sigil itself, slower to start but the same.
		a.logger.Debug("state directory is mounted noexec; not using the runtime shim", "dir", dir)
		return "", nil
	}
	if err := atomicfile.WriteFile(path, shimBinary, 0o500); err != nil {
		return "", fmt.Errorf("runtime shim: %w", err)
	}
	// Written by another sigil at the same time is fine: same content.
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, shimBinary) {
		return "", fmt.Errorf("runtime shim %s does not hold what sigil embeds; remove it and retry", path)
	}
	// Shims of earlier sigil builds are no longer started; monitors still
	// running one keep its inode, so removing the file is safe.
	if old, err := filepath.Glob(filepath.Join(dir, "sigil-shim-*")); err == nil {
		for _, o := range old {
			if o != path {
				os.Remove(o)
			}
		}
	}
	return path, nil
}
