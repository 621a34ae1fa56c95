package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	dref "github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// ReasonCode classifies a refusal. The values are stable: scripts and the
// registry's audit log may match on them.
type ReasonCode string

const (
	// ReasonSignatureMissing: no signature was found for the digest.
	ReasonSignatureMissing ReasonCode = "SIGNATURE_MISSING"
	// ReasonSignatureInvalid: a signature exists but does not verify.
	ReasonSignatureInvalid ReasonCode = "SIGNATURE_INVALID"
	// ReasonKeyUntrusted: valid signature, but by a key the scope does not trust.
	ReasonKeyUntrusted ReasonCode = "KEY_UNTRUSTED"
	// ReasonIdentityMismatch: a valid signature of this manifest, but it
	// names another image (signedIdentity), or its certificate names
	// another signer (subjectEmail, subjectHostname, oidcIssuer).
	ReasonIdentityMismatch ReasonCode = "IDENTITY_MISMATCH"
	// ReasonCertificateUntrusted: the signature carries no certificate, or
	// its certificate does not chain to the configured CA (pki, fulcio).
	ReasonCertificateUntrusted ReasonCode = "CERTIFICATE_UNTRUSTED"
	// ReasonPolicyReject: the scope's requirements include "reject".
	ReasonPolicyReject ReasonCode = "POLICY_REJECT"
	// ReasonUnsupportedRequirement: the scope requires a check this build
	// cannot perform (GPG signedBy, signedBaseLayer, or sigstoreSigned
	// without a SignatureVerifier). Refusing is the only honest answer: the
	// image was not shown to meet the policy.
	ReasonUnsupportedRequirement ReasonCode = "UNSUPPORTED_REQUIREMENT"
)

// Signer describes who signed an accepted image, for --explain and audit.
type Signer struct {
	// Key identifies the trusted key that verified the signature: a key
	// path, "keyData", "keyDatas[1]", or "certificate <subject>".
	Key string `json:"key,omitempty"`
	// KeyID is the signing key's fingerprint: base64 SHA-256 of its PKIX
	// encoding, as in the publicKey hint of cosign bundles.
	KeyID string `json:"keyID,omitempty"`
	// Subject and Issuer are the certificate identity (email or hostname)
	// and OIDC issuer or CA for fulcio/pki verification.
	Subject string `json:"subject,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
	// SignedIdentity is the docker-reference the signature claims.
	SignedIdentity string `json:"signedIdentity,omitempty"`
}

// String describes the signer for people: "key /etc/keys/a.pub, KeyID …,
// subject …, issuer …, signed as …", the parts that are known.
func (s *Signer) String() string {
	if s == nil {
		return ""
	}
	var parts []string
	if s.Key != "" {
		parts = append(parts, "key "+s.Key)
	}
	if s.KeyID != "" {
		parts = append(parts, "KeyID "+s.KeyID)
	}
	if s.Subject != "" {
		parts = append(parts, "subject "+s.Subject)
	}
	if s.Issuer != "" {
		parts = append(parts, "issuer "+s.Issuer)
	}
	if s.SignedIdentity != "" {
		parts = append(parts, "signed as "+s.SignedIdentity)
	}
	return strings.Join(parts, ", ")
}

// SignatureVerifier checks sigstoreSigned requirements. ref is the
// normalised reference the image was requested as (docker:
// "docker.io/library/busybox:latest", possibly with "@digest"; oci:
// "oci:/abs/dir:name"), d the manifest digest signatures are looked up for.
// It returns the accepted signer, or an error: a *VerificationError (or one
// wrapping it) when the image does not meet req, any other error when
// verification could not be carried out (network, I/O), which Evaluate
// reports as a failure rather than a verdict. Implementations check
// req.SignedIdentity with SignedIdentity.Match.
type SignatureVerifier interface {
	VerifySigstore(ctx context.Context, ref string, d digest.Digest, req *SigstoreSigned) (*Signer, error)
}

// VerificationError is how a SignatureVerifier says "does not meet the
// requirement", with the reason.
type VerificationError struct {
	Code   ReasonCode
	Detail string // one line for humans: what was found and what was wanted
	Err    error  // optional cause
}

func (e *VerificationError) Error() string {
	msg := string(e.Code) + ": " + e.Detail
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *VerificationError) Unwrap() error { return e.Err }

// RejectedError is the error Evaluate returns when the policy refuses an
// image. Its message names the image, digest, scope, code and a fix.
type RejectedError struct {
	Transport string
	Image     string // "docker.io/library/busybox@sha256:…" (name@digest when the digest is known)
	Digest    digest.Digest
	Scope     string // as RequirementsFor returns it
	Code      ReasonCode
	Detail    string

	// suggestedScope is the narrowest scope that would cover the image,
	// proposed in the hint when the refusal came from a default scope.
	suggestedScope string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("image %s refused by trust policy (scope %s, %s): %s; %s",
		e.Image, e.scopeText(), e.Code, e.Detail, e.hint())
}

func (e *RejectedError) scopeText() string {
	if e.Scope == "" {
		return fmt.Sprintf("%q, the default for transport %s", "", e.Transport)
	}
	return fmt.Sprintf("%q", e.Scope)
}

// hint says what to do next; it depends on the reason.
func (e *RejectedError) hint() string {
	scope := e.Scope
	if scope == "" || scope == DefaultScope {
		// Adding a scope for the repository is the narrowest fix.
		scope = e.suggestedScope
		if scope == "" {
			scope = repositoryOf(e.Image)
		}
	}
	trustAdd := fmt.Sprintf("sigil trust add --scope %s --key KEY.pub", scope)
	if e.Transport != "" && e.Transport != TransportDocker {
		trustAdd = fmt.Sprintf("add a scope for %s under transports.%s in the trust policy", scope, e.Transport)
	}
	switch e.Code {
	case ReasonPolicyReject:
		return fmt.Sprintf("to trust it run: %s, or pass --insecure-policy", trustAdd)
	case ReasonSignatureMissing:
		return fmt.Sprintf("sign it (sigil sign --key KEY.key %s) or copy its signatures along with it; --insecure-policy skips the check", repositoryOf(e.Image))
	case ReasonSignatureInvalid:
		return "the image or its signature was altered after signing: do not use it; fetch it again from its origin"
	case ReasonKeyUntrusted:
		return fmt.Sprintf("if you trust the signer run: %s", trustAdd)
	case ReasonIdentityMismatch:
		return fmt.Sprintf("if the image was copied, mirrored or signed under another name, set signedIdentity (matchRepository, exactRepository or remapIdentity) for scope %s; for a certificate, check its subjectEmail, subjectHostname or oidcIssuer", scope)
	case ReasonCertificateUntrusted:
		return fmt.Sprintf("check the fulcio or pki settings (CA, subjectEmail, oidcIssuer) for scope %s", scope)
	case ReasonUnsupportedRequirement:
		return fmt.Sprintf("change the requirement for scope %s to one this build supports, or pass --insecure-policy (skips every check)", scope)
	}
	return "see sigil trust --help"
}

// repositoryOf strips the tag and digest of a docker reference for display.
func repositoryOf(image string) string {
	if named, err := dref.ParseNormalizedNamed(image); err == nil {
		return named.Name()
	}
	return image
}

// Outcome is what one requirement decided.
type Outcome string

const (
	OutcomeAccepted     Outcome = "accepted"
	OutcomeRejected     Outcome = "rejected"
	OutcomeError        Outcome = "error"         // could not be evaluated
	OutcomeNotEvaluated Outcome = "not-evaluated" // an earlier requirement already refused
)

// RequirementResult records one requirement's evaluation, for --explain.
type RequirementResult struct {
	Type    RequirementType
	Outcome Outcome
	Code    ReasonCode // set when rejected
	Detail  string
	Signer  *Signer // set when a signature was accepted
}

// Verdict is the full account of an evaluation.
type Verdict struct {
	Transport string
	Ref       string        // the normalised reference evaluated
	Image     string        // what error messages call the image
	Digest    digest.Digest // may be ""
	Scope     string        // as RequirementsFor returns it
	Accepted  bool
	Results   []RequirementResult

	suggestedScope string
}

// String renders the verdict for --explain, one requirement per line.
func (v *Verdict) String() string {
	var b strings.Builder
	state := "refused"
	if v.Accepted {
		state = "accepted"
	}
	fmt.Fprintf(&b, "%s %s by scope %q of transport %s\n", v.Image, state, v.Scope, v.Transport)
	for i, r := range v.Results {
		fmt.Fprintf(&b, "  [%d] %s: %s", i, r.Type, r.Outcome)
		if r.Code != "" {
			fmt.Fprintf(&b, " (%s)", r.Code)
		}
		if r.Detail != "" {
			fmt.Fprintf(&b, ": %s", r.Detail)
		}
		if r.Signer != nil {
			fmt.Fprintf(&b, " [key %s subject %s issuer %s identity %s]", r.Signer.Key, r.Signer.Subject, r.Signer.Issuer, r.Signer.SignedIdentity)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Evaluator judges images against a Policy. It holds no mutable state and is
// safe for concurrent use.
type Evaluator struct {
	policy   *Policy
	verifier SignatureVerifier
}

// Option configures an Evaluator.
type Option func(*Evaluator)

// WithSignatureVerifier plugs in the checker for sigstoreSigned requirements.
func WithSignatureVerifier(v SignatureVerifier) Option {
	return func(e *Evaluator) { e.verifier = v }
}

// NewEvaluator validates p and returns an Evaluator for it. A nil policy is
// refused: callers that want no checks pass AcceptAnything() explicitly.
func NewEvaluator(p *Policy, opts ...Option) (*Evaluator, error) {
	if p == nil {
		return nil, fmt.Errorf("trust policy evaluator: %w (pass policy.AcceptAnything() for --insecure-policy)", ErrNoPolicy)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	e := &Evaluator{policy: p}
	for _, o := range opts {
		o(e)
	}
	return e, nil
}

// EvaluateImage is Evaluate for an image as the runtime names it: a
// normalised docker reference ("docker.io/library/busybox:latest"), or
// "oci:DIR:TAG" for an OCI layout.
func (e *Evaluator) EvaluateImage(ctx context.Context, name string, manifestDigest digest.Digest) (*Verdict, error) {
	transport, ref := TransportDocker, name
	if rest, ok := strings.CutPrefix(name, "oci:"); ok {
		transport, ref = TransportOCI, rest
	}
	return e.Evaluate(ctx, transport, ref, manifestDigest)
}

// Evaluate judges the image ref of transport whose manifest has digest
// manifestDigest. All requirements of the matching scope must accept (AND);
// evaluation stops at the first refusal.
//
// It returns the Verdict and:
//   - nil if accepted;
//   - a *RejectedError if the policy refuses the image;
//   - another error if ref is invalid or a requirement could not be
//     evaluated (the verdict is then nil or not Accepted).
//
// manifestDigest may be "" to judge before resolving (e.g. to fail fast on
// reject); sigstoreSigned requirements then fail with an error, since
// signatures are per digest.
func (e *Evaluator) Evaluate(ctx context.Context, transport, ref string, manifestDigest digest.Digest) (*Verdict, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if manifestDigest != "" {
		if err := manifestDigest.Validate(); err != nil {
			return nil, fmt.Errorf("evaluating trust policy for %s: manifest digest %q: %w", ref, manifestDigest, err)
		}
	}
	v, err := newVerdict(transport, ref, manifestDigest)
	if err != nil {
		return nil, err
	}
	scope, reqs := e.policy.RequirementsFor(transport, v.Ref)
	v.Scope = scope
	if len(reqs) == 0 {
		// Only reachable if the Policy was edited after NewEvaluator; an
		// empty AND would accept everything, so refuse to guess.
		return nil, &FormatError{Location: scope, Err: errEmptyRequirements}
	}

	v.Results = make([]RequirementResult, len(reqs))
	for i, r := range reqs {
		v.Results[i] = RequirementResult{Type: r.Type(), Outcome: OutcomeNotEvaluated}
	}
	for i, r := range reqs {
		res, err := e.evaluateOne(ctx, v, r)
		res.Type = r.Type()
		v.Results[i] = res
		if err != nil {
			return v, fmt.Errorf("evaluating trust policy for %s (scope %q, requirement %d, %s): %w", v.Image, scope, i, r.Type(), err)
		}
		if res.Outcome != OutcomeAccepted {
			return v, &RejectedError{
				Transport: transport,
				Image:     v.Image,
				Digest:    manifestDigest,
				Scope:     scope,
				Code:      res.Code,
				Detail:    res.Detail,

				suggestedScope: v.suggestedScope,
			}
		}
	}
	v.Accepted = true
	return v, nil
}

// newVerdict normalises ref so lookups, messages and the verifier all see the
// same name.
func newVerdict(transport, ref string, d digest.Digest) (*Verdict, error) {
	v := &Verdict{Transport: transport, Digest: d}
	switch transport {
	case "":
		return nil, fmt.Errorf("evaluating trust policy for %q: transport is empty", ref)
	case TransportDocker, TransportAtomic:
		named, err := parseDockerRef(ref)
		if err != nil {
			return nil, fmt.Errorf("evaluating trust policy: invalid image reference %q: %w", ref, err)
		}
		v.Ref = named.String()
		v.Image = v.Ref
		v.suggestedScope = named.Name()
		if d != "" {
			v.Image = named.Name() + "@" + d.String()
		}
	case TransportOCI, TransportDir:
		dir, name, err := splitLayoutRef(ref)
		if err != nil {
			return nil, fmt.Errorf("evaluating trust policy: invalid %s reference %q: %w", transport, ref, err)
		}
		v.Ref = dir
		if name != "" {
			v.Ref += ":" + name
		}
		v.Image = transport + ":" + v.Ref
		v.suggestedScope = dir
	default:
		v.Ref = ref
		v.Image = transport + ":" + ref
		v.suggestedScope = ref
	}
	if d != "" && transport != TransportDocker && transport != TransportAtomic {
		v.Image += "@" + d.String()
	}
	return v, nil
}

func (e *Evaluator) evaluateOne(ctx context.Context, v *Verdict, r Requirement) (RequirementResult, error) {
	reject := func(code ReasonCode, detail string) (RequirementResult, error) {
		return RequirementResult{Outcome: OutcomeRejected, Code: code, Detail: detail}, nil
	}
	switch req := r.(type) {
	case *InsecureAcceptAnything:
		return RequirementResult{Outcome: OutcomeAccepted, Detail: "insecureAcceptAnything accepts every image without checks"}, nil
	case *Reject:
		return reject(ReasonPolicyReject, "the policy rejects every image in this scope")
	case *SignedBy:
		return reject(ReasonUnsupportedRequirement, "signedBy (GPG simple signing) requirements are not supported by this build of sigil; sigstoreSigned is")
	case *SignedBaseLayer:
		return reject(ReasonUnsupportedRequirement, "signedBaseLayer requirements are not supported (containers/image never implemented them either)")
	case *SigstoreSigned:
		if e.verifier == nil {
			return reject(ReasonUnsupportedRequirement, "sigstoreSigned requirements need a signature verifier, and this build of sigil has none configured")
		}
		if v.Digest == "" {
			return RequirementResult{Outcome: OutcomeError, Detail: "no manifest digest"},
				errors.New("sigstoreSigned requirements need the manifest digest; resolve the reference first")
		}
		ref := v.Ref
		if v.Transport == TransportOCI {
			// The verifier reads a layout's signatures from the layout.
			ref = "oci:" + ref
		}
		signer, err := e.verifier.VerifySigstore(ctx, ref, v.Digest, req)
		var ve *VerificationError
		switch {
		case errors.As(err, &ve):
			detail := ve.Detail
			if ve.Err != nil {
				detail += ": " + ve.Err.Error()
			}
			return reject(ve.Code, detail)
		case err != nil:
			return RequirementResult{Outcome: OutcomeError, Detail: err.Error()}, err
		case signer == nil:
			// Fail closed on a verifier bug.
			return RequirementResult{Outcome: OutcomeError, Detail: "verifier returned no signer"},
				errors.New("signature verifier returned neither a signer nor an error")
		}
		return RequirementResult{Outcome: OutcomeAccepted, Detail: "sigstore signature verified", Signer: signer}, nil
	}
	return RequirementResult{Outcome: OutcomeError}, fmt.Errorf("unknown requirement type %T", r)
}
