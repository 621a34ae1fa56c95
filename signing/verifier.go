// Package signing decides whether an image may be fetched or run: it
// evaluates the trust policy (package signing/policy, the
// containers-policy.json format) for an image's manifest digest, and checks
// signatures where the policy asks for them.
//
// ImageVerifier is what the runtime, the CRI and the registry call:
//
//	p, err := policy.Load("/etc/sigil/policy.json")
//	v, err := signing.NewImageVerifier(p)
//	err = v.VerifyImage(ctx, "docker.io/library/busybox:latest", desc) // nil: accepted
package signing

import (
	"context"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/signing/policy"
)

// ImageVerifier judges images by a trust policy.
type ImageVerifier struct {
	eval *policy.Evaluator
}

// NewImageVerifier returns a verifier for p.
func NewImageVerifier(p *policy.Policy, opts ...policy.Option) (*ImageVerifier, error) {
	eval, err := policy.NewEvaluator(p, opts...)
	if err != nil {
		return nil, err
	}
	return &ImageVerifier{eval: eval}, nil
}

// Judge evaluates the policy for the image name (a normalised docker
// reference, or oci:DIR:TAG for a layout) at target's digest and returns
// the whole verdict; a refusal is a *policy.RejectedError.
func (v *ImageVerifier) Judge(ctx context.Context, name string, target ocispec.Descriptor) (*policy.Verdict, error) {
	transport, ref := policy.TransportDocker, name
	if rest, ok := strings.CutPrefix(name, "oci:"); ok {
		transport, ref = policy.TransportOCI, rest
	}
	return v.eval.Evaluate(ctx, transport, ref, target.Digest)
}

// VerifyImage returns nil when the policy accepts the image, else the
// reason it does not.
func (v *ImageVerifier) VerifyImage(ctx context.Context, name string, target ocispec.Descriptor) error {
	_, err := v.Judge(ctx, name, target)
	return err
}
