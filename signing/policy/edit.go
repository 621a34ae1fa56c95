package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// The edits `sigil trust` makes, the way `podman image trust set` does:
// they change one scope and leave every other scope, transport and the
// default as they were.

// ErrScopeNotFound is matched (errors.Is) by the error of edits on a scope
// the policy does not have.
var ErrScopeNotFound = errors.New("no such scope in the trust policy")

// TrustKey makes scope (of transport) require a sigstore signature by the
// public key at keyPath, adding it to the keys the scope already trusts (so
// that several keys can be trusted while one replaces another). A scope
// that accepted or rejected everything is replaced by the requirement; one
// with other requirements (pki, fulcio, inline keyData) is refused, since
// merging a key into it would change what it means. identity sets
// signedIdentity when the scope is created (nil: the default,
// matchRepoDigestOrExact). It reports whether the policy changed.
func (p *Policy) TrustKey(transport, scope, keyPath string, identity *SignedIdentity) (bool, error) {
	if err := validateScope(transport, scope); err != nil {
		return false, err
	}
	if keyPath == "" {
		return false, errors.New("no key path given")
	}
	if err := identity.validate("signedIdentity"); err != nil {
		return false, err
	}
	if p.Transports == nil {
		p.Transports = map[string]Scopes{}
	}
	if p.Transports[transport] == nil {
		p.Transports[transport] = Scopes{}
	}
	reqs, ok := p.Transports[transport][scope]
	if !ok || onlyTrivial(reqs) {
		p.Transports[transport][scope] = Requirements{&SigstoreSigned{KeyPath: keyPath, SignedIdentity: identity}}
		return true, nil
	}
	var keyed *SigstoreSigned
	for _, r := range reqs {
		s, ok := r.(*SigstoreSigned)
		if !ok {
			continue
		}
		if s.KeyPath == "" && s.KeyPaths == nil {
			return false, fmt.Errorf("scope %q requires sigstoreSigned without key files (keyData, pki or fulcio); edit %s by hand", scope, scopeLocation(transport, scope))
		}
		if keyed != nil {
			return false, fmt.Errorf("scope %q has several sigstoreSigned requirements, which must all be met; edit %s by hand", scope, scopeLocation(transport, scope))
		}
		keyed = s
	}
	if keyed == nil {
		return false, fmt.Errorf("scope %q has requirements sigil trust does not edit (%s); edit %s by hand", scope, describeTypes(reqs), scopeLocation(transport, scope))
	}
	paths := keyed.paths()
	if slices.Contains(paths, keyPath) {
		return false, nil
	}
	keyed.KeyPath, keyed.KeyPaths = "", append(paths, keyPath)
	return true, nil
}

// UntrustKey removes keyPath from the keys scope trusts; removing the last
// one removes the scope (so the next less specific scope applies, as
// RemoveScope). It reports whether the policy changed.
func (p *Policy) UntrustKey(transport, scope, keyPath string) (bool, error) {
	reqs, ok := p.Transports[transport][scope]
	if !ok {
		return false, fmt.Errorf("scope %q of transport %s: %w", scope, transport, ErrScopeNotFound)
	}
	for _, r := range reqs {
		s, ok := r.(*SigstoreSigned)
		if !ok {
			continue
		}
		paths := s.paths()
		i := slices.Index(paths, keyPath)
		if i < 0 {
			continue
		}
		paths = slices.Delete(paths, i, i+1)
		switch len(paths) {
		case 0:
			return p.RemoveScope(transport, scope)
		case 1:
			s.KeyPath, s.KeyPaths = paths[0], nil
		default:
			s.KeyPath, s.KeyPaths = "", paths
		}
		return true, nil
	}
	return false, fmt.Errorf("scope %q does not trust key %s", scope, keyPath)
}

// RemoveScope deletes scope from transport.
func (p *Policy) RemoveScope(transport, scope string) (bool, error) {
	if _, ok := p.Transports[transport][scope]; !ok {
		return false, fmt.Errorf("scope %q of transport %s: %w", scope, transport, ErrScopeNotFound)
	}
	delete(p.Transports[transport], scope)
	if len(p.Transports[transport]) == 0 {
		delete(p.Transports, transport)
	}
	return true, nil
}

// KeyPathList returns the key files a sigstoreSigned requirement names.
func (r *SigstoreSigned) KeyPathList() []string { return r.paths() }

func (r *SigstoreSigned) paths() []string {
	if r.KeyPath != "" {
		return []string{r.KeyPath}
	}
	return slices.Clone(r.KeyPaths)
}

func onlyTrivial(reqs Requirements) bool {
	for _, r := range reqs {
		switch r.(type) {
		case *InsecureAcceptAnything, *Reject:
		default:
			return false
		}
	}
	return true
}

func describeTypes(reqs Requirements) string {
	s := ""
	for i, r := range reqs {
		if i > 0 {
			s += ", "
		}
		s += string(r.Type())
	}
	return s
}

// MarshalJSONIndent renders the policy as `sigil trust` writes it: indented
// JSON with a final newline.
func (p *Policy) MarshalJSONIndent() ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "    ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
