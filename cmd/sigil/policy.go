package main

import (
	"github.com/sigil-project/sigil/runtime/pull"
	"github.com/sigil-project/sigil/signing"
	"github.com/sigil-project/sigil/signing/policy"
)

// verifier loads the trust policy named by --policy; --insecure-policy
// replaces it with one that accepts everything, as skopeo's flag does.
func (a *app) verifier() (pull.Verifier, error) {
	p := policy.AcceptAnything()
	if !a.opts.insecurePolicy {
		var err error
		if p, err = policy.Load(a.opts.policy); err != nil {
			return nil, err
		}
	}
	return signing.NewImageVerifier(p)
}
