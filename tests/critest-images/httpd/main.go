// Command httpd stands in for Apache httpd 2.4 in critest's httpd image
// (registry.k8s.io/e2e-test-images/httpd, from the official httpd image,
// whose httpd-foreground runs `httpd -DFOREGROUND`). It writes Apache's
// start-up lines to stderr, its access log (common format) to stdout, and
// serves the document root (/usr/local/apache2/htdocs) on port 80.
//
// Signals as Apache: SIGWINCH (the image's stop signal) stops gracefully,
// SIGTERM and SIGINT at once; SIGHUP and SIGUSR1 restart, which the
// stand-in only logs.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sigil-project/sigil/tests/critest-images/internal/accesslog"
)

const (
	docRoot = "/usr/local/apache2/htdocs"
	version = "Apache/2.4.39 (Unix)"
)

// logf writes one line of Apache's error log format.
func logf(module, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] [%s] [pid %d:tid %d] %s\n",
		time.Now().Format("Mon Jan 02 15:04:05.000000 2006"), module, os.Getpid(), syscall.Gettid(),
		fmt.Sprintf(format, args...))
}

func main() {
	foreground := false
	for _, a := range os.Args[1:] {
		if a == "-DFOREGROUND" || a == "FOREGROUND" {
			foreground = true
		}
	}
	if !foreground {
		fmt.Fprintln(os.Stderr, "httpd (stand-in): only -DFOREGROUND is supported, as the image's httpd-foreground runs it")
		os.Exit(1)
	}
	l, err := net.Listen("tcp", ":80")
	if err != nil {
		fmt.Fprintf(os.Stderr, "(98)Address in use: AH00072: make_sock: could not bind to address 0.0.0.0:80: %v\nno listening sockets available, shutting down\n", err)
		os.Exit(1)
	}
	addr := "127.0.0.1"
	if as, err := net.InterfaceAddrs(); err == nil {
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				addr = n.IP.String()
				break
			}
		}
	}
	// As Apache without a ServerName: the warning comes twice (config
	// check, then start).
	for range 2 {
		fmt.Fprintf(os.Stderr, "AH00558: httpd: Could not reliably determine the server's fully qualified domain name, using %s. Set the 'ServerName' directive globally to suppress this message\n", addr)
	}
	logf("mpm_event:notice", "AH00489: %s configured -- resuming normal operations", version)
	logf("core:notice", "AH00094: Command line: 'httpd -D FOREGROUND'")

	srv := &http.Server{Handler: accessLog(http.FileServer(http.Dir(docRoot)))}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGWINCH, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(l) }()
	for {
		select {
		case err := <-errs:
			if !errors.Is(err, http.ErrServerClosed) {
				logf("core:error", "AH00015: Unable to serve: %v", err)
				os.Exit(1)
			}
			return
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP, syscall.SIGUSR1:
				logf("mpm_event:notice", "AH00493: %s received.  Doing graceful restart (the stand-in keeps serving)", sigName(sig))
			case syscall.SIGWINCH:
				logf("mpm_event:notice", "AH00492: caught SIGWINCH, shutting down gracefully")
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				srv.Shutdown(ctx)
				cancel()
				return
			default:
				logf("mpm_event:notice", "AH00491: caught %s, shutting down", sigName(sig))
				return
			}
		}
	}
}

func sigName(s os.Signal) string {
	switch s {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return "SIGTERM"
}

// accessLog writes Apache's common log format to stdout.
func accessLog(h http.Handler) http.Handler {
	return accesslog.Handler(h, func(e accesslog.Entry) string {
		r := e.Request
		return fmt.Sprintf("%s - - [%s] \"%s %s %s\" %d %d", e.Host, e.Time,
			r.Method, r.RequestURI, r.Proto, e.Status, e.Bytes)
	})
}
