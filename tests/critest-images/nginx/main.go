// Command nginx stands in for nginx in critest's web-server images: a
// master process and a worker process, both named "nginx" (so `pidof nginx`
// finds them), titled as nginx titles them ("nginx: master process ..." in
// the master's /proc/<pid>/cmdline, "nginx: worker process" in the
// worker's), a pid file at /var/run/nginx.pid, the worker running as user
// nginx, and HTTP served from the document root on the ports that the
// "listen" lines of /etc/nginx/conf.d/*.conf name (80 when none).
//
// Signals as nginx: SIGTERM and SIGINT stop at once, SIGQUIT stops
// gracefully; the master passes them to its worker and starts a new worker
// when one dies.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sigil-project/sigil/tests/critest-images/internal/accesslog"
)

const (
	confDir     = "/etc/nginx/conf.d"
	pidFile     = "/var/run/nginx.pid"
	defaultRoot = "/usr/share/nginx/html"
	masterTitle = "nginx: master process "
	workerTitle = "nginx: worker process"
	// nginx's user in the nginx images (alpine's and Debian's).
	workerUID, workerGID = 101, 101
)

func main() {
	// nginx's error log: "2006/01/02 15:04:05 [level] message".
	log.SetFlags(log.LstdFlags | log.LUTC)
	switch {
	case os.Args[0] == workerTitle:
		worker()
	case strings.HasPrefix(os.Args[0], masterTitle):
		master()
	default:
		// Retitle: exec ourselves (the same PID) with nginx's master title
		// as the whole command line, as nginx rewrites its argv.
		self, err := os.Executable()
		if err != nil {
			log.Fatalf("[emerg] find own executable: %v", err)
		}
		title := masterTitle + strings.Join(os.Args, " ")
		if err := syscall.Exec(self, []string{title}, os.Environ()); err != nil {
			log.Fatalf("[emerg] exec %s as %q: %v", self, title, err)
		}
	}
}

// config is what the stand-in reads of nginx's configuration.
type config struct {
	ports []int
	root  string
}

func readConfig() (config, error) {
	c := config{root: defaultRoot}
	files, _ := filepath.Glob(filepath.Join(confDir, "*.conf"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return c, err
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			fields := strings.Fields(strings.TrimSuffix(strings.TrimSpace(sc.Text()), ";"))
			if len(fields) < 2 {
				continue
			}
			switch fields[0] {
			case "listen":
				_, p, ok := strings.Cut(fields[1], ":")
				if !ok {
					p = fields[1]
				}
				n, err := strconv.Atoi(p)
				if err != nil {
					return c, fmt.Errorf("%s: listen %q: not a port", f, fields[1])
				}
				c.ports = append(c.ports, n)
			case "root":
				if c.root == defaultRoot {
					c.root = fields[1]
				}
			}
		}
	}
	if len(c.ports) == 0 {
		c.ports = []int{80}
	}
	return c, nil
}

func master() {
	cfg, err := readConfig()
	if err != nil {
		log.Fatalf("[emerg] %v", err)
	}
	var files []*os.File
	for _, p := range cfg.ports {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			log.Fatalf("[emerg] bind() to 0.0.0.0:%d failed: %v", p, err)
		}
		f, err := l.(*net.TCPListener).File()
		if err != nil {
			log.Fatalf("[emerg] listener on port %d: %v", p, err)
		}
		files = append(files, f)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		log.Fatalf("[emerg] open() %q failed: %v", pidFile, err)
	}
	defer os.Remove(pidFile)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP)

	var mu sync.Mutex
	var current *os.Process
	stopping := false
	exited := make(chan struct{})
	var start func() error
	start = func() error {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		cmd := &exec.Cmd{
			Path:       self,
			Args:       []string{workerTitle, cfg.root},
			Stdout:     os.Stdout,
			Stderr:     os.Stderr,
			ExtraFiles: files,
		}
		if os.Getuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: workerUID, Gid: workerGID}}
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		log.Printf("[notice] start worker process %d", cmd.Process.Pid)
		mu.Lock()
		current = cmd.Process
		mu.Unlock()
		go func() {
			err := cmd.Wait()
			mu.Lock()
			s := stopping
			mu.Unlock()
			if s {
				close(exited)
				return
			}
			log.Printf("[notice] worker process %d exited (%v); starting a new one", cmd.Process.Pid, err)
			if err := start(); err != nil {
				log.Fatalf("[alert] start worker: %v", err)
			}
		}()
		return nil
	}
	if err := start(); err != nil {
		log.Fatalf("[alert] start worker: %v", err)
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			log.Printf("[notice] signal %d (SIGHUP) received, reconfiguring (the stand-in keeps its configuration)", sig)
			continue
		}
		log.Printf("[notice] signal %d (%v) received, exiting", sig, sig)
		mu.Lock()
		stopping = true
		p := current
		mu.Unlock()
		p.Signal(sig)
		select {
		case <-exited:
		case sig2 := <-sigs:
			p.Signal(sig2)
			<-exited
		}
		log.Printf("[notice] exit")
		return
	}
}

func worker() {
	if len(os.Args) < 2 {
		log.Fatalf("[emerg] worker: no document root given")
	}
	root := os.Args[1]
	srv := &http.Server{Handler: accessLog(http.FileServer(http.Dir(root)))}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	errs := make(chan error, 8)
	for fd := 3; ; fd++ {
		f := os.NewFile(uintptr(fd), "listener")
		if f == nil {
			break
		}
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			break
		}
		go func() { errs <- srv.Serve(l) }()
	}
	select {
	case sig := <-sigs:
		if sig == syscall.SIGQUIT {
			log.Printf("[notice] gracefully shutting down")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
		}
	case err := <-errs:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("[alert] worker: %v", err)
		}
	}
}

// accessLog writes nginx's "main" log format to stdout (nginx's images
// link access.log to /dev/stdout).
func accessLog(h http.Handler) http.Handler {
	return accesslog.Handler(h, func(e accesslog.Entry) string {
		r := e.Request
		return fmt.Sprintf("%s - - [%s] %q %d %d \"-\" %q \"-\"", e.Host, e.Time,
			r.Method+" "+r.RequestURI+" "+r.Proto, e.Status, e.Bytes, r.UserAgent())
	})
}
