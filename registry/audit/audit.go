// Package audit writes the registry's audit log: one JSON object per line,
// one line per security-relevant event (a login, a push, a pull, a delete,
// a refusal), for people and log shippers to read.
//
//	{"time":"2026-11-22T10:04:05.123Z","user":"alice","client":"10.0.0.7",
//	 "action":"pull","repository":"team-a/app","reference":"1.0",
//	 "digest":"sha256:…","outcome":"success"}
//
// Secrets never reach it: events carry names, addresses, repositories and
// digests, never passwords or tokens, and the writer has no field for them.
// JSON encoding escapes control characters, so a hostile user name cannot
// forge a line.
//
// Usage:
//
//	l, err := audit.OpenFile("/var/log/sigil/registry-audit.jsonl")
//	defer l.Close()
//	l.Log(audit.Event{User: "alice", Action: audit.Pull, ...})
package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Action is what the client did or tried.
type Action string

// The actions of the audit format.
const (
	Login  Action = "login"
	Push   Action = "push"
	Pull   Action = "pull"
	Delete Action = "delete"
	// Denied is a request refused for lack of rights or by the trust
	// policy; Event.Reason says which.
	Denied Action = "denied"
)

// Outcome of an event.
const (
	Success = "success"
	Failure = "failure"
)

// Event is one line of the log.
type Event struct {
	Time time.Time `json:"time"`
	// User is the user name, "robot$name" for a robot, or "anonymous".
	User string `json:"user"`
	// Robot is set for robot accounts.
	Robot bool `json:"robot,omitempty"`
	// Client is the client's address (no port).
	Client     string `json:"client"`
	Action     Action `json:"action"`
	Repository string `json:"repository,omitempty"`
	// Reference is the tag or digest the client asked for.
	Reference string `json:"reference,omitempty"`
	// Digest is the manifest or blob digest concerned, when known.
	Digest  string `json:"digest,omitempty"`
	Outcome string `json:"outcome"`
	// Reason says why an event failed: an error code (DENIED,
	// SIGNATURE_MISSING, ...) and a short text.
	Reason string `json:"reason,omitempty"`
	// Status is the HTTP status sent to the client.
	Status int `json:"status,omitempty"`
}

// Logger writes events. It is safe for concurrent use; each event is one
// write(2) of one line, so several processes may append to one file.
type Logger struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
	now    func() time.Time
}

// New returns a Logger writing to w.
func New(w io.Writer) *Logger { return &Logger{w: w, now: time.Now} }

// Discard is a Logger that writes nothing.
func Discard() *Logger { return New(io.Discard) }

// OpenFile appends to the file at path, creating it (mode 0640) and its
// directory. "-" is standard output.
func OpenFile(path string) (*Logger, error) {
	if path == "-" {
		return New(os.Stdout), nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	l := New(f)
	l.closer = f
	return l, nil
}

// Log writes e, filling Time when it is zero. A failed write is returned
// so the caller can count it; the request it describes is not failed for it.
func (l *Logger) Log(e Event) error {
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	if e.User == "" {
		e.User = "anonymous"
	}
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.w.Write(line)
	return err
}

// Close closes the file OpenFile opened.
func (l *Logger) Close() error {
	if l.closer == nil {
		return nil
	}
	return l.closer.Close()
}
