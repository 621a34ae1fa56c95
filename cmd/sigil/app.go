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

// userKeychain is the user's (or, for the CRI, the node's) credentials:
// the docker and podman auth files.
func userKeychain() authn.Keychain { return credentials.Keychain(authn.DefaultKeychain) }

// remoteClient is the registry client with the user's credentials.
func (a *app) remoteClient() *remote.Client { return a.remoteClientWith(userKeychain()) }

// remoteClientWith is sigil's registry client authenticating with kc.
func (a *app) remoteClientWith(kc authn.Keychain) *remote.Client {
	return remote.NewClient(remote.WithLogger(a.logger), remote.WithKeychain(kc), remote.WithUserAgent("sigil/"+version))
}
