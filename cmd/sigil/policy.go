package main

import (
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/opencontainers/go-digest"

	"github.com/sigil-project/sigil/runtime/pull"
	"github.com/sigil-project/sigil/signing"
	"github.com/sigil-project/sigil/signing/policy"
	"github.com/sigil-project/sigil/signing/verdicts"
)

// verifier loads the trust policy named by --policy; --insecure-policy
// replaces it with one that accepts everything, as skopeo's flag does.
// Signatures are looked up where the image is fetched from (registries.conf
// mirrors, the user's credentials), and acceptances are cached under
// --root/verdicts, keyed by the policy file's content.
func (a *app) verifier() (pull.Verifier, error) {
	iv, _, err := a.imageVerifier(true)
	return iv, err
}

// imageVerifier is verifier for callers that want the whole verdict, and
// the digest of the policy file it loaded ("" with --insecure-policy);
// useCache false checks afresh (and still records an acceptance).
func (a *app) imageVerifier(useCache bool) (*signing.ImageVerifier, digest.Digest, error) {
	return a.policyVerifier(a.opts.Policy, userKeychain(), useCache)
}

// policyVerifier judges images by the policy file at path (or accepts
// everything with --insecure-policy), reading signatures with keychain's
// credentials and caching acceptances under --root/verdicts. The CLI and
// the CRI (one policy file per namespace) both build theirs here.
func (a *app) policyVerifier(path string, keychain authn.Keychain, useCache bool) (*signing.ImageVerifier, digest.Digest, error) {
	if a.opts.InsecurePolicy {
		iv, err := signing.NewImageVerifier(policy.AcceptAnything())
		return iv, "", err
	}
	p, sum, err := policy.LoadWithDigest(path)
	if err != nil {
		return nil, "", err
	}
	cache := verdicts.New(filepath.Join(a.opts.Root, "verdicts"), sum)
	if !useCache {
		cache = cache.WriteOnly()
	}
	iv, err := signing.NewImageVerifier(p, policy.WithSignatureVerifier(a.sigstoreVerifier(keychain, cache)))
	return iv, sum, err
}

// sigstoreVerifier checks sigstoreSigned requirements, reading signatures
// through the same resolution as images, with keychain's credentials.
func (a *app) sigstoreVerifier(keychain authn.Keychain, cache *verdicts.Cache) *signing.SigstoreVerifier {
	opts := []signing.VerifierOption{signing.WithLogger(a.logger)}
	if cache != nil {
		opts = append(opts, signing.WithVerdictCache(cache))
	}
	return signing.NewSigstoreVerifier(signing.NewRegistryLocator(a.remoteClientWith(keychain), a.registries), opts...)
}
