// Command testregistry serves a registry on loopback holding sample images
// built from the host's busybox-static, for `make demo` and `make bench`.
// It prints the registry's host:port, then serves until SIGINT/SIGTERM.
//
//	testregistry [-addr 127.0.0.1:5000] [-big MiB]
//
// Images: demo/busybox:latest (OCI), demo/untrusted:latest (the same),
// demo/layered:latest (4 layers with whiteouts), demo/multi:latest
// (amd64+arm64 index), and with -big N,
// demo/big:latest of about N MiB of incompressible data in 8 layers.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sigil-project/sigil/tests/testimage"
)

func main() {
	big := flag.Int("big", 0, "also push demo/big:latest of about this many MiB")
	addr := flag.String("addr", "", "listen on this loopback host:port (default: a free port)")
	flag.Parse()
	if err := run(*addr, *big); err != nil {
		fmt.Fprintln(os.Stderr, "testregistry:", err)
		os.Exit(1)
	}
}

func run(addr string, bigMiB int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reg, err := testimage.NewRegistryAt(addr)
	if err != nil {
		return err
	}
	defer reg.Close()
	push := func(ref string, build func() (remote.Taggable, error)) error {
		t, err := build()
		if err != nil {
			return fmt.Errorf("build %s: %w", ref, err)
		}
		if _, err := testimage.Push(ctx, reg.Host+"/"+ref, t); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		return nil
	}
	if err := push("demo/busybox:latest", func() (remote.Taggable, error) { return testimage.Busybox(testimage.OCI) }); err != nil {
		return err
	}
	// The same busybox under another name, for the demo and the user
	// guide to show an image the trust policy refuses.
	if err := push("demo/untrusted:latest", func() (remote.Taggable, error) { return testimage.Busybox(testimage.OCI) }); err != nil {
		return err
	}
	if err := push("demo/layered:latest", func() (remote.Taggable, error) { return testimage.Layered(testimage.Docker) }); err != nil {
		return err
	}
	if err := push("demo/multi:latest", func() (remote.Taggable, error) { return testimage.MultiPlatform(testimage.OCI) }); err != nil {
		return err
	}
	if bigMiB > 0 {
		if err := push("demo/big:latest", func() (remote.Taggable, error) { return bigImage(bigMiB) }); err != nil {
			return err
		}
	}
	fmt.Println(reg.Host)
	<-ctx.Done()
	return nil
}

// bigImage is busybox plus 8 layers of random (incompressible) data.
func bigImage(mib int) (v1.Image, error) {
	files, err := testimage.BaseFiles()
	if err != nil {
		return nil, err
	}
	base, err := testimage.Layer(files...)
	if err != nil {
		return nil, err
	}
	layers := []v1.Layer{base}
	per := mib << 20 / 8
	for i := range 8 {
		b := make([]byte, per)
		rand.Read(b)
		l, err := testimage.Layer(testimage.File{Name: fmt.Sprintf("data/blob%d", i), Body: b})
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	return testimage.Build(testimage.OCI, testimage.Config{Cmd: []string{"true"}}, "amd64", layers...)
}
