package container

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// A detached container's monitor takes requests from other processes
// (the CRI server) through two files in the container's state directory:
//
//   - control, a FIFO of text lines: "reopen" makes the monitor reopen the
//     container's log at its path (after a log rotation renamed it);
//   - attach.sock, a unix socket: each connection is attached to the
//     container's stdio, in frames of one type byte, a big-endian uint32
//     length and the payload.
//
// Both are served by the monitor only, so they exist while it runs.
const (
	frameStdin  = 'i' // client -> monitor: bytes for the container's stdin
	frameClose  = 'c' // client -> monitor: close the container's stdin
	frameResize = 'r' // client -> monitor: terminal size, uint16 width, uint16 height
	frameStdout = 'o' // monitor -> client: output (all of it, with a terminal)
	frameStderr = 'e' // monitor -> client: error output
)

// serveControl reads requests from the control FIFO until ctx is done.
func (m *Manager) serveControl(ctx context.Context, id string, reopen func() error, log *slog.Logger) {
	p := m.controlPath(id)
	_ = os.Remove(p)
	if err := unix.Mkfifo(p, 0o600); err != nil {
		log.WarnContext(ctx, "cannot create the control FIFO: log reopening will not work", "error", err)
		return
	}
	// Opened read-write so that it never reads EOF when a writer leaves.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		log.WarnContext(ctx, "cannot open the control FIFO", "error", err)
		return
	}
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		switch sc.Text() {
		case "reopen":
			if err := reopen(); err != nil {
				log.WarnContext(ctx, "reopening the container log", "error", err)
			} else {
				log.InfoContext(ctx, "reopened the container log")
			}
		default:
			log.DebugContext(ctx, "unknown control request", "request", sc.Text())
		}
	}
}

// ReopenLog asks the monitor of a running container to reopen its log
// file, as after a rotation that renamed it (the CRI's
// ReopenContainerLog), and waits until the new file exists. A container
// that is not running gives errdefs.ErrFailedPrecondition.
func (m *Manager) ReopenLog(ctx context.Context, ref string) error {
	r, err := m.resolve(ctx, ref)
	if err != nil {
		return err
	}
	if r.Status != StatusRunning || !r.Detached {
		return fmt.Errorf("container %s is %s: only a running detached container's log can be reopened: %w", r.Name, r.Status, errdefs.ErrFailedPrecondition)
	}
	f, err := os.OpenFile(m.controlPath(r.ID), os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("reopen the log of container %s: its monitor does not answer: %w", r.Name, err)
	}
	_, err = f.Write([]byte("reopen\n"))
	f.Close()
	if err != nil {
		return fmt.Errorf("reopen the log of container %s: %w", r.Name, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(r.LogPath); err == nil {
			return nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("reopen the log of container %s: %s did not reappear within 5s (see %s)", r.Name, r.LogPath, m.monitorLog(r.ID))
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

// attachServer fans a container's output out to attached clients and
// passes their input on. Output to a client that does not keep up is
// dropped with the client, never blocking the container.
type attachServer struct {
	l   net.Listener
	log *slog.Logger

	mu      sync.Mutex
	clients map[*attachClient]struct{}
	stdin   io.WriteCloser // set once the container started
	resize  func(TerminalSize)
	closed  bool
}

type attachClient struct {
	conn net.Conn
	out  chan []byte
	once sync.Once
}

func (c *attachClient) close() { c.once.Do(func() { c.conn.Close() }) }

func newAttachServer(path string, log *slog.Logger) (*attachServer, error) {
	_ = os.Remove(path)
	var l net.Listener
	err := viaShortPath(path, func(p string) error {
		var err error
		l, err = net.Listen("unix", p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &attachServer{l: l, log: log, clients: map[*attachClient]struct{}{}}, nil
}

// connect sets where input and resizes go, once the process exists.
func (a *attachServer) connect(stdin io.WriteCloser, resize func(TerminalSize)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stdin, a.resize = stdin, resize
}

func (a *attachServer) serve() {
	for {
		conn, err := a.l.Accept()
		if err != nil {
			return
		}
		c := &attachClient{conn: conn, out: make(chan []byte, 256)}
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			conn.Close()
			return
		}
		a.clients[c] = struct{}{}
		a.mu.Unlock()
		go a.write(c)
		go a.read(c)
	}
}

func (a *attachServer) drop(c *attachClient) {
	a.mu.Lock()
	delete(a.clients, c)
	a.mu.Unlock()
	c.close()
}

func (a *attachServer) write(c *attachClient) {
	defer a.drop(c)
	for b := range c.out {
		if _, err := c.conn.Write(b); err != nil {
			return
		}
	}
}

func (a *attachServer) read(c *attachClient) {
	br := bufio.NewReader(c.conn)
	for {
		typ, payload, err := readFrame(br)
		if err != nil {
			return
		}
		a.mu.Lock()
		stdin, resize := a.stdin, a.resize
		a.mu.Unlock()
		switch typ {
		case frameStdin:
			if stdin != nil {
				if _, err := stdin.Write(payload); err != nil {
					a.log.Debug("attach: writing to the container's stdin", "error", err)
				}
			}
		case frameClose:
			if stdin != nil {
				_ = stdin.Close()
			}
		case frameResize:
			if resize != nil && len(payload) == 4 {
				resize(TerminalSize{Width: binary.BigEndian.Uint16(payload), Height: binary.BigEndian.Uint16(payload[2:])})
			}
		}
	}
}

// stream returns the writer for one output stream (frameStdout or
// frameStderr).
func (a *attachServer) stream(typ byte) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		frame := appendFrame(nil, typ, p)
		a.mu.Lock()
		defer a.mu.Unlock()
		for c := range a.clients {
			select {
			case c.out <- frame:
			default:
				// A client that does not keep up loses its attachment
				// rather than slow the container down.
				delete(a.clients, c)
				close(c.out)
			}
		}
		return len(p), nil
	})
}

// close ends every attachment: the clients read EOF.
func (a *attachServer) close() {
	a.l.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for c := range a.clients {
		delete(a.clients, c)
		close(c.out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func appendFrame(b []byte, typ byte, payload []byte) []byte {
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("attach: frame of %d bytes is too large", n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return hdr[0], payload, nil
}

// AttachIO connects a caller to a running container's own process.
// Stdin, when set, is passed to the container's stdin (which must have
// been kept open: CreateOptions.Stdin); its EOF closes the container's
// stdin when CloseStdin is set (the CRI's stdin_once). With a terminal
// all output comes on Stdout.
type AttachIO struct {
	Stdin      io.Reader
	CloseStdin bool
	Stdout     io.Writer
	Stderr     io.Writer
	Resize     <-chan TerminalSize
}

// Attach connects aio to a running detached container's process until it
// exits or ctx is done. A container that is not running gives
// errdefs.ErrFailedPrecondition.
func (m *Manager) Attach(ctx context.Context, ref string, aio AttachIO) error {
	r, err := m.resolve(ctx, ref)
	if err != nil {
		return err
	}
	if r.Status != StatusRunning || !r.Detached {
		return fmt.Errorf("container %s is %s: only a running detached container can be attached to: %w", r.Name, r.Status, errdefs.ErrFailedPrecondition)
	}
	var conn net.Conn
	err = viaShortPath(m.attachPath(r.ID), func(p string) error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "unix", p)
		return err
	})
	if err != nil {
		return fmt.Errorf("attach to container %s: its monitor does not answer: %w", r.Name, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var wmu sync.Mutex
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := conn.Write(appendFrame(nil, typ, p))
		return err
	}
	if aio.Stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := aio.Stdin.Read(buf)
				if n > 0 && send(frameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					if aio.CloseStdin {
						_ = send(frameClose, nil)
					}
					return
				}
			}
		}()
	}
	if aio.Resize != nil {
		go func() {
			for sz := range aio.Resize {
				var p [4]byte
				binary.BigEndian.PutUint16(p[:], sz.Width)
				binary.BigEndian.PutUint16(p[2:], sz.Height)
				if send(frameResize, p[:]) != nil {
					return
				}
			}
		}()
	}
	br := bufio.NewReader(conn)
	for {
		typ, payload, err := readFrame(br)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil // the container exited (or its monitor did)
		}
		var w io.Writer
		switch typ {
		case frameStdout:
			w = aio.Stdout
		case frameStderr:
			w = aio.Stderr
		}
		if w != nil {
			if _, err := w.Write(payload); err != nil {
				return err
			}
		}
	}
}

// viaShortPath calls fn with a name for path that fits in a unix socket
// address (108 bytes): /proc/self/fd/<fd of its directory>/<base>. State
// directories can be deep enough for the plain path not to fit.
func viaShortPath(path string, fn func(string) error) error {
	if len(path) < 100 {
		return fn(path)
	}
	dir, err := os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	return fn(fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path)))
}
