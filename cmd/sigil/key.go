package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/sigil-project/sigil/runtime/atomicfile"
	"github.com/sigil-project/sigil/signing"
)

func newKeyCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage signing keys (cosign's formats)",
	}
	cmd.AddCommand(newKeyGenerateCommand(a))
	return cmd
}

func newKeyGenerateCommand(_ *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "generate [flags] [PREFIX]",
		Short: "Generate a key pair: PREFIX.key (encrypted) and PREFIX.pub",
		Long: `Generate writes an ECDSA P-256 key pair in the formats cosign uses:
PREFIX.key, the private key encrypted with a password (scrypt and
secretbox, "ENCRYPTED SIGSTORE PRIVATE KEY"), readable only by you, and
PREFIX.pub, the public key to give to 'sigil trust add' or 'cosign verify'.
PREFIX defaults to "sigil".

The password comes from $SIGIL_PASSWORD, else $COSIGN_PASSWORD, else it is
asked twice on the terminal.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			prefix := "sigil"
			if len(args) == 1 {
				prefix = args[0]
			}
			keyFile, pubFile := prefix+".key", prefix+".pub"
			if !force {
				for _, f := range []string{keyFile, pubFile} {
					if _, err := os.Stat(f); err == nil {
						return fmt.Errorf("key generate: %s exists; choose another PREFIX or pass --force to overwrite it", f)
					} else if !errors.Is(err, fs.ErrNotExist) {
						return fmt.Errorf("key generate: %w", err)
					}
				}
			}
			pw, err := keyPassword(cmd.ErrOrStderr(), true)
			if err != nil {
				return fmt.Errorf("key generate: %w", err)
			}
			priv, pub, err := signing.GenerateKeyPair(pw)
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(keyFile, priv, 0o600); err != nil {
				return fmt.Errorf("key generate: %w", err)
			}
			if err := atomicfile.WriteFile(pubFile, pub, 0o644); err != nil {
				return fmt.Errorf("key generate: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Private key written to %s\nPublic key written to %s\n", keyFile, pubFile)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "overwrite existing PREFIX.key and PREFIX.pub")
	return cmd
}
