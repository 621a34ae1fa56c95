// Command critest-images serves stand-ins for the images that critest
// (kubernetes-sigs/cri-tools) pulls from registry.k8s.io, k8s.gcr.io and
// gcr.io, so the suite runs on a machine without the internet.
//
// Each stand-in keeps its upstream image's entrypoint, command, user, stop
// signal and the files the tests look at. They are built from Debian's
// busybox package (not busybox-static, whose shell runs its applets
// rather than the files in PATH), with every applet a hard link as in the
// busybox images, and from small static Go programs built here from this
// directory: nginx (master and worker processes), httpd (Apache's start-up
// and access log lines), ipcs and pgrep (busybox applets Debian's builds
// lack), the nonewprivs probe and pause. It then serves them from a
// registry on loopback and writes the registries.conf that mirrors the
// upstream hosts to it:
//
//	go run ./tests/critest-images -registries-conf /tmp/ct/registries.conf
//	sigil --registries-conf /tmp/ct/registries.conf ... cri serve ...
//
// It serves until SIGINT or SIGTERM. With -push it pushes to a registry
// already running on loopback and exits instead. Debian's busybox package
// is fetched with `apt-get download busybox` (it conflicts with
// busybox-static, which the other tests need installed); -busybox names a
// binary to use instead.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/sigil-project/sigil/tests/testimage"
)

// upstreamHosts are the registries critest pulls from.
var upstreamHosts = []string{"registry.k8s.io", "k8s.gcr.io", "gcr.io"}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "serve the images from a registry on this loopback `address`")
	push := flag.String("push", "", "push to the registry at this loopback `host:port` and exit, instead of serving")
	confPath := flag.String("registries-conf", "", "write the registries.conf mirrors to this `file` (default: standard output)")
	busybox := flag.String("busybox", "", "the busybox `binary` of the images, one whose shell searches PATH (default: Debian's busybox package, fetched with apt-get download)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("critest-images: ")
	if err := run(*listen, *push, *confPath, *busybox); err != nil {
		log.Fatal(err)
	}
}

func run(listen, push, confPath, busybox string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "critest-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bins, err := buildPrograms(ctx, tmp)
	if err != nil {
		return err
	}
	if busybox == "" {
		if busybox, err = debianBusybox(ctx, tmp); err != nil {
			return err
		}
	}
	images, err := standIns(busybox, bins)
	if err != nil {
		return err
	}

	host := push
	if push != "" {
		if err := loopback(push); err != nil {
			return fmt.Errorf("-push %s: %w", push, err)
		}
	} else {
		if err := loopback(listen); err != nil {
			return fmt.Errorf("-listen %s: %w", listen, err)
		}
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w (pick another port, or 127.0.0.1:0 for a free one)", listen, err)
		}
		srv := &http.Server{Handler: registry.New(registry.Logger(log.New(os.Stderr, "registry: ", 0)))}
		go srv.Serve(l)
		defer srv.Close()
		host = l.Addr().String()
	}

	for _, im := range images {
		for _, ref := range im.refs {
			if _, err := testimage.Push(ctx, host+"/"+ref, im.img); err != nil {
				return fmt.Errorf("push the stand-in for %s to %s: %w", ref, host, err)
			}
		}
	}
	conf := registriesConf(host)
	if confPath == "" {
		fmt.Print(conf)
	} else if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write the registries.conf mirrors: %w", err)
	}
	n := 0
	for _, im := range images {
		n += len(im.refs)
	}
	if push != "" {
		log.Printf("pushed %d stand-ins to %s", n, host)
		return nil
	}
	log.Printf("serving %d stand-ins on %s until SIGINT or SIGTERM", n, host)
	<-ctx.Done()
	return nil
}

// loopback refuses addresses that are not on the loopback interface: the
// stand-ins are throwaway images under upstream names.
func loopback(addr string) error {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not host:port: %w", err)
	}
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
		return errors.New("not a loopback address (use 127.0.0.1:PORT): stand-ins carry upstream names and must not leave this machine")
	}
	return nil
}

// registriesConf mirrors every upstream host to host/<upstream host>.
func registriesConf(host string) string {
	var b strings.Builder
	b.WriteString("# critest stand-ins (tests/critest-images): upstream hosts mirrored to " + host + "\n")
	for _, h := range upstreamHosts {
		fmt.Fprintf(&b, "\n[[registry]]\nprefix = %q\nlocation = %q\n\n[[registry.mirror]]\nlocation = %q\ninsecure = true\n", h, h, host+"/"+h)
	}
	return b.String()
}

// programs are the stand-in programs, each a main package in a directory
// next to this file.
var programs = []string{"nginx", "httpd", "ipcs", "pgrep", "nnp", "pause"}

// buildPrograms builds the programs, static (CGO_ENABLED=0) for linux/amd64,
// into dir and returns their paths by name.
func buildPrograms(ctx context.Context, dir string) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m").Output()
	if err != nil {
		return nil, fmt.Errorf("find the module with `go list -m`: %w (run this from the sigil repository, with the Go toolchain on PATH)", err)
	}
	self := strings.TrimSpace(string(out)) + "/tests/critest-images"
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", dir + string(filepath.Separator)}
	for _, p := range programs {
		args = append(args, self+"/"+p)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build the stand-in programs (go %s): %w", strings.Join(args, " "), err)
	}
	bins := map[string]string{}
	for _, p := range programs {
		bins[p] = filepath.Join(dir, p)
	}
	return bins, nil
}
