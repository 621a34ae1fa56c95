// Package atomicfile writes files that other sigil processes read while
// they change: image records, container and pod records, runtime specs,
// auth files. A reader sees the old content or the new, never a mix, and a
// crash never leaves a half-written file.
//
//	err := atomicfile.WriteFile("/var/lib/sigil/images/x.json", b, 0o600)
package atomicfile

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes data to a temporary file in name's directory, syncs it,
// gives it perm and renames it over name.
func WriteFile(name string, data []byte, perm os.FileMode) (retErr error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w (is the disk full?)", name, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w (is the disk full?)", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// WriteJSON writes v as indented JSON, ending with a newline, with
// WriteFile: the form of the container and pod records.
func WriteJSON(name string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFile(name, append(b, '\n'), perm)
}
