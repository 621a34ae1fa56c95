package main

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/sigil-project/sigil/runtime/credentials"
	"github.com/sigil-project/sigil/runtime/local"
	"github.com/sigil-project/sigil/runtime/remote"
)

// stores opens the image-side stores under --root.
func (a *app) stores(ctx context.Context) (*local.Stores, error) {
	return local.Open(ctx, a.opts.Root)
}

// insecureRegistry reports whether --insecure-registry names host.
func (a *app) insecureRegistry(host string) bool {
	for _, h := range a.opts.InsecureRegistries {
		if h == host {
			return true
		}
	}
	return false
}

// remoteClient is the registry client with the user's credentials (the
// docker and podman auth files).
func (a *app) remoteClient() *remote.Client {
	return remote.NewClient(remote.WithLogger(a.logger), remote.WithKeychain(credentials.Keychain(authn.DefaultKeychain)), remote.WithUserAgent("sigil/"+version))
}
