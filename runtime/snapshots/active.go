package snapshots

import "path/filepath"

// ActiveDir is the directory of the active snapshot key (its upper and
// work dirs). A container that owns the snapshot removes it with itself.
func (s *Snapshotter) ActiveDir(key string) string {
	return filepath.Join(s.root, "active", key)
}
