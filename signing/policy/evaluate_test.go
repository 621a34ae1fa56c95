package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

const testDigest = digest.Digest("sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa")

const evalPolicy = `{
	"default": [{"type": "reject"}],
	"transports": {
		"docker": {
			"docker.io": [{"type": "reject"}],
			"docker.io/library/busybox": [{"type": "insecureAcceptAnything"}],
			"quay.io/signed": [{"type": "insecureAcceptAnything"}, {"type": "sigstoreSigned", "keyPath": "/k.pub"}],
			"quay.io/gpg": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k.gpg"}],
			"quay.io/both": [{"type": "reject"}, {"type": "insecureAcceptAnything"}],
			"quay.io/base": [{"type": "signedBaseLayer", "baseLayerIdentity": {"type": "matchRepository"}}],
			"": [{"type": "reject"}]
		},
		"oci": {
			"/srv/trusted": [{"type": "insecureAcceptAnything"}]
		}
	}
}`

// fakeVerifier records its call and returns a fixed answer.
type fakeVerifier struct {
	signer *Signer
	err    error
	gotRef string
	gotD   digest.Digest
	gotReq *SigstoreSigned
}

func (f *fakeVerifier) VerifySigstore(_ context.Context, ref string, d digest.Digest, req *SigstoreSigned) (*Signer, error) {
	f.gotRef, f.gotD, f.gotReq = ref, d, req
	return f.signer, f.err
}

func newEval(t *testing.T, opts ...Option) *Evaluator {
	t.Helper()
	e, err := NewEvaluator(mustParse(t, evalPolicy), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEvaluate(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		transport string
		ref       string
		verifier  SignatureVerifier
		accepted  bool
		scope     string
		code      ReasonCode
		outcomes  []Outcome
	}{
		{"accept busybox", "docker", "busybox", nil, true, "docker.io/library/busybox", "", []Outcome{OutcomeAccepted}},
		{"reject docker.io", "docker", "alpine:3", nil, false, "docker.io", ReasonPolicyReject, []Outcome{OutcomeRejected}},
		{"transport default", "docker", "ghcr.io/x/y:1", nil, false, "", ReasonPolicyReject, []Outcome{OutcomeRejected}},
		{"global default", "docker-archive", "/tmp/x.tar", nil, false, "default", ReasonPolicyReject, []Outcome{OutcomeRejected}},
		{"AND stops at first refusal", "docker", "quay.io/both/app", nil, false, "quay.io/both", ReasonPolicyReject, []Outcome{OutcomeRejected, OutcomeNotEvaluated}},
		{"sigstore without verifier", "docker", "quay.io/signed/app:1", nil, false, "quay.io/signed", ReasonUnsupportedRequirement, []Outcome{OutcomeAccepted, OutcomeRejected}},
		{"gpg unsupported", "docker", "quay.io/gpg/app:1", nil, false, "quay.io/gpg", ReasonUnsupportedRequirement, []Outcome{OutcomeRejected}},
		{"signedBaseLayer unsupported", "docker", "quay.io/base/app:1", nil, false, "quay.io/base", ReasonUnsupportedRequirement, []Outcome{OutcomeRejected}},
		{"sigstore accepted", "docker", "quay.io/signed/app:1", &fakeVerifier{signer: &Signer{Key: "/k.pub"}}, true, "quay.io/signed", "", []Outcome{OutcomeAccepted, OutcomeAccepted}},
		{"sigstore missing", "docker", "quay.io/signed/app:1", &fakeVerifier{err: &VerificationError{Code: ReasonSignatureMissing, Detail: "no signature for this digest"}}, false, "quay.io/signed", ReasonSignatureMissing, []Outcome{OutcomeAccepted, OutcomeRejected}},
		{"sigstore wrapped verification error", "docker", "quay.io/signed/app:1", &fakeVerifier{err: fmt.Errorf("checking: %w", &VerificationError{Code: ReasonKeyUntrusted, Detail: "signed by an unknown key"})}, false, "quay.io/signed", ReasonKeyUntrusted, []Outcome{OutcomeAccepted, OutcomeRejected}},
		{"oci trusted", "oci", "/srv/trusted/app:1.0", nil, true, "/srv/trusted", "", []Outcome{OutcomeAccepted}},
		{"oci elsewhere", "oci", "oci:/home/u/app", nil, false, "default", ReasonPolicyReject, []Outcome{OutcomeRejected}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []Option
			if tt.verifier != nil {
				opts = append(opts, WithSignatureVerifier(tt.verifier))
			}
			v, err := newEval(t, opts...).Evaluate(ctx, tt.transport, tt.ref, testDigest)
			if v == nil {
				t.Fatalf("no verdict; err = %v", err)
			}
			if v.Accepted != tt.accepted || v.Scope != tt.scope {
				t.Errorf("Accepted=%v Scope=%q, want %v %q (err %v)", v.Accepted, v.Scope, tt.accepted, tt.scope, err)
			}
			if len(v.Results) != len(tt.outcomes) {
				t.Fatalf("results = %+v", v.Results)
			}
			for i, o := range tt.outcomes {
				if v.Results[i].Outcome != o {
					t.Errorf("result %d = %s, want %s", i, v.Results[i].Outcome, o)
				}
			}
			if tt.accepted {
				if err != nil {
					t.Errorf("err = %v", err)
				}
				return
			}
			var rej *RejectedError
			if !errors.As(err, &rej) {
				t.Fatalf("err = %v (%T), want *RejectedError", err, err)
			}
			if rej.Code != tt.code || rej.Scope != tt.scope || rej.Digest != testDigest {
				t.Errorf("RejectedError = %+v", rej)
			}
			for _, s := range []string{rej.Image, string(testDigest), string(tt.code), "scope "} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestRejectMessage(t *testing.T) {
	pol := mustParse(t, `{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"docker.io":[{"type":"reject"}]}}}`)
	e, err := NewEvaluator(pol)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Evaluate(context.Background(), "docker", "busybox", testDigest)
	want := `image docker.io/library/busybox@` + string(testDigest) + ` refused by trust policy (scope "docker.io", POLICY_REJECT): the policy rejects every image in this scope; to trust it run: sigil trust add --scope docker.io --key KEY.pub, or pass --insecure-policy`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}

	// Under the global default, the hint proposes the repository as scope.
	pol = mustParse(t, `{"default":[{"type":"reject"}]}`)
	e, _ = NewEvaluator(pol)
	_, err = e.Evaluate(context.Background(), "docker", "quay.io/team/app:1.0", "")
	if err == nil || !strings.Contains(err.Error(), `image quay.io/team/app:1.0 refused by trust policy (scope "default", POLICY_REJECT)`) ||
		!strings.Contains(err.Error(), "--scope quay.io/team/app ") {
		t.Errorf("got %v", err)
	}
}

func TestEvaluateVerifierInputs(t *testing.T) {
	f := &fakeVerifier{signer: &Signer{Key: "/k.pub", SignedIdentity: "quay.io/signed/app"}}
	v, err := newEval(t, WithSignatureVerifier(f)).Evaluate(context.Background(), "docker", "quay.io/signed/app:1", testDigest)
	if err != nil {
		t.Fatal(err)
	}
	if f.gotRef != "quay.io/signed/app:1" || f.gotD != testDigest || f.gotReq == nil || f.gotReq.KeyPath != "/k.pub" {
		t.Errorf("verifier got ref=%q d=%q req=%+v", f.gotRef, f.gotD, f.gotReq)
	}
	if v.Results[1].Signer == nil || v.Results[1].Signer.Key != "/k.pub" {
		t.Errorf("signer not recorded: %+v", v.Results[1])
	}
	if !strings.Contains(v.String(), "sigstoreSigned: accepted") {
		t.Errorf("explain text:\n%s", v)
	}
}

func TestEvaluateFailures(t *testing.T) {
	ctx := context.Background()
	e := newEval(t, WithSignatureVerifier(&fakeVerifier{err: errors.New("registry unreachable")}))
	v, err := e.Evaluate(ctx, "docker", "quay.io/signed/app:1", testDigest)
	var rej *RejectedError
	if err == nil || errors.As(err, &rej) || !strings.Contains(err.Error(), "registry unreachable") {
		t.Errorf("operational failure reported as %v", err)
	}
	if v == nil || v.Accepted || v.Results[1].Outcome != OutcomeError {
		t.Errorf("verdict = %+v", v)
	}

	e = newEval(t, WithSignatureVerifier(&fakeVerifier{}))
	if _, err := e.Evaluate(ctx, "docker", "quay.io/signed/app:1", testDigest); err == nil || errors.As(err, &rej) {
		t.Errorf("nil signer without error accepted: %v", err)
	}
	e = newEval(t, WithSignatureVerifier(&fakeVerifier{signer: &Signer{}}))
	if _, err := e.Evaluate(ctx, "docker", "quay.io/signed/app:1", ""); err == nil || !strings.Contains(err.Error(), "need the manifest digest") {
		t.Errorf("sigstore without digest: %v", err)
	}

	e = newEval(t)
	for _, c := range []struct{ transport, ref string }{
		{"docker", "NOT VALID"},
		{"", "busybox"},
		{"oci", "relative/dir:tag"},
	} {
		if v, err := e.Evaluate(ctx, c.transport, c.ref, testDigest); err == nil || v != nil {
			t.Errorf("Evaluate(%q, %q) = %v, %v; want error", c.transport, c.ref, v, err)
		}
	}
	if _, err := e.Evaluate(ctx, "docker", "busybox", "sha256:short"); err == nil {
		t.Error("invalid digest accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.Evaluate(cctx, "docker", "busybox", testDigest); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
	if _, err := NewEvaluator(nil); !errors.Is(err, ErrNoPolicy) {
		t.Errorf("NewEvaluator(nil) = %v", err)
	}
	if _, err := NewEvaluator(&Policy{}); err == nil {
		t.Error("NewEvaluator accepted a policy without default")
	}
}

func TestAcceptAnything(t *testing.T) {
	e, err := NewEvaluator(AcceptAnything())
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Evaluate(context.Background(), "docker", "quay.io/a/b", testDigest)
	if err != nil || !v.Accepted || v.Scope != DefaultScope {
		t.Errorf("got %+v, %v", v, err)
	}
}

func TestSignedIdentityMatch(t *testing.T) {
	const d = "@sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"
	id := func(t IdentityType) *SignedIdentity { return &SignedIdentity{Type: t} }
	tests := []struct {
		name   string
		si     *SignedIdentity
		image  string
		signed string
		ok     bool
	}{
		{"default tag exact", nil, "quay.io/a/b:1", "quay.io/a/b:1", true},
		{"default tag differs", nil, "quay.io/a/b:1", "quay.io/a/b:2", false},
		{"default cosign repo-only vs tag", nil, "quay.io/a/b:1", "quay.io/a/b", false},
		{"default digest same repo", nil, "quay.io/a/b" + d, "quay.io/a/b:1", true},
		{"default digest other repo", nil, "quay.io/a/b" + d, "quay.io/a/c:1", false},
		{"default normalises", nil, "busybox:1", "docker.io/library/busybox:1", true},
		{"matchExact", id(MatchExact), "quay.io/a/b:1", "quay.io/a/b:1", true},
		{"matchExact digest vs tag", id(MatchExact), "quay.io/a/b" + d, "quay.io/a/b:1", false},
		{"matchExact name-only", id(MatchExact), "quay.io/a/b:1", "quay.io/a/b", false},
		{"matchRepository cosign", id(MatchRepository), "quay.io/a/b:latest", "quay.io/a/b", true},
		{"matchRepository other", id(MatchRepository), "quay.io/a/b:latest", "quay.io/a/bb", false},
		{"exactReference", &SignedIdentity{Type: ExactReference, DockerReference: "vendor.io/p:1"}, "mirror/p:1", "vendor.io/p:1", true},
		{"exactReference other tag", &SignedIdentity{Type: ExactReference, DockerReference: "vendor.io/p:1"}, "mirror/p:1", "vendor.io/p:2", false},
		{"exactReference oci image", &SignedIdentity{Type: ExactReference, DockerReference: "vendor.io/p:1"}, "", "vendor.io/p:1", true},
		{"exactRepository", &SignedIdentity{Type: ExactRepository, DockerRepository: "vendor.io/p"}, "", "vendor.io/p", true},
		{"exactRepository other", &SignedIdentity{Type: ExactRepository, DockerRepository: "vendor.io/p"}, "", "vendor.io/q:1", false},
		{"remap tag", &SignedIdentity{Type: RemapIdentity, Prefix: "mirror.local:5000/vendor", SignedPrefix: "vendor.example.com"}, "mirror.local:5000/vendor/prod/img:1", "vendor.example.com/prod/img:1", true},
		{"remap digest", &SignedIdentity{Type: RemapIdentity, Prefix: "mirror.local:5000/vendor", SignedPrefix: "vendor.example.com"}, "mirror.local:5000/vendor/img" + d, "vendor.example.com/img:7", true},
		{"remap boundary", &SignedIdentity{Type: RemapIdentity, Prefix: "mirror.local:5000/vendor", SignedPrefix: "vendor.example.com"}, "mirror.local:5000/vendorx/img:1", "vendor.example.com/x/img:1", false},
		{"remap outside prefix unchanged", &SignedIdentity{Type: RemapIdentity, Prefix: "mirror.local:5000/vendor", SignedPrefix: "vendor.example.com"}, "quay.io/a:1", "quay.io/a:1", true},
		{"no docker identity", id(MatchRepository), "", "quay.io/a", false},
		{"garbage signature", nil, "quay.io/a:1", "NOT VALID", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.si.Match(tt.image, tt.signed)
			if (err == nil) != tt.ok {
				t.Errorf("Match(%q, %q) = %v, want ok=%v", tt.image, tt.signed, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrIdentityMismatch) {
				t.Errorf("error %v does not match ErrIdentityMismatch", err)
			}
		})
	}
}
