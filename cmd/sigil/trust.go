package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sigil-project/sigil/runtime/atomicfile"
	"github.com/sigil-project/sigil/signing"
	"github.com/sigil-project/sigil/signing/policy"
)

func newTrustCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Edit the trust policy: which keys sign which images",
		Long: `Trust edits the trust policy file (--policy, containers-policy.json format,
as podman image trust does). Each command changes one scope of the docker
transport and keeps the rest of the file; the file is replaced atomically.`,
	}
	cmd.AddCommand(newTrustAddCommand(a), newTrustListCommand(a), newTrustRmCommand(a))
	return cmd
}

func newTrustAddCommand(a *app) *cobra.Command {
	var scope, keyFile, identity string
	cmd := &cobra.Command{
		Use:   "add --scope SCOPE --key FILE [flags]",
		Short: "Require images in SCOPE to be signed by the key in FILE (adds to the keys it trusts)",
		Long: `Add makes SCOPE (a registry host[:port], a namespace, a repository or
repository:tag, e.g. registry.example.com/team) require a sigstore (cosign)
signature by the public key in FILE. Run it again with another key to trust
both: that is how a key is rotated (add the new key, re-sign, then
'sigil trust rm SCOPE --key OLD.pub'). A scope that accepted or rejected
everything is replaced.

The policy records FILE by its absolute path: keep it there. When the policy
file does not exist it is created, rejecting every image outside the scopes
you add.

--signed-identity says which image names a signature may claim: the default,
matchRepository, accepts a signature made for any tag of the same
repository, as cosign signs; matchRepoDigestOrExact (the policy format's
default) and matchExact also compare the tag.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scope == "" || keyFile == "" {
				return errors.New("trust add: --scope and --key are required")
			}
			abs, err := filepath.Abs(keyFile)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(abs)
			if err != nil {
				return fmt.Errorf("trust add: %w", err)
			}
			ids, err := signing.PublicKeyIDs(data)
			if err != nil {
				return fmt.Errorf("trust add: %s: %w", keyFile, err)
			}
			var si *policy.SignedIdentity
			if identity != "" && identity != string(policy.MatchRepoDigestOrExact) {
				si = &policy.SignedIdentity{Type: policy.IdentityType(identity)}
			}
			p, err := a.loadPolicyForEdit(true)
			if err != nil {
				return err
			}
			changed, err := p.TrustKey(policy.TransportDocker, scope, abs, si)
			if err != nil {
				return fmt.Errorf("trust add: %w", err)
			}
			if !changed {
				fmt.Fprintf(cmd.ErrOrStderr(), "Scope %s already trusts %s\n", scope, abs)
				return nil
			}
			if err := a.savePolicy(p); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Scope %s now trusts %s (KeyID %s) in %s\n", scope, abs, strings.Join(ids, ", "), a.opts.Policy)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&scope, "scope", "", "registry, namespace, repository or repository:tag, e.g. registry.example.com/team")
	f.StringVar(&keyFile, "key", "", "public key file (PEM, as cosign.pub)")
	f.StringVar(&identity, "signed-identity", string(policy.MatchRepository), "signedIdentity of the scope when it is created: matchRepository, matchRepoDigestOrExact or matchExact")
	return cmd
}

func newTrustRmCommand(a *app) *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "rm [flags] SCOPE",
		Short: "Remove a scope from the trust policy, or with --key only one of its keys",
		Long: `Rm deletes SCOPE from the docker transport of the trust policy, so that the
next less specific scope (or the default) applies to its images. With --key
it removes only that key from the keys SCOPE trusts; removing the last one
removes the scope.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.loadPolicyForEdit(false)
			if err != nil {
				return err
			}
			scope := args[0]
			if keyFile != "" {
				abs, err := filepath.Abs(keyFile)
				if err != nil {
					return err
				}
				_, err = p.UntrustKey(policy.TransportDocker, scope, abs)
				if err != nil {
					return fmt.Errorf("trust rm: %w", err)
				}
				if err := a.savePolicy(p); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Scope %s no longer trusts %s\n", scope, abs)
				return nil
			}
			if _, err := p.RemoveScope(policy.TransportDocker, scope); err != nil {
				return fmt.Errorf("trust rm: %w", err)
			}
			if err := a.savePolicy(p); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Removed scope %s from %s\n", scope, a.opts.Policy)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "remove only this public key from the scope")
	return cmd
}

// trustEntry is one line of `sigil trust list`.
type trustEntry struct {
	Transport      string   `json:"transport"`
	Scope          string   `json:"scope"`
	Requirement    string   `json:"requirement"`
	Keys           []string `json:"keys,omitempty"`
	Detail         string   `json:"detail,omitempty"`
	SignedIdentity string   `json:"signedIdentity,omitempty"`
}

func newTrustListCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List the scopes of the trust policy and what each requires",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := policy.Load(a.opts.Policy)
			if err != nil {
				return err
			}
			var entries []trustEntry
			add := func(transport, scope string, reqs policy.Requirements) {
				for _, r := range reqs {
					entries = append(entries, describeRequirement(transport, scope, r))
				}
			}
			add("", policy.DefaultScope, p.Default)
			transports := make([]string, 0, len(p.Transports))
			for t := range p.Transports {
				transports = append(transports, t)
			}
			sort.Strings(transports)
			for _, t := range transports {
				scopes := make([]string, 0, len(p.Transports[t]))
				for s := range p.Transports[t] {
					scopes = append(scopes, s)
				}
				sort.Strings(scopes)
				for _, s := range scopes {
					add(t, s, p.Transports[t][s])
				}
			}
			return printTrustList(cmd.OutOrStdout(), output, entries)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func describeRequirement(transport, scope string, r policy.Requirement) trustEntry {
	e := trustEntry{Transport: transport, Scope: scope, Requirement: string(r.Type())}
	if scope == "" {
		e.Scope = `""`
	}
	switch r := r.(type) {
	case *policy.SigstoreSigned:
		e.Keys = r.KeyPathList()
		switch {
		case r.KeyData != nil:
			e.Detail = "keyData"
		case r.KeyDatas != nil:
			e.Detail = fmt.Sprintf("%d keyDatas", len(r.KeyDatas))
		case r.PKI != nil:
			e.Detail = fmt.Sprintf("pki CA %s%s, subject %s%s", r.PKI.CARootsPath, dataNote(r.PKI.CARootsData), r.PKI.SubjectEmail, r.PKI.SubjectHostname)
		case r.Fulcio != nil:
			e.Detail = fmt.Sprintf("fulcio CA %s%s, issuer %s, subject %s", r.Fulcio.CAPath, dataNote(r.Fulcio.CAData), r.Fulcio.OIDCIssuer, r.Fulcio.SubjectEmail)
		}
		e.SignedIdentity = string(policy.MatchRepoDigestOrExact)
		if r.SignedIdentity != nil {
			e.SignedIdentity = string(r.SignedIdentity.Type)
		}
	case *policy.SignedBy:
		e.Keys = append([]string{r.KeyPath}, r.KeyPaths...)
		e.Detail = r.KeyType + " (not supported: refuses)"
	}
	return e
}

func dataNote(b []byte) string {
	if b != nil {
		return "(inline)"
	}
	return ""
}

func printTrustList(w io.Writer, output string, entries []trustEntry) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	case "text", "":
	default:
		return fmt.Errorf("--output %q: want text or json", output)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "TRANSPORT\tSCOPE\tREQUIREMENT\tKEYS / DETAIL\tSIGNED IDENTITY")
	for _, e := range entries {
		what := strings.Join(e.Keys, ", ")
		if e.Detail != "" {
			what = strings.TrimPrefix(what+", "+e.Detail, ", ")
		}
		if what == "" {
			what = "-"
		}
		t := e.Transport
		if t == "" {
			t = "(all)"
		}
		si := e.SignedIdentity
		if si == "" {
			si = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t, e.Scope, e.Requirement, what, si)
	}
	return tw.Flush()
}

// loadPolicyForEdit reads --policy; a missing file is a new policy that
// rejects by default when create is set.
func (a *app) loadPolicyForEdit(create bool) (*policy.Policy, error) {
	p, err := policy.Load(a.opts.Policy)
	if create && errors.Is(err, policy.ErrNoPolicy) {
		return &policy.Policy{Default: policy.Requirements{&policy.Reject{}}}, nil
	}
	return p, err
}

// savePolicy writes the policy back to --policy, atomically: concurrent
// readers see the old file or the new one, never a part.
func (a *app) savePolicy(p *policy.Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	b, err := p.MarshalJSONIndent()
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(a.opts.Policy); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := os.MkdirAll(filepath.Dir(a.opts.Policy), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(a.opts.Policy, b, mode)
}
