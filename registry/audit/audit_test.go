package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := New(&buf)
	l.now = func() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 0, time.FixedZone("x", 3600)) }
	// A hostile user name cannot start a line of its own.
	if err := l.Log(Event{User: "eve\n{\"action\":\"login\"}", Client: "10.0.0.1", Action: Denied, Outcome: Failure, Reason: "DENIED"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Log(Event{Client: "10.0.0.2", Action: Pull, Repository: "public/app", Outcome: Success}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	var e Event
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil {
		t.Fatal(err)
	}
	if e.User != "anonymous" || e.Time.Location() != time.UTC || e.Time.Hour() != 9 {
		t.Errorf("event = %+v, want user anonymous and the time in UTC", e)
	}
}

func TestConcurrentWritesStayWhole(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "audit.jsonl")
	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				_ = l.Log(Event{User: strings.Repeat("u", i*100), Action: Push, Outcome: Success})
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 1000 {
		t.Fatalf("%d lines, want 1000", len(lines))
	}
	for _, line := range lines {
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("torn line %q: %v", line, err)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
}
