// Package remote talks to OCI distribution registries: it resolves a tag to
// a manifest digest and streams manifests and blobs, with the limits and
// checks a runtime that pulls from untrusted networks needs. Authentication
// (Bearer token challenges, basic auth, credentials from the docker and
// podman auth files) is go-containerregistry's; the wire requests are ours,
// so that every read is bounded and every manifest is checked against its
// digest before anyone parses it.
//
// Usage:
//
//	c := remote.NewClient(remote.WithKeychain(authn.DefaultKeychain))
//	repo, err := c.Repository(ctx, remote.Endpoint{Registry: "127.0.0.1:5000", Repository: "team/app"})
//	desc, manifest, err := repo.Resolve(ctx, "1.0")
//	rc, err := repo.FetchBlob(ctx, layerDesc)
package remote

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/images"
)

// Endpoint is one place to fetch a repository from: the registry itself or
// one of its mirrors.
type Endpoint struct {
	Registry   string // host[:port]
	Repository string // path within that registry
	// Insecure allows plain HTTP (and unverified TLS) to a registry that is
	// not on loopback; loopback is always reached over plain HTTP, as docker does.
	Insecure bool
}

func (e Endpoint) String() string { return e.Registry + "/" + e.Repository }

// Client creates authenticated repository handles.
type Client struct {
	keychain  authn.Keychain
	logger    *slog.Logger
	userAgent string
	base      http.RoundTripper
}

// Option configures a Client.
type Option func(*Client)

// WithKeychain sets where credentials come from (default: anonymous).
func WithKeychain(k authn.Keychain) Option { return func(c *Client) { c.keychain = k } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.logger = l } }

// WithTransport sets the base HTTP transport (default: a clone of
// http.DefaultTransport).
func WithTransport(rt http.RoundTripper) Option { return func(c *Client) { c.base = rt } }

// WithUserAgent sets the User-Agent header (default "sigil").
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// NewClient returns a Client with the given options.
func NewClient(opts ...Option) *Client {
	c := &Client{
		keychain:  authn.NewMultiKeychain(),
		logger:    slog.New(slog.DiscardHandler),
		userAgent: "sigil",
	}
	for _, o := range opts {
		o(c)
	}
	if c.base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		c.base = t
	}
	return c
}

// Repository is an authenticated handle on one repository at one endpoint.
type Repository struct {
	ep      Endpoint
	baseURL string
	client  *http.Client
	logger  *slog.Logger
}

// isLoopback reports whether host (without port) is this machine.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Repository authenticates to ep for the given actions (default "pull").
func (c *Client) Repository(ctx context.Context, ep Endpoint, actions ...string) (*Repository, error) {
	if len(actions) == 0 {
		actions = []string{transport.PullScope}
	}
	plain := ep.Insecure || isLoopback(ep.Registry)
	var nameOpts []name.Option
	if plain {
		nameOpts = append(nameOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(ep.Registry, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w: %w", ep.Registry, err, errdefs.ErrInvalidArgument)
	}
	repo := reg.Repo(ep.Repository)
	auth, err := c.keychain.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w (check ~/.docker/config.json or $REGISTRY_AUTH_FILE)", ep.Registry, err)
	}
	base := transport.NewUserAgent(c.baseTransport(ep.Insecure), c.userAgent)
	scope := repo.Scope(strings.Join(actions, ","))
	rt, err := transport.NewWithContext(ctx, reg, auth, base, []string{scope})
	if err != nil {
		return nil, classify(ep, "authenticate", err)
	}
	scheme := "https"
	if plain {
		scheme = "http"
	}
	return &Repository{
		ep: ep,
		// RegistryStr maps docker.io to the host its API really lives on.
		baseURL: fmt.Sprintf("%s://%s/v2/%s", scheme, reg.RegistryStr(), ep.Repository),
		client:  &http.Client{Transport: rt},
		logger:  c.logger,
	}, nil
}

// baseTransport is the transport for one registry: with insecure, TLS
// certificates are not verified; without, nothing but loopback is reached
// over plain HTTP.
func (c *Client) baseTransport(insecure bool) http.RoundTripper {
	if !insecure {
		return tlsOnly{c.base}
	}
	if t, ok := c.base.(*http.Transport); ok {
		t = t.Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for --insecure-registry
		return t
	}
	return c.base
}

// tlsOnly refuses plain-HTTP requests to anything but loopback. Sigil
// addresses a registry over HTTPS, but go-containerregistry's auth ping
// falls back to plain HTTP for private (RFC 1918) addresses, where on-prem
// registries live: an attacker on that network could then answer the ping
// with a token realm of their choosing and receive the user's password.
// Token realms and redirects over plain HTTP are refused the same way.
type tlsOnly struct{ next http.RoundTripper }

func (t tlsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !isLoopback(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refusing plain HTTP to %s (%s %s): credentials and content would cross the network unprotected; serve it over HTTPS, or if you accept the risk pass --insecure-registry %s (or insecure = true in registries.conf): %w",
			req.URL.Host, req.Method, req.URL.Path, req.URL.Host, errdefs.ErrPermissionDenied)
	}
	return t.next.RoundTrip(req)
}

// Endpoint is where this handle fetches from.
func (r *Repository) Endpoint() Endpoint { return r.ep }

// Resolve fetches the manifest a tag or digest names and returns its
// descriptor and bytes. For a digest reference the bytes are verified
// against it; for a tag the digest is computed from the bytes, never taken
// from the registry's header alone.
func (r *Repository) Resolve(ctx context.Context, tagOrDigest string) (ocispec.Descriptor, []byte, error) {
	var want digest.Digest
	if d, err := digest.Parse(tagOrDigest); err == nil {
		want = d
	}
	body, contentType, err := r.getManifest(ctx, tagOrDigest)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	alg := digest.Canonical
	if want != "" {
		alg = want.Algorithm()
	}
	got := alg.FromBytes(body)
	if want != "" && got != want {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s@%s from %s: content hashes to %s: the registry is corrupt or tampered with", r.ep.Repository, want, r.ep.Registry, got)
	}
	mt, err := images.DetectMediaType(contentType, body)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s:%s from %s: %w", r.ep.Repository, tagOrDigest, r.ep.Registry, err)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: got, Size: int64(len(body))}, body, nil
}

// FetchManifest fetches and verifies the manifest desc describes.
func (r *Repository) FetchManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > images.MaxManifestSize {
		return nil, fmt.Errorf("manifest %s is %d bytes, more than the %d allowed: refusing a manifest that large", desc.Digest, desc.Size, images.MaxManifestSize)
	}
	body, _, err := r.getManifest(ctx, desc.Digest.String())
	if err != nil {
		return nil, err
	}
	if int64(len(body)) != desc.Size || desc.Digest.Algorithm().FromBytes(body) != desc.Digest {
		return nil, fmt.Errorf("manifest %s from %s: content does not match its descriptor (%d bytes, want %d): the registry is corrupt or tampered with", desc.Digest, r.ep, len(body), desc.Size)
	}
	return body, nil
}

func (r *Repository) getManifest(ctx context.Context, ref string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.baseURL+"/manifests/"+ref, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", images.ManifestAcceptHeader)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, "", classify(r.ep, "fetch manifest "+ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", r.statusError(resp, "manifest "+ref)
	}
	if resp.ContentLength > images.MaxManifestSize {
		return nil, "", fmt.Errorf("manifest %s:%s from %s is %d bytes, more than the %d allowed: refusing a manifest that large", r.ep.Repository, ref, r.ep.Registry, resp.ContentLength, images.MaxManifestSize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, images.MaxManifestSize+1))
	if err != nil {
		return nil, "", classify(r.ep, "read manifest "+ref, err)
	}
	if len(body) > images.MaxManifestSize {
		return nil, "", fmt.Errorf("manifest %s:%s from %s is more than the %d bytes allowed: refusing a manifest that large", r.ep.Repository, ref, r.ep.Registry, images.MaxManifestSize)
	}
	return body, resp.Header.Get("Content-Type"), nil
}

// FetchBlob opens a blob for streaming. The caller verifies what it reads
// (content.Store.Ingest does).
func (r *Repository) FetchBlob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.baseURL+"/blobs/"+desc.Digest.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, classify(r.ep, "fetch blob "+desc.Digest.String(), err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, r.statusError(resp, "blob "+desc.Digest.String())
	}
	return resp.Body, nil
}

// registryErrors is the distribution-spec error body.
type registryErrors struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (r *Repository) statusError(resp *http.Response, what string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var re registryErrors
	detail := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &re) == nil && len(re.Errors) > 0 {
		var parts []string
		for _, e := range re.Errors {
			parts = append(parts, strings.TrimSpace(e.Code+": "+e.Message))
		}
		detail = strings.Join(parts, "; ")
	}
	if len(detail) > 200 {
		detail = detail[:200] + "…"
	}
	where := fmt.Sprintf("%s in %s", what, r.ep)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%s: not found (%s): %w", where, detail, errdefs.ErrNotFound)
	case http.StatusUnauthorized:
		return fmt.Errorf("%s: authentication required (%s): log in with 'sigil login %s': %w", where, detail, r.ep.Registry, errdefs.ErrUnauthenticated)
	case http.StatusForbidden:
		return fmt.Errorf("%s: access denied (%s): your account may not pull this repository: %w", where, detail, errdefs.ErrPermissionDenied)
	case http.StatusTooManyRequests:
		return fmt.Errorf("%s: rate limited by the registry (%s): %w", where, detail, errdefs.ErrUnavailable)
	default:
		return fmt.Errorf("%s: HTTP %d (%s): %w", where, resp.StatusCode, detail, errdefs.ErrUnknown)
	}
}

// classify turns transport errors into ones that say what to do.
func classify(ep Endpoint, what string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("%s at %s: credentials refused: log in with 'sigil login %s': %w", what, ep, ep.Registry, errdefs.ErrUnauthenticated)
		case http.StatusForbidden:
			return fmt.Errorf("%s at %s: access denied: %w", what, ep, errdefs.ErrPermissionDenied)
		}
	}
	var tlsErr *tls.CertificateVerificationError
	if errors.As(err, &tlsErr) {
		return fmt.Errorf("%s at %s: TLS certificate not trusted (%w); install the registry's CA, or if you accept the risk use --insecure-registry %s", what, ep, err, ep.Registry)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return fmt.Errorf("%s at %s: registry unreachable (%w); check the address, or configure a mirror in registries.conf: %w", what, ep, err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("%s at %s: %w", what, ep, err)
}

// Login checks the client's credentials against the registry at host: it
// completes the registry's auth handshake (basic or Bearer token), which
// fails with errdefs.ErrUnauthenticated when they are refused.
func (c *Client) Login(ctx context.Context, host string, insecure bool) error {
	plain := insecure || isLoopback(host)
	var nameOpts []name.Option
	if plain {
		nameOpts = append(nameOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, nameOpts...)
	if err != nil {
		return fmt.Errorf("registry %q: %w: %w", host, err, errdefs.ErrInvalidArgument)
	}
	auth, err := c.keychain.Resolve(reg)
	if err != nil {
		return err
	}
	// The catalog scope makes token servers check the password without
	// needing a repository name, as docker login does.
	rt, err := transport.NewWithContext(ctx, reg, auth, transport.NewUserAgent(c.baseTransport(insecure), c.userAgent), []string{"registry:catalog:*"})
	if err != nil {
		return classify(Endpoint{Registry: host}, "log in", err)
	}
	scheme := "https"
	if plain {
		scheme = "http"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return classify(Endpoint{Registry: host}, "log in", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("log in to %s: credentials refused: %w", host, errdefs.ErrUnauthenticated)
	}
	return nil
}
