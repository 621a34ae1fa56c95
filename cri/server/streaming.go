package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/sigil-project/sigil/cri/streaming"
	"github.com/sigil-project/sigil/runtime/container"
)

// streamRuntime does the work behind the streaming server's URLs.
type streamRuntime struct{ s *Server }

func resizes(in <-chan streaming.TerminalSize) <-chan container.TerminalSize {
	if in == nil {
		return nil
	}
	out := make(chan container.TerminalSize)
	go func() {
		defer close(out)
		for sz := range in {
			out <- container.TerminalSize{Width: sz.Width, Height: sz.Height}
		}
	}()
	return out
}

// Exec runs cmd in the container connected to the client's streams. A
// non-zero exit is reported as the streaming protocol's exit error.
func (r *streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize) error {
	code, err := r.s.containers.Exec(ctx, id, container.ExecOptions{
		Args: cmd, Tty: tty, Stdin: in != nil, IgnoreSignals: true, Resize: resizes(resize),
	}, container.IO{Stdin: in, Stdout: out, Stderr: errw})
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// Attach connects the client to the container's own process.
func (r *streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize) error {
	info, err := r.s.containers.Inspect(ctx, id)
	if err != nil {
		return err
	}
	aio := container.AttachIO{Stdin: in, Stdout: out, Stderr: errw, Resize: resizes(resize)}
	if _, cfg, ok := metaOf(info); ok {
		aio.CloseStdin = cfg.GetStdinOnce()
	}
	return r.s.containers.Attach(ctx, id, aio)
}

// PortForward copies between the stream and a TCP connection to
// localhost:port made inside the pod's network namespace.
func (r *streamRuntime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	sb, err := r.s.sandboxes.get(podID)
	if err != nil {
		return err
	}
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port %d: %w", port, errdefs.ErrInvalidArgument)
	}
	conn, err := dialInNetNS(ctx, sb.NetNS, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("port forward to pod %s port %d: %w", podID, port, err)
	}
	defer conn.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = io.Copy(stream, conn)
	stream.Close()
	wg.Wait()
	return nil
}

// dialInNetNS connects to addr from inside the network namespace netns
// ("" for the host's). The socket is made on an OS thread that joins the
// namespace and is then discarded (its goroutine ends locked), so no other
// goroutine ever runs in the pod's namespace; the socket keeps the
// namespace it was made in.
func dialInNetNS(ctx context.Context, netns, addr string) (net.Conn, error) {
	if netns == "" {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{nil, err}
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			done <- result{nil, fmt.Errorf("enter the pod's network namespace: %w", err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		done <- result{c, err}
	}()
	res := <-done
	return res.c, res.err
}

// exitError is how the streaming server learns a command's exit code: it
// reports errors with ExitStatus() as the remote command's exit.
type exitError struct{ code int }

func (e *exitError) Error() string   { return fmt.Sprintf("command exited with code %d", e.code) }
func (e *exitError) String() string  { return e.Error() }
func (e *exitError) Exited() bool    { return true }
func (e *exitError) ExitStatus() int { return e.code }
