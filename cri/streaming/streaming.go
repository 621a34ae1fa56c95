// Package streaming serves the CRI's Exec, Attach and PortForward
// streams with k8s.io/cri-streaming, the server containerd and CRI-O use:
// the CRI call returns a one-time URL on this server, and the client
// (kubelet, crictl) upgrades a connection to it with SPDY or websockets.
//
//	srv, err := streaming.Listen("127.0.0.1:0", runtime, logger)
//	go srv.Serve()
//	defer srv.Close()
//	resp, err := srv.GetExec(req)
package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	k8sstreaming "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// TerminalSize is a resize event of a stream with a terminal.
type TerminalSize = remotecommand.TerminalSize

// Runtime does the work behind the streams.
type Runtime interface {
	Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, err io.WriteCloser, tty bool, resize <-chan TerminalSize) error
	Attach(ctx context.Context, containerID string, in io.Reader, out, err io.WriteCloser, tty bool, resize <-chan TerminalSize) error
	PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error
}

// Server is a listening streaming server.
type Server struct {
	k8sstreaming.Server
	l    net.Listener
	http *http.Server
}

// Listen listens on addr (host:port; port 0 picks one) and returns the
// server, whose URLs name the address actually bound.
func Listen(addr string, rt Runtime, logger *slog.Logger) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: listen on %s: %w", addr, err)
	}
	cfg := k8sstreaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: l.Addr().String()}
	cfg.StreamIdleTimeout = 4 * time.Hour
	s, err := k8sstreaming.NewServer(cfg, rt)
	if err != nil {
		l.Close()
		return nil, err
	}
	var errLog *slog.Logger
	if logger != nil {
		errLog = logger.With("component", "streaming")
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	if errLog != nil {
		hs.ErrorLog = slog.NewLogLogger(errLog.Handler(), slog.LevelDebug)
	}
	return &Server{Server: s, l: l, http: hs}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.l.Addr().String() }

// Serve serves until Close.
func (s *Server) Serve() error {
	err := s.http.Serve(s.l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server and its open streams.
func (s *Server) Close() error { return s.http.Close() }
