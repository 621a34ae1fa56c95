package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/cri/network"
	"github.com/sigil-project/sigil/cri/streaming"
	"github.com/sigil-project/sigil/runtime/container"
	"github.com/sigil-project/sigil/runtime/local"
	"github.com/sigil-project/sigil/runtime/pull"
	"github.com/sigil-project/sigil/runtime/registries"
	"github.com/sigil-project/sigil/runtime/remote"
)

// Name and version reported by Version.
const (
	RuntimeName       = "sigil"
	criAPIVersion     = "v1"
	kubeAPIVersion    = "0.1.0"
	defaultStreamAddr = "127.0.0.1:0"
)

// VerifierFunc returns the trust policy for a Kubernetes namespace ("" for
// none known): the namespace's own policy when there is one, else the
// default. It is called for every pull and every container creation, so
// a policy edited on disk applies to the next one. Signatures are read
// with keychain's credentials: the pull's own, or the node's.
type VerifierFunc func(ctx context.Context, namespace string, keychain authn.Keychain) (pull.Verifier, error)

// RemoteFunc returns a registry client that authenticates with keychain.
type RemoteFunc func(keychain authn.Keychain) *remote.Client

// Config is what the server is built from; cmd/sigil fills it from flags.
type Config struct {
	// Root and State are the CLI's --root and --state.
	Root, State string
	// Verifier chooses the trust policy (required).
	Verifier VerifierFunc
	// Registries is registries.conf (mirrors, insecure, blocked); nil
	// means none.
	Registries *registries.Config
	// Remote builds registry clients (required).
	Remote RemoteFunc
	// Keychain is the node's own credentials, used when a pull brings
	// none (the docker/podman auth files).
	Keychain authn.Keychain
	// CNIConfDir and CNIBinDirs locate the CNI configuration and plugins.
	CNIConfDir string
	CNIBinDirs []string
	// StreamAddr is where the streaming server listens (default
	// 127.0.0.1:0, a free port on loopback).
	StreamAddr string
	// Executable is the sigil binary monitors re-execute (default: this
	// one).
	Executable string
	// PauseBinary is the pause program (cmd/sigil/pause/pause.c, static), PID 1
	// of the pods whose containers share a PID namespace; New writes it
	// under State. Without it such pods are refused (FailedPrecondition),
	// and other pods work as ever.
	PauseBinary []byte
	// Version is sigil's version, reported by Version.
	Version string
	Logger  *slog.Logger
}

// Server implements runtimeapi.RuntimeServiceServer and
// runtimeapi.ImageServiceServer.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	cfg        Config
	log        *slog.Logger
	stores     *local.Stores
	containers *container.Manager
	network    *network.Manager
	stream     *streaming.Server
	sandboxes  *sandboxStore
	// pauseRootfs is the infra containers' root filesystem ("" without
	// a pause program).
	pauseRootfs string

	// locks serialises the lifecycle calls on one sandbox or container
	// (kubelet may retry a call while the first is still running).
	locks keyedMutex
	// reserve serialises the name checks of RunPodSandbox.
	reserve sync.Mutex
}

// New opens the stores, starts the streaming server and returns the
// server. Close stops what New started.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Verifier == nil || cfg.Remote == nil {
		return nil, fmt.Errorf("cri server: a Verifier and a Remote are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StreamAddr == "" {
		cfg.StreamAddr = defaultStreamAddr
	}
	if cfg.Registries == nil {
		cfg.Registries = &registries.Config{}
	}
	stores, err := local.Open(ctx, cfg.Root)
	if err != nil {
		return nil, err
	}
	copts := []container.Option{container.WithLogger(cfg.Logger)}
	if cfg.Executable != "" {
		copts = append(copts, container.WithExecutable(cfg.Executable))
	}
	mgr, err := container.New(cfg.Root, cfg.State, copts...)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		stores:     stores,
		containers: mgr,
		network:    network.New(cfg.CNIConfDir, cfg.CNIBinDirs, filepath.Join(cfg.State, "cri", "cni"), cfg.Logger),
		sandboxes:  &sandboxStore{dir: filepath.Join(cfg.State, "cri", "sandboxes")},
	}
	if len(cfg.PauseBinary) > 0 {
		if s.pauseRootfs, err = writePauseRootfs(cfg.State, cfg.PauseBinary); err != nil {
			return nil, err
		}
	} else {
		s.log.WarnContext(ctx, "this sigil has no pause program (built without make build): pod sandboxes that share a PID namespace will be refused")
	}
	s.stream, err = streaming.Listen(cfg.StreamAddr, &streamRuntime{s: s}, cfg.Logger)
	if err != nil {
		return nil, err
	}
	go func() {
		if err := s.stream.Serve(); err != nil {
			s.log.Error("streaming server stopped", "error", err)
		}
	}()
	s.log.InfoContext(ctx, "CRI server ready", "root", cfg.Root, "state", cfg.State, "stream_addr", s.stream.Addr(), "pause_rootfs", s.pauseRootfs, "cni_conf_dir", cfg.CNIConfDir)
	return s, nil
}

// Register adds the RuntimeService and ImageService to g.
func (s *Server) Register(g *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)
}

// Close stops the streaming server. Pods and containers keep running.
func (s *Server) Close() error { return s.stream.Close() }

// StreamAddr is the streaming server's address.
func (s *Server) StreamAddr() string { return s.stream.Addr() }

// keyedMutex is a set of mutexes created on demand, one per key.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
