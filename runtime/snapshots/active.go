package snapshots

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// ActiveDir is the directory of the active snapshot key (its upper and
// work dirs). A container that owns the snapshot removes it with itself.
func (s *Snapshotter) ActiveDir(key string) string {
	return filepath.Join(s.root, "active", key)
}

// CleanTmp removes what killed unpacks and deletes left in tmp/: an
// unpack's directory is removed only when no process holds its layer's
// lock, so an unpack still running is never touched.
func (s *Snapshotter) CleanTmp(ctx context.Context) error {
	dir := filepath.Join(s.root, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("snapshot tmp %s: %w", dir, err)
	}
	for _, e := range entries {
		hexPart, _, _ := strings.Cut(strings.TrimPrefix(e.Name(), "del-"), "-")
		if digest.NewDigestFromEncoded(digest.SHA256, hexPart).Validate() != nil {
			continue
		}
		lockCtx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		unlock, err := s.lock(lockCtx, hexPart)
		cancel()
		if err != nil {
			continue // in use
		}
		os.RemoveAll(filepath.Join(dir, e.Name()))
		unlock()
	}
	return nil
}
