package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sigil-project/sigil/runtime/reference"
	"github.com/sigil-project/sigil/runtime/remote"
	"github.com/sigil-project/sigil/signing"
)

func newSignCommand(a *app) *cobra.Command {
	var keyFile string
	var referrer bool
	cmd := &cobra.Command{
		Use:   "sign --key FILE [flags] IMAGE",
		Short: "Sign an image's manifest digest and attach the signature as cosign does",
		Long: `Sign resolves IMAGE to its manifest digest at its registry (not a mirror),
signs that digest with the private key in FILE (cosign's encrypted format, as
'sigil key generate' and 'cosign generate-key-pair' write it) and pushes the
signature next to the image:

  by default, as a layer of the tag sha256-<hex>.sig, cosign's tag scheme
  (cosign verify --key reads it);
  with --referrer, as an OCI 1.1 referrer holding a sigstore bundle, as
  cosign sign --new-bundle-format does (registries without the referrers API
  get the referrers tag schema).

The signature claims IMAGE's name (the repository, and the tag if given) as
its identity, which a policy's signedIdentity checks. No layer is fetched and
nothing is sent to Rekor or Fulcio. The password comes from $SIGIL_PASSWORD,
else $COSIGN_PASSWORD, else the terminal.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if keyFile == "" {
				return fmt.Errorf("sign: --key FILE is required (make one with 'sigil key generate')")
			}
			ref, err := reference.Parse(args[0])
			if err != nil {
				return err
			}
			if ref.Transport() != reference.TransportDocker {
				return fmt.Errorf("sign %s: only images in a registry can be signed; push it first", args[0])
			}
			keyPEM, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("sign: reading the private key: %w", err)
			}
			pw, err := keyPassword(cmd.ErrOrStderr(), false)
			if err != nil {
				return fmt.Errorf("sign: %w", err)
			}
			signer, err := signing.LoadKeySigner(keyPEM, pw)
			if err != nil {
				return fmt.Errorf("sign: %s: %w", keyFile, err)
			}
			conf, err := a.registries()
			if err != nil {
				return err
			}
			eps, err := conf.Endpoints(ref.Name(), ref.Digest() != "")
			if err != nil {
				return err
			}
			// Signatures go where the image lives, never to a mirror: the
			// last endpoint is the registry itself.
			ep := eps[len(eps)-1]
			repo, err := a.remoteClient().Repository(ctx, remote.Endpoint{Registry: ep.Registry, Repository: ep.Repository, Insecure: ep.Insecure}, "pull", "push")
			if err != nil {
				return fmt.Errorf("sign %s: %w", ref.String(), err)
			}
			want := ref.Tag()
			if ref.Digest() != "" {
				want = ref.Digest().String()
			}
			target, _, err := repo.Resolve(ctx, want)
			if err != nil {
				return fmt.Errorf("sign %s: %w", ref.String(), err)
			}
			identity := ref.Name()
			if ref.Digest() == "" {
				identity += ":" + ref.Tag()
			}
			res, err := signing.Sign(ctx, repo, identity, target, signer, signing.SignOptions{Referrer: referrer})
			if err != nil {
				return fmt.Errorf("sign %s@%s: %w", ref.Name(), target.Digest, err)
			}
			a.logger.InfoContext(ctx, "signed", "ref", identity, "digest", res.Digest, "key_id", signer.KeyID(), "location", res.Location)
			how := "tag " + res.Location
			if referrer {
				how = "referrer " + res.Location
			}
			if res.Unchanged {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s@%s is already signed with this key (%s); nothing pushed\n", ref.Name(), res.Digest, how)
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "Signed %s@%s as %s with key %s (%s)\n", ref.Name(), res.Digest, identity, signer.KeyID(), how)
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Digest)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "private key file (cosign format)")
	cmd.Flags().BoolVar(&referrer, "referrer", false, "attach an OCI 1.1 referrer with a sigstore bundle instead of the sha256-<hex>.sig tag")
	return cmd
}
