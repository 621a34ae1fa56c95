package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// drainTimeout bounds how long output is copied after a process exited:
// a background child of an exec'd process may hold its stdout open.
const drainTimeout = 2 * time.Second

// streams is what a process's stdio is connected to.
type streams struct {
	in  io.Reader // nil: /dev/null, unless keepStdin
	out io.Writer // nil: discarded
	err io.Writer // nil: discarded; unused with a terminal
	// keepStdin gives the process a stdin that stays open with nothing
	// written to it (a detached -i container).
	keepStdin bool
	tty       bool
	// terminal is the caller's output before any wrapping, to find the
	// caller's terminal (its size) when out is wrapped.
	terminal io.Writer
}

// procIO connects a libcontainer.Process to streams, with pipes or
// through a pseudo-terminal whose master libcontainer's init sends back
// over a console socket.
type procIO struct {
	s streams
	// childEnds are the process's ends, closed here once it started.
	childEnds []io.Closer
	// ourEnds are closed when the process is done.
	ourEnds []io.Closer
	outputs sync.WaitGroup

	consoleSock *os.File
	consoleC    chan consoleResult
	master      *os.File
	// stdinW is the writing end of a kept-open stdin (keepStdin without a
	// terminal), for attached clients.
	stdinW   *os.File
	hostTerm console.Console // the caller's terminal, for raw mode and size
	rawSet   bool
	closed   bool
}

type consoleResult struct {
	f   *os.File
	err error
}

// newProcIO prepares p's stdio; postStart finishes the job once the
// process has started, and close once it has exited.
func newProcIO(p *libcontainer.Process, s streams) (_ *procIO, retErr error) {
	pio := &procIO{s: s}
	defer func() {
		if retErr != nil {
			pio.close(context.Background())
		}
	}()
	if s.out == nil {
		pio.s.out = io.Discard
	}
	if s.err == nil {
		pio.s.err = io.Discard
	}
	if s.tty {
		return pio, pio.setupTTY(p)
	}

	switch {
	case s.in != nil || s.keepStdin:
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		p.Stdin = r
		pio.childEnds = append(pio.childEnds, r)
		pio.ourEnds = append(pio.ourEnds, w)
		if s.in != nil {
			go func() {
				_, _ = io.Copy(w, s.in)
				_ = w.Close()
			}()
		} else {
			pio.stdinW = w // kept open, written by attachments
		}
	default:
		null, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		p.Stdin = null
		pio.childEnds = append(pio.childEnds, null)
	}
	for _, o := range []struct {
		set func(io.Writer)
		dst io.Writer
	}{
		{func(w io.Writer) { p.Stdout = w }, pio.s.out},
		{func(w io.Writer) { p.Stderr = w }, pio.s.err},
	} {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		o.set(w)
		pio.childEnds = append(pio.childEnds, w)
		pio.ourEnds = append(pio.ourEnds, r)
		pio.outputs.Add(1)
		go func(dst io.Writer) {
			defer pio.outputs.Done()
			_, _ = io.Copy(dst, r)
		}(o.dst)
	}
	return pio, nil
}

func (pio *procIO) setupTTY(p *libcontainer.Process) error {
	p.Stdin, p.Stdout, p.Stderr = nil, nil, nil
	// The caller's terminal, if any: raw mode when it is our stdin, and
	// its size for the container's.
	for _, x := range []any{pio.s.in, pio.s.out, pio.s.terminal} {
		if f, ok := x.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			if c, err := console.ConsoleFromFile(f); err == nil {
				pio.hostTerm = c
				break
			}
		}
	}
	if pio.hostTerm != nil {
		if sz, err := pio.hostTerm.Size(); err == nil {
			p.ConsoleWidth, p.ConsoleHeight = sz.Width, sz.Height
		}
	}
	parent, child, err := utils.NewSockPair("console")
	if err != nil {
		return err
	}
	p.ConsoleSocket = child
	pio.childEnds = append(pio.childEnds, child)
	pio.consoleSock = parent
	pio.consoleC = make(chan consoleResult, 1)
	go func() {
		f, err := recvFile(parent)
		pio.consoleC <- consoleResult{f, err}
	}()
	return nil
}

// postStart closes the process's ends of the pipes and, with a terminal,
// receives the pty master and starts copying.
func (pio *procIO) postStart(ctx context.Context) error {
	for _, c := range pio.childEnds {
		_ = c.Close()
	}
	pio.childEnds = nil
	if !pio.s.tty {
		return nil
	}
	var res consoleResult
	select {
	case res = <-pio.consoleC:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the container's terminal: %w", ctx.Err())
	}
	_ = pio.consoleSock.Close()
	if res.err != nil {
		return fmt.Errorf("receive the container's terminal: %w", res.err)
	}
	pio.master = res.f
	// As runc does: the master side must not turn \n into \r\n a second
	// time.
	if err := console.ClearONLCR(pio.master.Fd()); err != nil {
		return fmt.Errorf("configure the container's terminal: %w", err)
	}
	if pio.hostTerm != nil {
		if f, ok := pio.s.in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			if err := pio.hostTerm.SetRaw(); err != nil {
				return fmt.Errorf("put the terminal in raw mode: %w", err)
			}
			pio.rawSet = true
		}
	}
	pio.resize()
	pio.outputs.Add(1)
	go func() {
		defer pio.outputs.Done()
		_, _ = io.Copy(pio.s.out, pio.master)
	}()
	if pio.s.in != nil {
		go func() { _, _ = io.Copy(pio.master, pio.s.in) }()
	}
	return nil
}

// setSize sets the container's terminal size.
func (pio *procIO) setSize(sz TerminalSize) {
	if pio.master == nil || sz.Width == 0 || sz.Height == 0 {
		return
	}
	_ = unix.IoctlSetWinsize(int(pio.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
}

// resize gives the container's terminal the size of the caller's.
func (pio *procIO) resize() {
	if pio.master == nil || pio.hostTerm == nil {
		return
	}
	sz, err := pio.hostTerm.Size()
	if err != nil {
		return
	}
	_ = unix.IoctlSetWinsize(int(pio.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
}

// close waits for the output to be copied (at most drainTimeout, or until
// ctx is done), then closes everything and restores the caller's terminal.
func (pio *procIO) close(ctx context.Context) {
	if pio.closed {
		return
	}
	pio.closed = true
	for _, c := range pio.childEnds {
		_ = c.Close()
	}
	if pio.consoleSock != nil {
		_ = pio.consoleSock.Close()
	}
	done := make(chan struct{})
	go func() {
		pio.outputs.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(drainTimeout):
	case <-ctx.Done():
	}
	for _, c := range pio.ourEnds {
		_ = c.Close()
	}
	if pio.master != nil {
		_ = pio.master.Close()
	}
	<-done
	if pio.rawSet {
		_ = pio.hostTerm.Reset()
	}
}

// recvFile receives one file descriptor sent with SCM_RIGHTS on socket.
func recvFile(socket *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(socket.Fd()), name, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 && oobn == 0 {
			return nil, errors.New("the container's init closed the console socket without sending a terminal")
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		if len(msgs) != 1 {
			return nil, fmt.Errorf("got %d control messages on the console socket, want 1", len(msgs))
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil {
			return nil, err
		}
		if len(fds) != 1 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, fmt.Errorf("got %d descriptors on the console socket, want 1", len(fds))
		}
		// Non-blocking, so that the Go poller serves reads and a Close
		// interrupts a pending one.
		if err := unix.SetNonblock(fds[0], true); err != nil {
			unix.Close(fds[0])
			return nil, err
		}
		return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
	}
}
