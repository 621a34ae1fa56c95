// Package signing decides whether an image may be fetched or run: it
// evaluates the trust policy (package signing/policy, the
// containers-policy.json format) for an image's manifest digest, and checks
// signatures where the policy asks for them.
//
// ImageVerifier is what the runtime, the CRI and the registry call. For
// sigstoreSigned requirements it needs a SigstoreVerifier, which reads the
// signatures of a digest where a Locator says (NewRegistryLocator: the
// registries.conf endpoints of the image, through runtime/remote) and
// verifies them offline; a verdicts.Cache spares stored images the network:
//
//	p, sum, err := policy.LoadWithDigest("/etc/sigil/policy.json")
//	sv := signing.NewSigstoreVerifier(signing.NewRegistryLocator(client, loadRegistriesConf),
//		signing.WithVerdictCache(verdicts.New("/var/lib/sigil/verdicts", sum)))
//	v, err := signing.NewImageVerifier(p, policy.WithSignatureVerifier(sv))
//	err = v.VerifyImage(ctx, "docker.io/library/busybox:latest", desc) // nil: accepted
//
// A refusal is a *policy.RejectedError naming the image, digest, scope and
// reason code. Sign and GenerateKeyPair make signatures and keys in
// cosign's formats. Documentation/signing.md is the user's guide.
package signing

import (
	"context"

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
	return v.eval.EvaluateImage(ctx, name, target.Digest)
}

// VerifyImage returns nil when the policy accepts the image, else the
// reason it does not.
func (v *ImageVerifier) VerifyImage(ctx context.Context, name string, target ocispec.Descriptor) error {
	_, err := v.Judge(ctx, name, target)
	return err
}
