// Package policy reads and evaluates trust policies in the
// containers-policy.json format (containers-policy.json(5)) that podman,
// CRI-O and skopeo use, so an existing /etc/containers/policy.json works with
// sigil unchanged. The same policy drives the CLI, the CRI image service and
// the registry's enforcement.
//
// A policy maps a transport ("docker", "oci", ...) and a scope (a registry,
// namespace, repository or single image) to a list of requirements, all of
// which must accept an image. The most specific scope wins; "" is the
// transport's default and the top-level "default" applies to everything
// else.
//
// Parsing is strict like containers/image's: an unknown field, an unknown
// requirement type, a duplicated key or an inconsistent requirement (two key
// sources, a missing CA) rejects the whole file, because a policy that is
// half understood is a policy that is not enforced.
//
// Evaluation implements insecureAcceptAnything and reject. sigstoreSigned
// requirements are checked by a SignatureVerifier supplied with
// WithSignatureVerifier; without one, or for GPG signedBy, the image is
// refused and the refusal says why.
//
// Usage:
//
//	p, err := policy.Load(policy.DefaultPath)
//	if errors.Is(err, policy.ErrNoPolicy) {
//		return err // tells the user to create one or pass --insecure-policy
//	} else if err != nil {
//		return err
//	}
//	ev, err := policy.NewEvaluator(p, policy.WithSignatureVerifier(v))
//	if err != nil {
//		return err
//	}
//	verdict, err := ev.Evaluate(ctx, "docker", "docker.io/library/busybox:latest", manifestDigest)
//	var rej *policy.RejectedError
//	if errors.As(err, &rej) {
//		return err // names the image, digest, scope, reason code and fix
//	}
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// DefaultPath is where sigil looks for its trust policy.
const DefaultPath = "/etc/sigil/policy.json"

// DefaultScope is the scope name RequirementsFor returns when the global
// "default" requirements apply.
const DefaultScope = "default"

// Policy is a parsed containers-policy.json. Marshal it with encoding/json
// to write it back; the output parses to an equal Policy.
//
// A Policy is not modified by this package after Parse, so one Policy may be
// shared by goroutines.
type Policy struct {
	// Default applies when no transport scope matches. Required.
	Default Requirements `json:"default"`
	// Transports maps a transport name to its scopes. Every transport is
	// kept, known or not, so `sigil trust` can rewrite the file without
	// losing anything.
	Transports map[string]Scopes `json:"transports,omitempty"`
}

// Scopes maps a scope (as written in the file) to its requirements. The
// scope "" is the transport's default.
type Scopes map[string]Requirements

// Requirements must all accept an image (AND). A parsed list is never empty.
type Requirements []Requirement

// ErrNoPolicy is matched (errors.Is) by the error Load returns for a missing
// policy file. Callers must not fall back to accepting everything.
var ErrNoPolicy = errors.New("no trust policy")

// NoPolicyError is Load's error for a missing file. It matches both
// ErrNoPolicy and fs.ErrNotExist.
type NoPolicyError struct {
	Path string
	Err  error // the underlying *fs.PathError
}

func (e *NoPolicyError) Error() string {
	return fmt.Sprintf("no trust policy at %s: sigil refuses to fetch images it cannot judge; create one with 'sigil trust add --scope REGISTRY/REPOSITORY --key KEY.pub' (images outside the scopes you add are then refused) or pass --insecure-policy", e.Path)
}

func (e *NoPolicyError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNoPolicy) true.
func (e *NoPolicyError) Is(target error) bool { return target == ErrNoPolicy }

// FormatError reports a policy that cannot be used.
type FormatError struct {
	Path     string // "" when parsed from memory
	Location string // where in the file, e.g. `transports.docker["quay.io"][0]`; "" for the whole file
	Err      error
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("invalid trust policy")
	if e.Path != "" {
		b.WriteString(" ")
		b.WriteString(e.Path)
	}
	b.WriteString(": ")
	if e.Location != "" {
		b.WriteString(e.Location)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FormatError) Unwrap() error { return e.Err }

// AcceptAnything returns the policy --insecure-policy stands for: every image
// is accepted without checks.
func AcceptAnything() *Policy {
	return &Policy{Default: Requirements{&InsecureAcceptAnything{}}}
}

// Load reads and parses the policy at path. A missing file yields a
// *NoPolicyError (ErrNoPolicy, fs.ErrNotExist); a malformed one a
// *FormatError naming path.
func Load(path string) (*Policy, error) {
	p, _, err := LoadWithDigest(path)
	return p, err
}

// LoadWithDigest is Load that also returns the SHA-256 of the file's
// content, which a verdict cache keys on so that no verdict outlives a
// change to the policy.
func LoadWithDigest(path string) (*Policy, digest.Digest, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", &NoPolicyError{Path: path, Err: err}
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading trust policy: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			fe.Path = path
		}
		return nil, "", err
	}
	return p, digest.FromBytes(data), nil
}

// Parse parses and validates a containers-policy.json document. Errors are
// *FormatError.
func Parse(data []byte) (*Policy, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &FormatError{Err: errors.New(`the file is empty; a policy needs at least "default", e.g. {"default": [{"type": "reject"}]}`)}
	}
	var top struct {
		Default    json.RawMessage                       `json:"default"`
		Transports map[string]map[string]json.RawMessage `json:"transports"`
	}
	if err := strictDecode(data, &top); err != nil {
		return nil, &FormatError{Err: err}
	}
	if err := checkDuplicateKeys(data); err != nil {
		return nil, &FormatError{Err: err}
	}
	if top.Default == nil {
		return nil, &FormatError{Err: errors.New(`"default" is missing; every policy needs one, e.g. "default": [{"type": "reject"}]`)}
	}
	p := &Policy{}
	var err error
	if p.Default, err = parseRequirements(top.Default, DefaultScope); err != nil {
		return nil, err
	}
	for _, t := range sortedKeys(top.Transports) {
		if p.Transports == nil {
			p.Transports = map[string]Scopes{}
		}
		scopes := Scopes{}
		for _, s := range sortedKeys(top.Transports[t]) {
			reqs, err := parseRequirements(top.Transports[t][s], scopeLocation(t, s))
			if err != nil {
				return nil, err
			}
			scopes[s] = reqs
		}
		p.Transports[t] = scopes
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// UnmarshalJSON makes json.Unmarshal apply Parse's rules.
func (p *Policy) UnmarshalJSON(data []byte) error {
	q, err := Parse(data)
	if err != nil {
		return err
	}
	*p = *q
	return nil
}

// Validate checks a Policy built or edited in code with the rules Parse
// applies. Errors are *FormatError.
func (p *Policy) Validate() error {
	if err := validateRequirements(p.Default, DefaultScope); err != nil {
		return err
	}
	for _, t := range sortedKeys(p.Transports) {
		for _, s := range sortedKeys(p.Transports[t]) {
			loc := scopeLocation(t, s)
			if err := validateScope(t, s); err != nil {
				return &FormatError{Location: loc, Err: err}
			}
			if err := validateRequirements(p.Transports[t][s], loc); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateRequirements(reqs Requirements, loc string) error {
	if len(reqs) == 0 {
		return &FormatError{Location: loc, Err: errEmptyRequirements}
	}
	for i, r := range reqs {
		if r == nil {
			return &FormatError{Location: fmt.Sprintf("%s[%d]", loc, i), Err: errors.New("requirement is null")}
		}
		if err := r.validate(); err != nil {
			return &FormatError{Location: fmt.Sprintf("%s[%d] (%s)", loc, i, r.Type()), Err: err}
		}
	}
	return nil
}

var errEmptyRequirements = errors.New(`the list of requirements is empty; write [{"type": "insecureAcceptAnything"}] to accept images or [{"type": "reject"}] to refuse them`)

// scopeLocation renders where a scope is in the file, for error messages.
func scopeLocation(transport, scope string) string {
	return fmt.Sprintf("transports.%s[%s]", transport, strconv.Quote(scope))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// trailing data.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the top-level JSON value")
	}
	return nil
}

// checkDuplicateKeys refuses objects that repeat a key. encoding/json keeps
// the last value silently; in a trust policy that lets an appended,
// looser "docker.io" scope replace a stricter one unnoticed.
func checkDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return walkJSON(dec, "")
}

func walkJSON(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			child := path + "[" + strconv.Quote(key) + "]"
			if isIdent(key) {
				child = strings.TrimPrefix(path+"."+key, ".")
			}
			if seen[key] {
				return fmt.Errorf("%s appears twice", child)
			}
			seen[key] = true
			if err := walkJSON(dec, child); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := walkJSON(dec, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
