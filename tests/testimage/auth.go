package testimage

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// NewAuthRegistry starts a Registry that answers only requests carrying
// HTTP basic auth user:password; any other request, /v2/ included, gets
// 401 with `WWW-Authenticate: Basic realm="test"`, as a registry behind
// basic auth does. Every request is counted, refused ones too. Push to it
// with PushAuth.
func NewAuthRegistry(user, password string) *Registry {
	r := &Registry{requests: map[string]int{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests[req.Method+" "+req.URL.Path]++
		r.mu.Unlock()
		u, p, ok := req.BasicAuth()
		// Both compares run whatever the first says: no timing hint
		// of which half was wrong.
		userOK := subtle.ConstantTimeCompare([]byte(u), []byte(user))
		passOK := subtle.ConstantTimeCompare([]byte(p), []byte(password))
		if !ok || userOK&passOK != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return
		}
		inner.ServeHTTP(w, req)
	}))
	r.Host = strings.TrimPrefix(r.server.URL, "http://")
	return r
}

// PushAuth is Push with basic-auth credentials.
func PushAuth(ctx context.Context, ref string, what remote.Taggable, user, password string) (v1.Hash, error) {
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: user, Password: password})}
	switch w := what.(type) {
	case v1.Image:
		if err := remote.Write(tag, w, opts...); err != nil {
			return v1.Hash{}, err
		}
		return w.Digest()
	case v1.ImageIndex:
		if err := remote.WriteIndex(tag, w, opts...); err != nil {
			return v1.Hash{}, err
		}
		return w.Digest()
	}
	return v1.Hash{}, fmt.Errorf("push %s: unsupported %T", ref, what)
}

// Handler is the registry's HTTP handler (counting, and checking auth for
// an auth registry), to serve the same registry elsewhere, e.g. over TLS.
func (r *Registry) Handler() http.Handler { return r.server.Config.Handler }
