package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplacesWholeAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "rec.json")
	for _, content := range []string{"first", "second, longer"} {
		if err := WriteFile(name, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(name)
		if err != nil || string(b) != content {
			t.Errorf("ReadFile = %q, %v; want %q", b, err, content)
		}
	}
	fi, _ := os.Stat(name)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %o, want 640", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temporary left)", len(entries))
	}
}

func TestWriteFileIntoMissingDirFails(t *testing.T) {
	if err := WriteFile(filepath.Join(t.TempDir(), "nope", "x"), []byte("x"), 0o600); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

func TestWriteJSONIndentsAndEndsWithNewline(t *testing.T) {
	name := filepath.Join(t.TempDir(), "rec.json")
	if err := WriteJSON(name, map[string]int{"a": 1}, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(name)
	if want := "{\n  \"a\": 1\n}\n"; err != nil || string(b) != want {
		t.Errorf("ReadFile = %q, %v; want %q", b, err, want)
	}
}
