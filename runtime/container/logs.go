package container

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// maxLogLine is the longest piece of a line written as one log entry;
// longer lines are split into partial (P) entries, as the CRI does.
const maxLogLine = 16 << 10

// criLog writes container output to a log file in the CRI format:
//
//	2016-10-06T00:17:09.669794202Z stdout F some text
//
// Each entry is written with a single Write, under a lock shared by the
// streams, so entries never interleave.
type criLog struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	failed bool
	onErr  func(error)
}

// openCRILog opens (creating it) the log at path for appending. The
// first write error after each (re)opening is logged to log.
func openCRILog(ctx context.Context, path string, log *slog.Logger) (*criLog, error) {
	f, err := openLogFile(path)
	if err != nil {
		return nil, err
	}
	onErr := func(err error) { log.WarnContext(ctx, "writing the container log", "path", path, "error", err) }
	return &criLog{path: path, f: f, onErr: onErr}, nil
}

func openLogFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
}

// reopen makes the log write to the file at its path opened anew (after
// a rotation renamed it: ReopenLog), and closes the one it wrote to.
func (l *criLog) reopen() error {
	f, err := openLogFile(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f, l.failed = f, false
	l.mu.Unlock()
	old.Close()
	return nil
}

// current is the file the log writes to.
func (l *criLog) current() *os.File {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f
}

// stream returns a writer for one stream ("stdout" or "stderr"). Call
// Flush when the stream has ended.
func (l *criLog) stream(name string) *criStream { return &criStream{log: l, name: name} }

func (l *criLog) entry(stream string, tag byte, text []byte) {
	var b bytes.Buffer
	b.Grow(len(text) + 48)
	b.WriteString(time.Now().UTC().Format(time.RFC3339Nano))
	b.WriteByte(' ')
	b.WriteString(stream)
	b.WriteByte(' ')
	b.WriteByte(tag)
	b.WriteByte(' ')
	b.Write(text)
	b.WriteByte('\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	// A write error (disk full...) must not block the container, whose
	// output keeps being consumed; it is reported once.
	if _, err := l.f.Write(b.Bytes()); err != nil && !l.failed {
		l.failed = true
		l.onErr(err)
	}
}

// criStream splits one stream's output into log entries: F for each
// full line, P for a piece of a line longer than maxLogLine or for output
// that ended without a newline.
type criStream struct {
	log  *criLog
	name string
	buf  []byte
}

func (s *criStream) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			break
		}
		// A terminal ends lines with \r\n; the log keeps the text only.
		s.log.entry(s.name, 'F', bytes.TrimSuffix(s.buf[:i], []byte{'\r'}))
		s.buf = s.buf[i+1:]
	}
	for len(s.buf) >= maxLogLine {
		s.log.entry(s.name, 'P', s.buf[:maxLogLine])
		s.buf = s.buf[maxLogLine:]
	}
	s.buf = append([]byte(nil), s.buf...)
	return len(p), nil
}

// Flush writes what is left of an unterminated last line as a partial
// entry.
func (s *criStream) Flush() {
	if len(s.buf) > 0 {
		s.log.entry(s.name, 'P', s.buf)
		s.buf = nil
	}
}

// parseCRILine splits a CRI log line (without its newline) into stream,
// tag and text.
func parseCRILine(line []byte) (stream string, partial bool, text []byte, err error) {
	f := bytes.SplitN(line, []byte{' '}, 4)
	if len(f) < 3 {
		return "", false, nil, fmt.Errorf("malformed log line %q", line)
	}
	if len(f) == 4 {
		text = f[3]
	}
	switch string(f[2]) {
	case "F":
	case "P":
		partial = true
	default:
		return "", false, nil, fmt.Errorf("malformed log line %q: tag %q", line, f[2])
	}
	return string(f[1]), partial, text, nil
}

// Logs writes the container's output (stdout and stderr, in order) to w,
// without the CRI log prefixes. With follow it keeps waiting for more
// until the container has exited and its log is drained, or ctx is done.
func (m *Manager) Logs(ctx context.Context, ref string, follow bool, w io.Writer) error {
	r, err := m.resolve(ctx, ref)
	if err != nil {
		return err
	}
	var f *os.File
	for {
		f, err = os.Open(r.LogPath)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("logs of container %s: %w", r.Name, err)
		}
		// No log yet: the container is still starting, or never started.
		if !follow || !m.stillActive(r.ID) {
			return nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	defer f.Close()

	br := bufio.NewReaderSize(f, 64<<10)
	var pending []byte
	exited := false
	for {
		chunk, err := br.ReadBytes('\n')
		pending = append(pending, chunk...)
		if err == nil {
			line := pending[:len(pending)-1]
			if _, partial, text, perr := parseCRILine(line); perr == nil {
				if !partial {
					text = append(text, '\n')
				}
				if _, werr := w.Write(text); werr != nil {
					return werr
				}
			}
			pending = pending[:0]
			continue
		}
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("logs of container %s: %w", r.Name, err)
		}
		// At the end of what is written so far. An exited container's
		// log is complete once seen exited: the monitor flushes the log
		// before it records the exit, so one more pass drains it.
		if !follow || exited {
			return nil
		}
		exited = !m.stillActive(r.ID)
		if !exited {
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
}

// stillActive reports whether container id is running or starting.
func (m *Manager) stillActive(id string) bool {
	r, err := m.readRecord(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false
	}
	if err != nil {
		return true
	}
	if r, err = m.refresh(context.Background(), r); err != nil {
		return false
	}
	return m.active(r)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
