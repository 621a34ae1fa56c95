package signing

import (
	"context"
	"fmt"
	"strings"

	dref "github.com/distribution/reference"

	"github.com/sigil-project/sigil/runtime/registries"
	"github.com/sigil-project/sigil/runtime/remote"
	"github.com/sigil-project/sigil/runtime/transfer"
)

// Locator says where the signatures of an image are stored.
type Locator interface {
	// Locate returns the places to search for ref's signatures, in order.
	// ref is what the policy evaluated: a normalised docker reference, or
	// "oci:DIR[:NAME]" for a layout.
	Locate(ctx context.Context, ref string) ([]Located, error)
}

// Located is one place to search. Open is called only when the place is
// searched, so a mirror's auth handshake costs nothing when an earlier
// place answered. A Source that is an io.Closer is closed after use.
type Located struct {
	Where string
	Open  func(ctx context.Context) (Source, error)
}

// RegistryLocator finds signatures where the image itself is fetched
// from: each endpoint registries.conf gives for the repository (mirrors
// first, then the registry), with the same credentials and TLS settings,
// through runtime/remote's bounded reads. Layouts ("oci:DIR") are searched
// for the same tags in their index.
type RegistryLocator struct {
	client *remote.Client
	conf   func() (*registries.Config, error)
}

// NewRegistryLocator returns a locator over client. conf is called once
// per lookup, only when a registry must be asked (a cached verdict does not
// read registries.conf); nil means no registries.conf.
func NewRegistryLocator(client *remote.Client, conf func() (*registries.Config, error)) *RegistryLocator {
	if conf == nil {
		conf = func() (*registries.Config, error) { return &registries.Config{}, nil }
	}
	return &RegistryLocator{client: client, conf: conf}
}

// Locate implements Locator.
func (l *RegistryLocator) Locate(_ context.Context, ref string) ([]Located, error) {
	if rest, ok := strings.CutPrefix(ref, "oci:"); ok {
		dir, _, _ := strings.Cut(rest, ":")
		return []Located{{
			Where: "oci:" + dir,
			Open: func(context.Context) (Source, error) {
				return transfer.OpenLayout(dir)
			},
		}}, nil
	}
	named, err := dref.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("locating signatures of %q: %w", ref, err)
	}
	conf, err := l.conf()
	if err != nil {
		return nil, err
	}
	_, byDigest := named.(dref.Digested)
	eps, err := conf.Endpoints(named.Name(), byDigest)
	if err != nil {
		return nil, err
	}
	out := make([]Located, 0, len(eps))
	for _, ep := range eps {
		rep := remote.Endpoint{Registry: ep.Registry, Repository: ep.Repository, Insecure: ep.Insecure}
		where := rep.String()
		if ep.Mirror {
			where += " (mirror)"
		}
		out = append(out, Located{
			Where: where,
			Open: func(ctx context.Context) (Source, error) {
				return l.client.Repository(ctx, rep)
			},
		})
	}
	return out, nil
}
