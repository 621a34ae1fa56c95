package signing

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/signing/policy"
	"github.com/sigil-project/sigil/signing/verdicts"
)

// benchSetup signs an image on a loopback registry and writes a policy
// trusting the key, as files, as sigil reads them.
func benchSetup(b *testing.B) (policyPath, ref string, desc ocispec.Descriptor, reg *testRegistry) {
	b.Helper()
	reg = newTestRegistry(b, false)
	signer, pub := newKeySigner(b)
	desc = reg.pushRandom(b, "bench/app:1")
	ref = reg.host + "/bench/app:1"
	if _, err := Sign(context.Background(), reg.repo(b, "bench/app"), ref, desc, signer, SignOptions{}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	keyPath := filepath.Join(dir, "k.pub")
	if err := os.WriteFile(keyPath, pub, 0o644); err != nil {
		b.Fatal(err)
	}
	p := &policy.Policy{Default: policy.Requirements{&policy.Reject{}}}
	if _, err := p.TrustKey(policy.TransportDocker, reg.host+"/bench", keyPath, &policy.SignedIdentity{Type: policy.MatchRepository}); err != nil {
		b.Fatal(err)
	}
	data, err := p.MarshalJSONIndent()
	if err != nil {
		b.Fatal(err)
	}
	policyPath = filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policyPath, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return policyPath, ref, desc, reg
}

// newVerifierFromFile is what cmd/sigil does for every fetch or run: load
// the policy file, build the verifier (cache under root).
func newVerifierFromFile(b *testing.B, policyPath, root string, cached bool) *ImageVerifier {
	p, sum, err := policy.LoadWithDigest(policyPath)
	if err != nil {
		b.Fatal(err)
	}
	opts := []VerifierOption{}
	if cached {
		opts = append(opts, WithVerdictCache(verdicts.New(filepath.Join(root, "verdicts"), sum)))
	}
	iv, err := NewImageVerifier(p, policy.WithSignatureVerifier(NewSigstoreVerifier(NewRegistryLocator(newClient(), nil), opts...)))
	if err != nil {
		b.Fatal(err)
	}
	return iv
}

// BenchmarkVerifyCold: policy load, auth handshake, signature tag and
// referrers lookups, payload fetch, ECDSA verification, on loopback.
func BenchmarkVerifyCold(b *testing.B) {
	policyPath, ref, desc, _ := benchSetup(b)
	ctx := context.Background()
	for b.Loop() {
		iv := newVerifierFromFile(b, policyPath, "", false)
		if err := iv.VerifyImage(ctx, ref, desc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCached: what a warm `sigil run` spends on the policy with
// a cached verdict: load the policy and key, read the verdict file.
func BenchmarkVerifyCached(b *testing.B) {
	policyPath, ref, desc, reg := benchSetup(b)
	root := b.TempDir()
	ctx := context.Background()
	if err := newVerifierFromFile(b, policyPath, root, true).VerifyImage(ctx, ref, desc); err != nil {
		b.Fatal(err)
	}
	before := reg.count("GET")
	for b.Loop() {
		iv := newVerifierFromFile(b, policyPath, root, true)
		if err := iv.VerifyImage(ctx, ref, desc); err != nil {
			b.Fatal(err)
		}
	}
	if reg.count("GET") != before {
		b.Fatal("the cached verification asked the registry")
	}
}
