package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	dref "github.com/distribution/reference"
)

// IdentityType is the "type" of a signedIdentity object.
type IdentityType string

const (
	// MatchExact: the signature names exactly the image's reference.
	MatchExact IdentityType = "matchExact"
	// MatchRepoDigestOrExact: for an image pulled by digest, any signature
	// in the same repository; for a tag, exactly that reference. The
	// default when signedIdentity is omitted.
	MatchRepoDigestOrExact IdentityType = "matchRepoDigestOrExact"
	// MatchRepository: any signature in the same repository.
	MatchRepository IdentityType = "matchRepository"
	// ExactReference: the signature names DockerReference, whatever the image.
	ExactReference IdentityType = "exactReference"
	// ExactRepository: the signature is in DockerRepository.
	ExactRepository IdentityType = "exactRepository"
	// RemapIdentity: the image's Prefix is replaced by SignedPrefix, then
	// matchRepoDigestOrExact applies (for mirrors of signed content).
	RemapIdentity IdentityType = "remapIdentity"
)

// SignedIdentity is a signedIdentity object: which image name a signature
// must claim to be accepted for an image.
type SignedIdentity struct {
	Type             IdentityType `json:"type"`
	DockerReference  string       `json:"dockerReference,omitempty"`  // exactReference
	DockerRepository string       `json:"dockerRepository,omitempty"` // exactRepository
	Prefix           string       `json:"prefix,omitempty"`           // remapIdentity
	SignedPrefix     string       `json:"signedPrefix,omitempty"`     // remapIdentity
}

// The reference grammar is large: compiled on first use, not at start-up,
// because every sigil process (container init and monitors too) pays for
// package initialisation.
var (
	anchoredDomain = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:` + dref.DomainRegexp.String() + `)$`)
	})
	anchoredName = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:` + dref.NameRegexp.String() + `)$`)
	})
)

// validate checks the fields the type needs and refuses fields it ignores: a
// stray "dockerReference" on matchExact is a misunderstanding worth
// reporting. A nil identity is valid (the default).
func (si *SignedIdentity) validate(field string) error {
	if si == nil {
		return nil
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s (%s): %s", field, si.Type, fmt.Sprintf(format, args...))
	}
	allowed := map[string]bool{}
	switch si.Type {
	case "":
		return fmt.Errorf("%s: type is missing", field)
	case MatchExact, MatchRepoDigestOrExact, MatchRepository:
	case ExactReference:
		allowed["dockerReference"] = true
		if si.DockerReference == "" {
			return fail("dockerReference is missing")
		}
		ref, err := dref.ParseNormalizedNamed(si.DockerReference)
		if err != nil {
			return fail("dockerReference %q: %v", si.DockerReference, err)
		}
		if dref.IsNameOnly(ref) {
			return fail("dockerReference %q has neither a tag nor a digest; use exactRepository for a whole repository", si.DockerReference)
		}
	case ExactRepository:
		allowed["dockerRepository"] = true
		if si.DockerRepository == "" {
			return fail("dockerRepository is missing")
		}
		if _, err := dref.ParseNormalizedNamed(si.DockerRepository); err != nil {
			return fail("dockerRepository %q: %v", si.DockerRepository, err)
		}
	case RemapIdentity:
		allowed["prefix"], allowed["signedPrefix"] = true, true
		for _, f := range []struct{ name, v string }{{"prefix", si.Prefix}, {"signedPrefix", si.SignedPrefix}} {
			if f.v == "" {
				return fail("%s is missing", f.name)
			}
			// host[:port], namespace or repository, never a tag or digest.
			if !anchoredDomain().MatchString(f.v) && !anchoredName().MatchString(f.v) {
				return fail("%s %q is not a host[:port], namespace or repository", f.name, f.v)
			}
		}
	default:
		return fmt.Errorf("%s: unknown type %q (known: matchExact, matchRepoDigestOrExact, matchRepository, exactReference, exactRepository, remapIdentity)", field, si.Type)
	}
	for _, f := range []struct{ name, v string }{
		{"dockerReference", si.DockerReference}, {"dockerRepository", si.DockerRepository},
		{"prefix", si.Prefix}, {"signedPrefix", si.SignedPrefix},
	} {
		if f.v != "" && !allowed[f.name] {
			return fail("%s does not apply to this type", f.name)
		}
	}
	return nil
}

// ErrIdentityMismatch is matched (errors.Is) by the errors Match returns when
// a signature names another image.
var ErrIdentityMismatch = errors.New("signature identity does not match the image")

// Match decides whether a signature claiming signedRef (the
// docker-reference in its payload, e.g. "quay.io/team/app" as cosign writes
// it) is acceptable for an image pulled as imageRef (a normalised docker
// reference with tag and/or digest; "" for images without a docker identity,
// such as oci: layouts). It returns nil on a match and otherwise an error
// matching ErrIdentityMismatch that says what differed. A nil receiver means
// matchRepoDigestOrExact. Verifiers of sigstoreSigned call this after the
// cryptographic checks.
func (si *SignedIdentity) Match(imageRef, signedRef string) error {
	t := MatchRepoDigestOrExact
	if si != nil {
		t = si.Type
	}
	signed, err := dref.ParseNormalizedNamed(dockerHubAlias(signedRef))
	if err != nil {
		return fmt.Errorf("%w: the signature's identity %q is not a valid reference: %v", ErrIdentityMismatch, signedRef, err)
	}
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("%w (%s): %s", ErrIdentityMismatch, t, fmt.Sprintf(format, args...))
	}

	switch t {
	case ExactReference:
		want, err := dref.ParseNormalizedNamed(si.DockerReference)
		if err != nil {
			return mismatch("dockerReference %q: %v", si.DockerReference, err)
		}
		if dref.IsNameOnly(signed) || signed.String() != want.String() {
			return mismatch("the signature names %s, the policy requires %s", signed, want)
		}
		return nil
	case ExactRepository:
		want, err := dref.ParseNormalizedNamed(si.DockerRepository)
		if err != nil {
			return mismatch("dockerRepository %q: %v", si.DockerRepository, err)
		}
		if signed.Name() != want.Name() {
			return mismatch("the signature names repository %s, the policy requires %s", signed.Name(), want.Name())
		}
		return nil
	}

	if imageRef == "" {
		return mismatch("the image has no docker identity to compare; use exactReference or exactRepository for this transport")
	}
	image, err := dref.ParseNormalizedNamed(imageRef)
	if err != nil {
		return mismatch("image reference %q: %v", imageRef, err)
	}

	switch t {
	case MatchExact:
		return matchExact(image, signed, mismatch)
	case MatchRepoDigestOrExact:
		return matchRepoDigestOrExact(image, signed, mismatch)
	case MatchRepository:
		if image.Name() != signed.Name() {
			return mismatch("the signature names repository %s, the image is %s", signed.Name(), image.Name())
		}
		return nil
	case RemapIdentity:
		remapped, err := remap(image, si.Prefix, si.SignedPrefix)
		if err != nil {
			return mismatch("%v", err)
		}
		return matchRepoDigestOrExact(remapped, signed, mismatch)
	}
	return fmt.Errorf("unknown signedIdentity type %q", t)
}

func matchExact(image, signed dref.Named, mismatch func(string, ...any) error) error {
	// A name-only identity names no image, so it cannot match exactly.
	if dref.IsNameOnly(image) || dref.IsNameOnly(signed) || image.String() != signed.String() {
		return mismatch("the signature names %s, the image is %s", signed, image)
	}
	return nil
}

func matchRepoDigestOrExact(image, signed dref.Named, mismatch func(string, ...any) error) error {
	// The digest was already checked against the content, so for a digest
	// pull the signature only has to vouch for the repository.
	if _, ok := image.(dref.Digested); ok {
		if image.Name() != signed.Name() {
			return mismatch("the signature names repository %s, the image is %s", signed.Name(), image.Name())
		}
		return nil
	}
	return matchExact(image, signed, mismatch)
}

// remap replaces prefix in image by signedPrefix, at a path boundary. An
// image outside prefix is returned unchanged, as containers/image does.
func remap(image dref.Named, prefix, signedPrefix string) (dref.Named, error) {
	s := image.String()
	if !strings.HasPrefix(s, prefix) {
		return image, nil
	}
	if len(s) > len(prefix) && !strings.ContainsRune("/:@", rune(s[len(prefix)])) {
		return image, nil
	}
	out, err := dref.ParseNamed(signedPrefix + s[len(prefix):])
	if err != nil {
		return nil, fmt.Errorf("remapping %s from %s to %s: %v", s, prefix, signedPrefix, err)
	}
	return out, nil
}

// dockerHubAlias maps the host go-containerregistry (and so cosign) writes
// for Docker Hub, index.docker.io, to the docker.io every other tool
// normalises to; they are one registry.
func dockerHubAlias(ref string) string {
	if rest, ok := strings.CutPrefix(ref, "index.docker.io/"); ok {
		return "docker.io/" + rest
	}
	return ref
}
