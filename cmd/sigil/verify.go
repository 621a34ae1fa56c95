package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/sigil-project/sigil/cmd/sigil/internal/runcmd"
	"github.com/sigil-project/sigil/runtime/reference"
	"github.com/sigil-project/sigil/runtime/resolve"
	"github.com/sigil-project/sigil/signing"
	"github.com/sigil-project/sigil/signing/policy"
)

// verifyReport is what sigil verify prints, as text or JSON. A refusal
// carries the same image, digest, scope, code and message in both.
type verifyReport struct {
	Image        string              `json:"image"`
	Digest       string              `json:"digest"`
	MediaType    string              `json:"mediaType,omitempty"`
	Source       string              `json:"source,omitempty"`
	Transport    string              `json:"transport"`
	Policy       string              `json:"policy"`
	Scope        string              `json:"scope"`
	Accepted     bool                `json:"accepted"`
	Code         policy.ReasonCode   `json:"code,omitempty"`
	Detail       string              `json:"detail,omitempty"`
	Error        string              `json:"error,omitempty"`
	Signers      []*policy.Signer    `json:"signers,omitempty"`
	Requirements []requirementReport `json:"requirements,omitempty"`
	Steps        []string            `json:"steps,omitempty"`
}

type requirementReport struct {
	Type    policy.RequirementType `json:"type"`
	Outcome policy.Outcome         `json:"outcome"`
	Code    policy.ReasonCode      `json:"code,omitempty"`
	Detail  string                 `json:"detail,omitempty"`
	Signer  *policy.Signer         `json:"signer,omitempty"`
}

func newVerifyCommand(a *app) *cobra.Command {
	var keyFile, output string
	var explain bool
	cmd := &cobra.Command{
		Use:   "verify [flags] IMAGE",
		Short: "Judge an image by the trust policy (or one key) without fetching it",
		Long: `Verify resolves IMAGE to its manifest digest, reads its signatures (cosign's
sha256-<hex>.sig tag and OCI 1.1 sigstore-bundle referrers, through the same
mirrors and credentials as a fetch) and judges it by the trust policy
(--policy), or with --key by that public key alone (any tag of the same
repository, as cosign verify --key). No layer is fetched; nothing is sent to
Rekor, Fulcio or a TUF repository.

It prints the digest, the policy scope that matched and who signed it;
--explain replays every step of the decision. It exits 0 only when the image
is accepted, 125 otherwise; a refusal names the image, digest, scope and a
reason code (SIGNATURE_MISSING, SIGNATURE_INVALID, KEY_UNTRUSTED,
IDENTITY_MISMATCH, CERTIFICATE_UNTRUSTED, POLICY_REJECT,
UNSUPPORTED_REQUIREMENT), the same in text and JSON.

Verify always checks afresh; an acceptance refreshes the verdict cache that
fetch and run use.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("verify: --output %q: want text or json", output)
			}
			rep, err := a.verify(cmd, args[0], keyFile, explain)
			if rep == nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if encErr := enc.Encode(rep); encErr != nil {
					return encErr
				}
				if err != nil {
					// The JSON says it all; stderr gets the same line as
					// in text mode, for people watching.
					fmt.Fprintf(cmd.ErrOrStderr(), "sigil: %v\n", err)
					return runcmd.ExitError{Code: exitCodeSigil}
				}
				return nil
			}
			printVerifyText(cmd.OutOrStdout(), rep, explain)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "verify with this public key instead of the trust policy")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	f.BoolVar(&explain, "explain", false, "show every step of the decision")
	return cmd
}

// verify resolves and judges refStr. It returns a report whenever the
// image could be judged, with the refusal as the error.
func (a *app) verify(cmd *cobra.Command, refStr, keyFile string, explain bool) (*verifyReport, error) {
	ctx := cmd.Context()
	ref, err := reference.Parse(refStr)
	if err != nil {
		return nil, err
	}
	rep := &verifyReport{Transport: string(ref.Transport()), Policy: a.opts.Policy}
	var steps []string
	step := func(format string, args ...any) { steps = append(steps, fmt.Sprintf(format, args...)) }
	step("%q is %s", refStr, ref.String())

	var iv *signing.ImageVerifier
	switch {
	case keyFile != "":
		abs, err := filepath.Abs(keyFile)
		if err != nil {
			return nil, err
		}
		// cosign verify --key checks neither the tag nor the
		// repository; the repository is the least a signature must name.
		// The requirement is the scope of the image's repository, so a
		// refusal names it as a policy refusal would.
		req := policy.Requirements{&policy.SigstoreSigned{
			KeyPath: abs, SignedIdentity: &policy.SignedIdentity{Type: policy.MatchRepository},
		}}
		p := &policy.Policy{Default: req}
		if ref.Transport() == reference.TransportDocker {
			p = &policy.Policy{
				Default:    policy.Requirements{&policy.Reject{}},
				Transports: map[string]policy.Scopes{policy.TransportDocker: {ref.Name(): req}},
			}
		}
		iv, err = signing.NewImageVerifier(p, policy.WithSignatureVerifier(a.sigstoreVerifier(userKeychain(), nil)))
		if err != nil {
			return nil, err
		}
		rep.Policy = "--key " + abs
		step("policy: a signature by %s naming the same repository (--key)", abs)
	default:
		var sum digest.Digest
		iv, sum, err = a.imageVerifier(false)
		if err != nil {
			return nil, err
		}
		if a.opts.InsecurePolicy {
			rep.Policy = "--insecure-policy"
			step("policy: --insecure-policy accepts every image")
		} else {
			step("policy: %s (%s)", a.opts.Policy, sum)
		}
	}

	conf, err := a.registries()
	if err != nil {
		return nil, err
	}
	res, err := resolve.New(a.remoteClient(), conf, a.logger).Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	rep.Image, rep.Digest, rep.MediaType, rep.Source = res.Name, res.Target.Digest.String(), res.Target.MediaType, res.Source
	step("resolved to %s (%s) at %s; no layer is fetched", res.Target.Digest, res.Target.MediaType, res.Source)

	if keyFile == "" && !a.opts.InsecurePolicy {
		transport, name := policy.TransportDocker, res.Name
		if rest, ok := strings.CutPrefix(res.Name, "oci:"); ok {
			transport, name = policy.TransportOCI, rest
		}
		if c := policy.ScopeCandidates(transport, name); len(c) > 0 {
			step("scopes tried for %s, most specific first: %s, then the transport default \"\" and \"default\"", res.Name, strings.Join(quoteAll(c), ", "))
		}
	}

	tr := &signing.Trace{}
	verdict, verr := iv.Judge(signing.WithTrace(ctx, tr), res.Name, res.Target)
	if verdict == nil {
		return nil, verr
	}
	rep.Scope = verdict.Scope
	step("scope %q of transport %s applies, with %d requirement(s)", verdict.Scope, verdict.Transport, len(verdict.Results))
	traced := tr.Steps()
	for i, r := range verdict.Results {
		rr := requirementReport{Type: r.Type, Outcome: r.Outcome, Code: r.Code, Detail: r.Detail, Signer: r.Signer}
		rep.Requirements = append(rep.Requirements, rr)
		if r.Signer != nil {
			rep.Signers = append(rep.Signers, r.Signer)
		}
		if r.Type == policy.TypeSigstoreSigned && r.Outcome != policy.OutcomeNotEvaluated {
			for _, s := range traced {
				step("requirement %d (%s): %s", i, r.Type, s)
			}
			traced = nil
		}
		line := fmt.Sprintf("requirement %d (%s): %s", i, r.Type, r.Outcome)
		if r.Code != "" {
			line += " (" + string(r.Code) + ")"
		}
		if r.Detail != "" {
			line += ": " + r.Detail
		}
		step("%s", line)
	}
	rep.Accepted = verdict.Accepted
	var rej *policy.RejectedError
	if errors.As(verr, &rej) {
		rep.Code, rep.Detail = rej.Code, rej.Detail
	}
	if verr != nil {
		rep.Error = verr.Error()
		if keyFile != "" {
			verr = fmt.Errorf("%w (verified with --key %s)", verr, keyFile)
			rep.Error = verr.Error()
		}
		step("verdict: refused")
	} else {
		step("verdict: accepted")
	}
	if explain {
		rep.Steps = steps
	}
	return rep, verr
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

func printVerifyText(w io.Writer, rep *verifyReport, explain bool) {
	fmt.Fprintf(w, "Image:    %s\n", rep.Image)
	fmt.Fprintf(w, "Digest:   %s\n", rep.Digest)
	fmt.Fprintf(w, "Source:   %s\n", rep.Source)
	fmt.Fprintf(w, "Policy:   %s, scope %q\n", rep.Policy, rep.Scope)
	if rep.Accepted {
		fmt.Fprintf(w, "Verdict:  accepted\n")
	} else {
		fmt.Fprintf(w, "Verdict:  refused (%s)\n", rep.Code)
		if rep.Detail != "" {
			fmt.Fprintf(w, "Reason:   %s\n", rep.Detail)
		}
	}
	for _, s := range rep.Signers {
		fmt.Fprintf(w, "Signer:   %s\n", s.String())
	}
	if explain {
		fmt.Fprintln(w, "Steps:")
		for i, s := range rep.Steps {
			fmt.Fprintf(w, "  %2d. %s\n", i+1, s)
		}
	}
}
