package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/sigil-project/sigil/cri/server"
	"github.com/sigil-project/sigil/runtime/pull"
)

type criFlags struct {
	socket      string
	cniConfDir  string
	cniBinDir   string
	streamAddr  string
	policiesDir string
}

func newCRICommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "cri", Short: "The Kubernetes CRI runtime: sigil cri serve"}
	var f criFlags
	serve := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve the CRI (RuntimeService and ImageService) on a unix socket for kubelet and crictl",
		Long: `Serve the CRI on a unix socket. Kubelet uses it with
--container-runtime-endpoint=unix:///run/sigil/cri.sock, crictl with
--runtime-endpoint. Pods get pinned namespaces and a CNI network; containers
run under monitors that outlive this server, so stopping or upgrading it
never stops a pod. Images are the CLI's (sigil images), judged by --policy, or
by <policies-dir>/<namespace>.json for a pod of that Kubernetes namespace.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.criServe(cmd.Context(), f)
		},
	}
	fl := serve.Flags()
	fl.StringVar(&f.socket, "socket", "/run/sigil/cri.sock", "unix socket to serve on")
	fl.StringVar(&f.cniConfDir, "cni-conf-dir", "/etc/cni/net.d", "directory of CNI network configurations (the first, by name, is used)")
	fl.StringVar(&f.cniBinDir, "cni-bin-dir", "/opt/cni/bin:/usr/lib/cni", "CNI plugin directories, colon-separated")
	fl.StringVar(&f.streamAddr, "stream-address", "127.0.0.1:0", "address of the exec/attach/port-forward streaming server (port 0: any free port)")
	fl.StringVar(&f.policiesDir, "policies-dir", "/etc/sigil/policies", "per-namespace trust policies: <dir>/<namespace>.json replaces --policy for that namespace's pods")
	cmd.AddCommand(serve)
	return cmd
}

// validNamespace is a Kubernetes namespace name (a DNS label), so that it
// can name a file safely.
var validNamespace = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`) })

// namespaceVerifier loads, for each call, the policy of a namespace when
// <policies-dir>/<namespace>.json exists, else the default policy: an
// edited policy applies to the next pull or container. Signatures are read
// with the given credentials (the pull's, or the node's) and acceptances
// cached, as for the CLI.
func (a *app) namespaceVerifier(dir string) server.VerifierFunc {
	return func(_ context.Context, namespace string, keychain authn.Keychain) (pull.Verifier, error) {
		path := a.opts.Policy
		if namespace != "" && validNamespace().MatchString(namespace) && dir != "" {
			p := filepath.Join(dir, namespace+".json")
			if _, err := os.Stat(p); err == nil {
				path = p
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
		iv, _, err := a.policyVerifier(path, keychain, true)
		return iv, err
	}
}

func (a *app) criServe(ctx context.Context, f criFlags) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	conf, err := a.registries()
	if err != nil {
		return err
	}
	// Monitors run the embedded runtime shim when this build has one.
	exe, err := a.shimPath()
	if err != nil {
		return err
	}
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return err
		}
	}
	var binDirs []string
	for _, d := range strings.Split(f.cniBinDir, ":") {
		if d != "" {
			binDirs = append(binDirs, d)
		}
	}
	srv, err := server.New(ctx, server.Config{
		Root:       a.opts.Root,
		State:      a.opts.State,
		Verifier:   a.namespaceVerifier(f.policiesDir),
		Registries: conf,
		Remote:     a.remoteClientWith,
		Keychain:   userKeychain(),
		CNIConfDir: f.cniConfDir,
		CNIBinDirs: binDirs,
		StreamAddr: f.streamAddr,
		Executable: exe,
		// Without it (plain go build) pods that share a PID namespace are
		// refused, saying how to build sigil.
		PauseBinary: pauseBinary,
		Version:     version,
		Logger:      a.logger,
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	if err := os.MkdirAll(filepath.Dir(f.socket), 0o711); err != nil {
		return err
	}
	// A socket left by a server that was killed is in the way.
	if err := os.Remove(f.socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	l, err := net.Listen("unix", f.socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.socket, err)
	}
	if err := os.Chmod(f.socket, 0o660); err != nil {
		return err
	}
	g := grpc.NewServer(
		grpc.UnaryInterceptor(srv.UnaryInterceptor),
		grpc.StreamInterceptor(srv.StreamInterceptor),
		grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20),
	)
	srv.Register(g)
	a.logger.Info("serving the CRI", "socket", f.socket, "stream_address", srv.StreamAddr(), "pid", os.Getpid())
	served := make(chan error, 1)
	go func() { served <- g.Serve(l) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Pods and containers keep running: only the server goes.
	done := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		g.Stop()
	}
	a.logger.Info("CRI server stopped")
	return nil
}
