package testimage

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Registry is an OCI registry (go-containerregistry's, in memory) served
// over HTTP on 127.0.0.1, counting the requests it answers.
type Registry struct {
	// Host is host:port, e.g. 127.0.0.1:41234.
	Host   string
	server *httptest.Server

	mu       sync.Mutex
	requests map[string]int // "GET /v2/<repo>/blobs/<digest>" -> count
}

// NewRegistry starts a registry; Close stops it.
func NewRegistry() *Registry {
	r, _ := NewRegistryAt("")
	return r
}

// NewRegistryAt starts a registry listening on addr (host:port on
// loopback), or on a free loopback port when addr is empty.
func NewRegistryAt(addr string) (*Registry, error) {
	r := &Registry{requests: map[string]int{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests[req.Method+" "+req.URL.Path]++
		r.mu.Unlock()
		inner.ServeHTTP(w, req)
	}))
	if addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("registry on %s: %w", addr, err)
		}
		r.server.Listener.Close()
		r.server.Listener = l
	}
	r.server.Start()
	r.Host = strings.TrimPrefix(r.server.URL, "http://")
	return r, nil
}

// Close stops the registry.
func (r *Registry) Close() { r.server.Close() }

// Count returns how many requests matched method and a path prefix.
func (r *Registry) Count(method, pathPrefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k, v := range r.requests {
		if strings.HasPrefix(k, method+" "+pathPrefix) {
			n += v
		}
	}
	return n
}

// Reset forgets the counted requests.
func (r *Registry) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = map[string]int{}
}
