package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"
	"github.com/spf13/cobra"

	"github.com/sigil-project/sigil/cmd/sigil/internal/runcmd"
	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/pull"
	"github.com/sigil-project/sigil/runtime/reference"
	"github.com/sigil-project/sigil/runtime/registries"
	"github.com/sigil-project/sigil/runtime/resolve"
)

func newFetchCommand(a *app) *cobra.Command {
	var fo runcmd.FetchFlags
	cmd := &cobra.Command{
		Use:     "fetch [flags] IMAGE",
		Aliases: []string{"pull"},
		Short:   "Fetch an image, after the trust policy accepts it",
		Long: `Fetch resolves IMAGE (busybox means docker.io/library/busybox:latest;
oci:DIR[:TAG] reads an OCI layout), has the trust policy judge the manifest
digest, and only then downloads the config and layers and unpacks them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := a.fetch(cmd.Context(), args[0], fo, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if !fo.Quiet {
				fmt.Fprintf(cmd.ErrOrStderr(), "Fetched %s\n", img.Name)
			}
			fmt.Fprintln(cmd.OutOrStdout(), img.Target.Digest)
			return nil
		},
	}
	fo.Register(cmd.Flags())
	return cmd
}

// registries loads registries.conf: --registries-conf (or
// $SIGIL_REGISTRIES_CONF) must exist; otherwise the system file is used
// when there is one.
func (a *app) registries() (*registries.Config, error) {
	var conf *registries.Config
	var err error
	if a.opts.RegistriesConf != "" {
		conf, err = registries.Load(a.opts.RegistriesConf)
	} else {
		conf, err = registries.LoadOptional("/etc/containers/registries.conf")
	}
	if err != nil {
		return nil, err
	}
	return conf.WithInsecure(a.opts.InsecureRegistries...), nil
}

// fetch resolves, judges and pulls an image.
func (a *app) fetch(ctx context.Context, refStr string, fo runcmd.FetchFlags, stderr io.Writer) (*images.Image, error) {
	ref, err := reference.Parse(refStr)
	if err != nil {
		return nil, err
	}
	// The policy is loaded first: without one nothing is fetched, not
	// even a manifest.
	verifier, err := a.verifier()
	if err != nil {
		return nil, err
	}
	conf, err := a.registries()
	if err != nil {
		return nil, err
	}
	stores, err := a.stores(ctx)
	if err != nil {
		return nil, err
	}
	opts := []pull.Option{pull.WithVerifier(verifier), pull.WithLogger(a.logger)}
	if fo.Platform != "" {
		p, err := images.ParsePlatform(fo.Platform)
		if err != nil {
			return nil, err
		}
		opts = append(opts, pull.WithPlatform(p))
	}
	if fo.MaxLayerSize != "" {
		n, err := runcmd.ParseBytes(fo.MaxLayerSize)
		if err != nil {
			return nil, fmt.Errorf("--max-layer-size: %w", err)
		}
		opts = append(opts, pull.WithMaxLayerSize(n))
	}
	var bars *barProgress
	if f, ok := stderr.(*os.File); ok && !fo.Quiet && isTerminal(f) {
		bars = newBarProgress(stderr)
		opts = append(opts, pull.WithProgress(bars))
	}
	res, err := resolve.New(a.remoteClient(), conf, a.logger).Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	img, err := pull.New(stores.Content, stores.Images, stores.Snapshots, opts...).Pull(ctx, res.Name, res.Target, res.Manifest, res.Fetcher)
	if bars != nil {
		bars.Wait()
	}
	return img, err
}

// imageForRun returns the stored image for ref, fetching it when the pull
// policy says so. A stored image is judged again by the current trust
// policy before it runs: a key removed from the policy stops the image.
func (a *app) imageForRun(ctx context.Context, refStr string, pp runcmd.PullPolicy, fo runcmd.FetchFlags, stderr io.Writer) (*images.Image, error) {
	ref, err := reference.Parse(refStr)
	if err != nil {
		return nil, err
	}
	stores, err := a.stores(ctx)
	if err != nil {
		return nil, err
	}
	if pp != runcmd.PullAlways {
		img, err := runcmd.Stored(ctx, stores.Images, refStr)
		if err == nil {
			verifier, err := a.verifier()
			if err != nil {
				return nil, err
			}
			if err := verifier.VerifyImage(ctx, img.Name, img.Target); err != nil {
				return nil, err
			}
			return img, nil
		}
		if !errdefs.IsNotFound(err) {
			return nil, err
		}
		if pp == runcmd.PullNever {
			return nil, fmt.Errorf("image %s is not here and --pull=never: fetch it with 'sigil fetch %s': %w", ref.String(), refStr, errdefs.ErrNotFound)
		}
		if !fo.Quiet {
			fmt.Fprintf(stderr, "Image %s is not here; fetching it.\n", ref.String())
		}
	}
	return a.fetch(ctx, refStr, fo, stderr)
}
