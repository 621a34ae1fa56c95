package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sigil-project/sigil/runtime/credentials"
	"github.com/sigil-project/sigil/runtime/remote"
)

func newLoginCommand(a *app) *cobra.Command {
	var user, password, authFile string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [flags] REGISTRY",
		Short: "Log in to a registry; the credentials are shared with docker and podman",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := strings.TrimPrefix(strings.TrimPrefix(args[0], "https://"), "http://")
			host = strings.TrimSuffix(host, "/")
			in := bufio.NewReader(cmd.InOrStdin())
			if user == "" {
				fmt.Fprint(cmd.ErrOrStderr(), "Username: ")
				line, err := in.ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("login %s: no username given (use --username)", host)
				}
				user = strings.TrimSpace(line)
			}
			switch {
			case passwordStdin:
				b, err := io.ReadAll(in)
				if err != nil {
					return fmt.Errorf("login %s: read password from stdin: %w", host, err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			case password == "":
				if !term.IsTerminal(int(os.Stdin.Fd())) {
					return fmt.Errorf("login %s: no password given and stdin is not a terminal; use --password-stdin", host)
				}
				fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
				b, err := term.ReadPassword(int(os.Stdin.Fd()))
				fmt.Fprintln(cmd.ErrOrStderr())
				if err != nil {
					return fmt.Errorf("login %s: read password: %w", host, err)
				}
				password = string(b)
			}
			// Check the credentials with the registry before saving them,
			// as docker login does, so a typo is caught now.
			client := remote.NewClient(remote.WithLogger(a.logger), remote.WithKeychain(staticKeychain{user: user, password: password}))
			if err := client.Login(cmd.Context(), host, a.insecureRegistry(host)); err != nil {
				return err
			}
			if authFile == "" {
				authFile = credentials.DefaultFile()
			}
			if err := credentials.Save(authFile, authKey(host), user, password); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Login Succeeded (credentials saved in %s)\n", authFile)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&user, "username", "u", "", "user name")
	f.StringVarP(&password, "password", "p", "", "password (prefer --password-stdin: a flag shows in the process list)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	f.StringVar(&authFile, "authfile", "", "auth file to write (default $REGISTRY_AUTH_FILE, else ~/.docker/config.json)")
	return cmd
}

type staticKeychain struct{ user, password string }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig{Username: k.user, Password: k.password}), nil
}

// authKey is the auth file key for host. Docker Hub's is docker's historical
// "https://index.docker.io/v1/": the only key go-containerregistry's keychain
// (which fetch reads with) looks up for docker.io, and one docker and podman
// read too; saved under "docker.io" the login would never be used.
func authKey(host string) string {
	switch strings.ToLower(host) {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return authn.DefaultAuthKey
	}
	return host
}
