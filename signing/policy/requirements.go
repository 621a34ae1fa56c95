package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// RequirementType is the "type" of a requirement object.
type RequirementType string

const (
	TypeInsecureAcceptAnything RequirementType = "insecureAcceptAnything"
	TypeReject                 RequirementType = "reject"
	TypeSignedBy               RequirementType = "signedBy"
	TypeSigstoreSigned         RequirementType = "sigstoreSigned"
	// TypeSignedBaseLayer is part of the schema containers/image parses
	// (and never implemented); it parses here too and always refuses.
	TypeSignedBaseLayer RequirementType = "signedBaseLayer"
)

// Requirement is one requirement object: *InsecureAcceptAnything, *Reject,
// *SignedBy, *SigstoreSigned or *SignedBaseLayer. The set is closed.
type Requirement interface {
	Type() RequirementType
	validate() error
}

// InsecureAcceptAnything accepts any image.
type InsecureAcceptAnything struct{}

// Reject refuses every image.
type Reject struct{}

// SignedBy requires a GPG "simple signing" signature. It parses so that
// existing policies load, but sigil does not verify GPG signatures: an image
// in such a scope is refused with ReasonUnsupportedRequirement.
type SignedBy struct {
	// KeyType is "GPGKeys" (the only type containers/image implements),
	// "signedByGPGKeys", "X509Certificates" or "signedByX509CAs".
	KeyType        string          `json:"keyType"`
	KeyPath        string          `json:"keyPath,omitempty"`
	KeyPaths       []string        `json:"keyPaths,omitempty"`
	KeyData        []byte          `json:"keyData,omitempty"` // base64 in JSON
	SignedIdentity *SignedIdentity `json:"signedIdentity,omitempty"`
}

// SigstoreSigned requires a sigstore (cosign) signature made with one of the
// given public keys, or by a Fulcio-certified or PKI-certified identity.
// Exactly one key source is set: KeyPath, KeyPaths, KeyData, KeyDatas,
// Fulcio or PKI.
type SigstoreSigned struct {
	KeyPath  string   `json:"keyPath,omitempty"`
	KeyPaths []string `json:"keyPaths,omitempty"`
	KeyData  []byte   `json:"keyData,omitempty"`  // base64 in JSON
	KeyDatas [][]byte `json:"keyDatas,omitempty"` // base64 in JSON
	Fulcio   *Fulcio  `json:"fulcio,omitempty"`
	PKI      *PKI     `json:"pki,omitempty"`

	// At most one Rekor key source; required with Fulcio, because a Fulcio
	// certificate is short-lived and only a Rekor inclusion proof shows the
	// signature was made while it was valid.
	RekorPublicKeyPath  string   `json:"rekorPublicKeyPath,omitempty"`
	RekorPublicKeyPaths []string `json:"rekorPublicKeyPaths,omitempty"`
	RekorPublicKeyData  []byte   `json:"rekorPublicKeyData,omitempty"`
	RekorPublicKeyDatas [][]byte `json:"rekorPublicKeyDatas,omitempty"`

	// SignedIdentity says which image names a signature may claim; nil
	// means matchRepoDigestOrExact. Note cosign signatures name only the
	// repository, so pulls by tag need matchRepository (see
	// SignedIdentity.Match).
	SignedIdentity *SignedIdentity `json:"signedIdentity,omitempty"`
}

// Fulcio configures keyless verification with certificates from a Fulcio CA.
type Fulcio struct {
	CAPath       string `json:"caPath,omitempty"`
	CAData       []byte `json:"caData,omitempty"` // base64 in JSON
	OIDCIssuer   string `json:"oidcIssuer,omitempty"`
	SubjectEmail string `json:"subjectEmail,omitempty"`
}

// PKI configures verification with certificates from a private CA.
type PKI struct {
	CARootsPath         string `json:"caRootsPath,omitempty"`
	CARootsData         []byte `json:"caRootsData,omitempty"` // base64 in JSON
	CAIntermediatesPath string `json:"caIntermediatesPath,omitempty"`
	CAIntermediatesData []byte `json:"caIntermediatesData,omitempty"` // base64 in JSON
	SubjectEmail        string `json:"subjectEmail,omitempty"`
	SubjectHostname     string `json:"subjectHostname,omitempty"`
}

// SignedBaseLayer is parsed for compatibility and always refuses.
type SignedBaseLayer struct {
	BaseLayerIdentity *SignedIdentity `json:"baseLayerIdentity"`
}

func (*InsecureAcceptAnything) Type() RequirementType { return TypeInsecureAcceptAnything }
func (*Reject) Type() RequirementType                 { return TypeReject }
func (*SignedBy) Type() RequirementType               { return TypeSignedBy }
func (*SigstoreSigned) Type() RequirementType         { return TypeSigstoreSigned }
func (*SignedBaseLayer) Type() RequirementType        { return TypeSignedBaseLayer }

// MarshalJSON methods add the "type" field, which lives in the Go type rather
// than in a struct field so that it cannot disagree with it.

func (r *InsecureAcceptAnything) MarshalJSON() ([]byte, error) { return marshalTyped(r.Type(), nil) }
func (r *Reject) MarshalJSON() ([]byte, error)                 { return marshalTyped(r.Type(), nil) }
func (r *SignedBy) MarshalJSON() ([]byte, error) {
	type plain SignedBy
	return marshalTyped(r.Type(), (*plain)(r))
}
func (r *SigstoreSigned) MarshalJSON() ([]byte, error) {
	type plain SigstoreSigned
	return marshalTyped(r.Type(), (*plain)(r))
}
func (r *SignedBaseLayer) MarshalJSON() ([]byte, error) {
	type plain SignedBaseLayer
	return marshalTyped(r.Type(), (*plain)(r))
}

func marshalTyped(t RequirementType, body any) ([]byte, error) {
	head, err := json.Marshal(map[string]RequirementType{"type": t})
	if err != nil || body == nil {
		return head, err
	}
	rest, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	if string(rest) == "{}" {
		return head, nil
	}
	// Splice {"type":...} and {...} into one object, "type" first as people
	// write it.
	return append(append(head[:len(head)-1], ','), rest[1:]...), nil
}

// UnmarshalJSON parses a requirement list with Parse's rules.
func (rs *Requirements) UnmarshalJSON(data []byte) error {
	out, err := parseRequirements(data, "")
	if err != nil {
		return err
	}
	*rs = out
	return nil
}

func parseRequirements(data []byte, loc string) (Requirements, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, &FormatError{Location: loc, Err: fmt.Errorf("want a list of requirement objects: %w", err)}
	}
	if len(raws) == 0 {
		return nil, &FormatError{Location: loc, Err: errEmptyRequirements}
	}
	reqs := make(Requirements, 0, len(raws))
	for i, raw := range raws {
		r, err := parseRequirement(raw)
		if err != nil {
			return nil, &FormatError{Location: fmt.Sprintf("%s[%d]", loc, i), Err: err}
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

var knownTypes = []RequirementType{TypeInsecureAcceptAnything, TypeReject, TypeSignedBy, TypeSigstoreSigned, TypeSignedBaseLayer}

func parseRequirement(raw json.RawMessage) (Requirement, error) {
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("want a requirement object: %w", err)
	}
	if head.Type == nil {
		return nil, errors.New(`requirement has no "type"`)
	}
	t := RequirementType(*head.Type)
	var r Requirement
	switch t {
	case TypeInsecureAcceptAnything:
		r = &InsecureAcceptAnything{}
	case TypeReject:
		r = &Reject{}
	case TypeSignedBy:
		r = &SignedBy{}
	case TypeSigstoreSigned:
		r = &SigstoreSigned{}
	case TypeSignedBaseLayer:
		r = &SignedBaseLayer{}
	default:
		known := make([]string, len(knownTypes))
		for i, k := range knownTypes {
			known[i] = string(k)
		}
		return nil, fmt.Errorf("unknown requirement type %q (known: %s)", t, strings.Join(known, ", "))
	}
	// Decode into {type, <fields of r>} with unknown fields refused, so a
	// misspelt "keyPth" is an error rather than a requirement without a key.
	var wire any
	switch v := r.(type) {
	case *InsecureAcceptAnything, *Reject:
		wire = &struct {
			Type string `json:"type"`
		}{}
	case *SignedBy:
		wire = &struct {
			Type string `json:"type"`
			*SignedBy
		}{SignedBy: v}
	case *SigstoreSigned:
		wire = &struct {
			Type string `json:"type"`
			*SigstoreSigned
		}{SigstoreSigned: v}
	case *SignedBaseLayer:
		wire = &struct {
			Type string `json:"type"`
			*SignedBaseLayer
		}{SignedBaseLayer: v}
	}
	if err := strictDecode(raw, wire); err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	return r, nil
}

func (*InsecureAcceptAnything) validate() error { return nil }
func (*Reject) validate() error                 { return nil }

func (r *SignedBy) validate() error {
	switch r.KeyType {
	case "":
		return errors.New(`keyType is missing; GPG keys use "keyType": "GPGKeys"`)
	case "GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs":
	default:
		return fmt.Errorf("keyType %q is not one of GPGKeys, signedByGPGKeys, X509Certificates, signedByX509CAs", r.KeyType)
	}
	if err := exactlyOne("keyPath, keyPaths or keyData",
		source{"keyPath", r.KeyPath != ""},
		source{"keyPaths", r.KeyPaths != nil},
		source{"keyData", r.KeyData != nil}); err != nil {
		return err
	}
	if err := nonEmpty("keyPaths", r.KeyPaths); err != nil {
		return err
	}
	if r.KeyData != nil && len(r.KeyData) == 0 {
		return errors.New("keyData is empty")
	}
	return r.SignedIdentity.validate("signedIdentity")
}

func (r *SigstoreSigned) validate() error {
	if err := exactlyOne("keyPath, keyPaths, keyData, keyDatas, fulcio or pki",
		source{"keyPath", r.KeyPath != ""},
		source{"keyPaths", r.KeyPaths != nil},
		source{"keyData", r.KeyData != nil},
		source{"keyDatas", r.KeyDatas != nil},
		source{"fulcio", r.Fulcio != nil},
		source{"pki", r.PKI != nil}); err != nil {
		return err
	}
	if err := nonEmpty("keyPaths", r.KeyPaths); err != nil {
		return err
	}
	if r.KeyData != nil && len(r.KeyData) == 0 {
		return errors.New("keyData is empty")
	}
	if err := nonEmptyData("keyDatas", r.KeyDatas); err != nil {
		return err
	}
	rekor := []source{
		{"rekorPublicKeyPath", r.RekorPublicKeyPath != ""},
		{"rekorPublicKeyPaths", r.RekorPublicKeyPaths != nil},
		{"rekorPublicKeyData", r.RekorPublicKeyData != nil},
		{"rekorPublicKeyDatas", r.RekorPublicKeyDatas != nil},
	}
	if set := setNames(rekor); len(set) > 1 {
		return fmt.Errorf("at most one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData or rekorPublicKeyDatas may be set, found %s", strings.Join(set, " and "))
	}
	if err := nonEmpty("rekorPublicKeyPaths", r.RekorPublicKeyPaths); err != nil {
		return err
	}
	if err := nonEmptyData("rekorPublicKeyDatas", r.RekorPublicKeyDatas); err != nil {
		return err
	}
	if r.Fulcio != nil {
		if len(setNames(rekor)) == 0 {
			return errors.New("fulcio needs a Rekor public key (rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData or rekorPublicKeyDatas): without a Rekor proof a short-lived Fulcio certificate proves nothing about when the signature was made")
		}
		if err := r.Fulcio.validate(); err != nil {
			return fmt.Errorf("fulcio: %w", err)
		}
	}
	if r.PKI != nil {
		if err := r.PKI.validate(); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
	}
	return r.SignedIdentity.validate("signedIdentity")
}

func (f *Fulcio) validate() error {
	if err := exactlyOne("caPath or caData",
		source{"caPath", f.CAPath != ""},
		source{"caData", f.CAData != nil}); err != nil {
		return err
	}
	if f.OIDCIssuer == "" {
		return errors.New("oidcIssuer is missing")
	}
	if f.SubjectEmail == "" {
		return errors.New("subjectEmail is missing")
	}
	return nil
}

func (p *PKI) validate() error {
	if err := exactlyOne("caRootsPath or caRootsData",
		source{"caRootsPath", p.CARootsPath != ""},
		source{"caRootsData", p.CARootsData != nil}); err != nil {
		return err
	}
	if p.CAIntermediatesPath != "" && p.CAIntermediatesData != nil {
		return errors.New("caIntermediatesPath and caIntermediatesData cannot both be set")
	}
	if p.SubjectEmail == "" && p.SubjectHostname == "" {
		return errors.New("at least one of subjectEmail or subjectHostname must be set")
	}
	return nil
}

func (r *SignedBaseLayer) validate() error {
	if r.BaseLayerIdentity == nil {
		return errors.New("baseLayerIdentity is missing")
	}
	return r.BaseLayerIdentity.validate("baseLayerIdentity")
}

type source struct {
	name string
	set  bool
}

func setNames(srcs []source) []string {
	var set []string
	for _, s := range srcs {
		if s.set {
			set = append(set, s.name)
		}
	}
	return set
}

// exactlyOne reports which fields conflict or that none is set, by name.
func exactlyOne(what string, srcs ...source) error {
	switch set := setNames(srcs); len(set) {
	case 1:
		return nil
	case 0:
		return fmt.Errorf("exactly one of %s must be set, found none", what)
	default:
		return fmt.Errorf("exactly one of %s must be set, found %s", what, strings.Join(set, " and "))
	}
}

func nonEmpty(field string, xs []string) error {
	if xs != nil && len(xs) == 0 {
		return fmt.Errorf("%s has no entries", field)
	}
	for i, x := range xs {
		if x == "" {
			return fmt.Errorf("%s[%d] is empty", field, i)
		}
	}
	return nil
}

func nonEmptyData(field string, xs [][]byte) error {
	if xs != nil && len(xs) == 0 {
		return fmt.Errorf("%s has no entries", field)
	}
	for i, x := range xs {
		if len(x) == 0 {
			return fmt.Errorf("%s[%d] is empty", field, i)
		}
	}
	return nil
}
