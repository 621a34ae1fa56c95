package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/pull"
	"github.com/sigil-project/sigil/runtime/reference"
	"github.com/sigil-project/sigil/runtime/resolve"
)

// PullImage resolves the image (through the registries.conf mirrors),
// has the trust policy of the pod's namespace judge its digest, and only
// then fetches it. A refusal is a PermissionDenied whose message starts
// with "SignatureValidationFailed: <CODE>:". The image is stored where the
// CLI keeps images. The response is the image ID (its config digest).
func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	spec := req.GetImage().GetImage()
	ref, err := reference.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("pull %q: %w: %w", spec, err, errdefs.ErrInvalidArgument)
	}
	ns := req.GetSandboxConfig().GetMetadata().GetNamespace()
	keychain := s.cfg.Keychain
	if kc, ok := authKeychain(ref.Domain(), req.GetAuth()); ok {
		keychain = kc
	}
	if keychain == nil {
		keychain = authn.NewMultiKeychain()
	}
	// Signatures are read with the pull's credentials too: they live in
	// the image's repository.
	verifier, err := s.cfg.Verifier(ctx, ns, keychain)
	if err != nil {
		return nil, fmt.Errorf("pull %s: trust policy: %w", ref, err)
	}
	res, err := resolve.New(s.cfg.Remote(keychain), s.cfg.Registries, s.log).Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	img, err := pull.New(s.stores.Content, s.stores.Images, s.stores.Snapshots,
		pull.WithVerifier(verifier), pull.WithLogger(s.log)).Pull(ctx, res.Name, res.Target, res.Manifest, res.Fetcher)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "pulled image", "ref", img.Name, "digest", img.Target.Digest, "source", res.Source, "namespace", ns)
	return &runtimeapi.PullImageResponse{ImageRef: img.ID().String()}, nil
}

// authKeychain turns the pull's credentials into a keychain that gives
// them to the image's own registry (and to the server kubelet named) only:
// a mirror never sees them. ok is false when the request carries none.
func authKeychain(registry string, a *runtimeapi.AuthConfig) (authn.Keychain, bool) {
	if a == nil || (a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == "") {
		return nil, false
	}
	cfg := authn.AuthConfig{
		Username: a.Username, Password: a.Password,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
	}
	if a.Auth != "" && cfg.Username == "" {
		if b, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
			cfg.Username, cfg.Password, _ = strings.Cut(string(b), ":")
		}
	}
	hosts := map[string]bool{registry: true}
	if a.ServerAddress != "" {
		srv := strings.TrimPrefix(strings.TrimPrefix(a.ServerAddress, "https://"), "http://")
		srv, _, _ = strings.Cut(srv, "/")
		hosts[srv] = true
	}
	if registry == "docker.io" {
		hosts["index.docker.io"], hosts["registry-1.docker.io"] = true, true
	}
	return keychainFunc(func(r authn.Resource) (authn.Authenticator, error) {
		if hosts[r.RegistryStr()] {
			return authn.FromConfig(cfg), nil
		}
		return authn.Anonymous, nil
	}), true
}

type keychainFunc func(authn.Resource) (authn.Authenticator, error)

func (f keychainFunc) Resolve(r authn.Resource) (authn.Authenticator, error) { return f(r) }
