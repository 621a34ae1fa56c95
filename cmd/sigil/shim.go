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
// runs containers through itself).
func (a *app) shimPath() (string, error) {
	return a.embeddedPath("sigil-shim-", shimBinary, shimDigest)
}

// runnerPath is shimPath for the runner, which the C constructor in
// front.go execs for `sigil run` once it is there.
func (a *app) runnerPath() (string, error) {
	return a.embeddedPath("sigil-runner-", runnerBinary, runnerDigest)
}

// embeddedPath writes an embedded program once under --state/shim. The
// file is named by its digest, so a new sigil never runs an old one, and
// it lives in a root-only directory.
func (a *app) embeddedPath(prefix string, binary []byte, sum string) (string, error) {
	if len(binary) == 0 {
		return "", nil
	}
	digest := strings.TrimSpace(sum)
	if len(digest) < 16 {
		return "", fmt.Errorf("embedded %s has no digest: rebuild sigil with make build", strings.TrimSuffix(prefix, "-"))
	}
	dir := filepath.Join(a.opts.State, "shim")
	path := filepath.Join(dir, prefix+digest[:16])
	if fi, err := os.Stat(path); err == nil && fi.Size() == int64(len(binary)) {
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
	if err := atomicfile.WriteFile(path, binary, 0o500); err != nil {
		return "", fmt.Errorf("runtime shim: %w", err)
	}
	// Written by another sigil at the same time is fine: same content.
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, binary) {
		return "", fmt.Errorf("%s holds other content than sigil embeds; remove it and retry", path)
	}
	// Those of earlier sigil builds are no longer started; monitors still
	// running one keep its inode, so removing the file is safe.
	if old, err := filepath.Glob(filepath.Join(dir, prefix+"*")); err == nil {
		for _, o := range old {
			if o != path {
				os.Remove(o)
			}
		}
	}
	return path, nil
}
