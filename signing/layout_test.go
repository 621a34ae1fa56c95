package signing

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	cempty "github.com/sigstore/cosign/v2/pkg/oci/empty"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	"github.com/sigstore/cosign/v2/pkg/oci/static"

	"github.com/sigil-project/sigil/signing/policy"
)

// TestVerifyLayout: an oci: layout carries its signatures as the same
// tags, in its index; a layout has no docker name, so only exactRepository
// or exactReference identities can match.
func TestVerifyLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(64, 1)
	h, _ := img.Digest()
	d := digest.Digest(h.String())
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: "app"})); err != nil {
		t.Fatal(err)
	}
	signer, pub := newKeySigner(t)
	pl := simplePayload(t, "registry.example.com/team/app", d, "registry.example.com/team/app:1")
	raw, _ := signer.sign(pl)
	sig, _ := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw))
	sigs, err := mutate.AppendSignatures(cempty.Signatures(), false, sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(sigs, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: SignatureTag(d)})); err != nil {
		t.Fatal(err)
	}

	v := NewSigstoreVerifier(NewRegistryLocator(newClient(), nil))
	for _, c := range []struct {
		si   *policy.SignedIdentity
		want policy.ReasonCode
	}{
		{&policy.SignedIdentity{Type: policy.ExactRepository, DockerRepository: "registry.example.com/team/app"}, ""},
		{&policy.SignedIdentity{Type: policy.ExactRepository, DockerRepository: "registry.example.com/team/other"}, policy.ReasonIdentityMismatch},
		{nil, policy.ReasonIdentityMismatch},
	} {
		req := &policy.SigstoreSigned{KeyData: pub, SignedIdentity: c.si}
		got, detail := verifyCode(t, v, "oci:"+dir+":app", d, req)
		if got != c.want {
			t.Errorf("identity %+v: VerifySigstore = %q, want %q\n%s", c.si, got, c.want, detail)
		}
	}
	if _, err := v.VerifySigstore(context.Background(), "oci:"+dir+":app", digest.FromString("unsigned"), &policy.SigstoreSigned{KeyData: pub}); err == nil {
		t.Error("an unsigned digest was accepted")
	}
}
