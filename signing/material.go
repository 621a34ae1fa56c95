package signing

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/tuf"

	"github.com/sigil-project/sigil/signing/policy"
	"github.com/sigil-project/sigil/signing/verdicts"
)

// ReadFileFunc reads a file a policy names (keyPath, caRootsPath, ...).
type ReadFileFunc = verdicts.ReadFileFunc

// trustedKey is one public key a requirement trusts.
type trustedKey struct {
	name     string // where it came from: the keyPath, "keyData", "keyDatas[1]"
	id       string // KeyID of the key
	pub      crypto.PublicKey
	verifier signature.Verifier
}

// certRoots is a CA a requirement trusts, with the identity it must certify.
type certRoots struct {
	roots         *x509.CertPool
	intermediates *x509.CertPool
	rootNames     []string // subjects of the roots, for messages
	// Identity constraints; "" means not constrained.
	email, hostname, oidcIssuer string
	fulcio                      bool
}

// material is everything a sigstoreSigned requirement trusts, loaded once
// per evaluation.
type material struct {
	keys  []trustedKey
	certs *certRoots // pki or fulcio
	rekor *cosign.TrustedTransparencyLogPubKeys
	// rekorKeys mirrors rekor for bundle (sigstore-go) verification.
	rekorKeys []crypto.PublicKey
	// fingerprint is verdicts.Fingerprint of the requirement: the key
	// under which an acceptance is cached.
	fingerprint []byte
}

// KeyID names a public key the way cosign's bundles do (the publicKey
// hint): the base64 SHA-256 of its PKIX DER encoding.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// loadMaterial reads what req names. Errors here are problems with the
// policy or its files, not verdicts on the image.
func loadMaterial(req *policy.SigstoreSigned, read ReadFileFunc) (*material, error) {
	// The fingerprint and the keys come from the same bytes.
	read = verdicts.MemoReadFile(read)
	fp, err := verdicts.Fingerprint(req, read)
	if err != nil {
		return nil, err
	}
	m := &material{fingerprint: fp}

	addKeys := func(name string, data []byte) error {
		keys, err := parsePublicKeys(name, data)
		if err != nil {
			return err
		}
		m.keys = append(m.keys, keys...)
		return nil
	}
	readAndAdd := func(path string) error {
		data, err := read(path)
		if err != nil {
			return fmt.Errorf("sigstoreSigned keyPath: %w", err)
		}
		return addKeys(path, data)
	}
	switch {
	case req.KeyPath != "":
		if err := readAndAdd(req.KeyPath); err != nil {
			return nil, err
		}
	case req.KeyPaths != nil:
		for _, p := range req.KeyPaths {
			if err := readAndAdd(p); err != nil {
				return nil, err
			}
		}
	case req.KeyData != nil:
		if err := addKeys("keyData", req.KeyData); err != nil {
			return nil, err
		}
	case req.KeyDatas != nil:
		for i, d := range req.KeyDatas {
			if err := addKeys("keyDatas["+strconv.Itoa(i)+"]", d); err != nil {
				return nil, err
			}
		}
	case req.PKI != nil:
		c, err := loadCertRoots("pki caRoots", req.PKI.CARootsPath, req.PKI.CARootsData, read)
		if err != nil {
			return nil, err
		}
		if req.PKI.CAIntermediatesPath != "" || req.PKI.CAIntermediatesData != nil {
			inter, err := loadPEMData("pki caIntermediates", req.PKI.CAIntermediatesPath, req.PKI.CAIntermediatesData, read)
			if err != nil {
				return nil, err
			}
			certs, err := cryptoutils.UnmarshalCertificatesFromPEM(inter)
			if err != nil || len(certs) == 0 {
				return nil, fmt.Errorf("pki caIntermediates: no PEM certificate found (%v)", err)
			}
			for _, c2 := range certs {
				c.intermediates.AddCert(c2)
			}
		}
		c.email, c.hostname = req.PKI.SubjectEmail, req.PKI.SubjectHostname
		m.certs = c
	case req.Fulcio != nil:
		c, err := loadCertRoots("fulcio ca", req.Fulcio.CAPath, req.Fulcio.CAData, read)
		if err != nil {
			return nil, err
		}
		c.email, c.oidcIssuer, c.fulcio = req.Fulcio.SubjectEmail, req.Fulcio.OIDCIssuer, true
		m.certs = c
	default:
		return nil, errors.New("sigstoreSigned requirement has no key, pki or fulcio")
	}

	var rekorPEMs [][]byte
	switch {
	case req.RekorPublicKeyPath != "":
		d, err := loadPEMData("rekorPublicKeyPath", req.RekorPublicKeyPath, nil, read)
		if err != nil {
			return nil, err
		}
		rekorPEMs = append(rekorPEMs, d)
	case req.RekorPublicKeyPaths != nil:
		for _, p := range req.RekorPublicKeyPaths {
			d, err := loadPEMData("rekorPublicKeyPaths", p, nil, read)
			if err != nil {
				return nil, err
			}
			rekorPEMs = append(rekorPEMs, d)
		}
	case req.RekorPublicKeyData != nil:
		rekorPEMs = append(rekorPEMs, req.RekorPublicKeyData)
	case req.RekorPublicKeyDatas != nil:
		rekorPEMs = append(rekorPEMs, req.RekorPublicKeyDatas...)
	}
	if len(rekorPEMs) > 0 {
		keys := cosign.NewTrustedTransparencyLogPubKeys()
		for i, p := range rekorPEMs {
			if err := keys.AddTransparencyLogPubKey(p, tuf.Active); err != nil {
				return nil, fmt.Errorf("rekor public key %d: %w", i, err)
			}
			pub, err := cryptoutils.UnmarshalPEMToPublicKey(p)
			if err != nil {
				return nil, fmt.Errorf("rekor public key %d: %w", i, err)
			}
			m.rekorKeys = append(m.rekorKeys, pub)
		}
		m.rekor = &keys
	}
	return m, nil
}

func loadPEMData(what, path string, data []byte, read ReadFileFunc) ([]byte, error) {
	if path != "" {
		d, err := read(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		data = d
	}
	return data, nil
}

func loadCertRoots(what, path string, data []byte, read ReadFileFunc) (*certRoots, error) {
	data, err := loadPEMData(what, path, data, read)
	if err != nil {
		return nil, err
	}
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(data)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate found (%v)", what, err)
	}
	c := &certRoots{roots: x509.NewCertPool(), intermediates: x509.NewCertPool()}
	for _, cert := range certs {
		c.roots.AddCert(cert)
		c.rootNames = append(c.rootNames, cert.Subject.String())
	}
	return c, nil
}

// parsePublicKeys reads every PUBLIC KEY block of a PEM file (ECDSA, RSA
// or ed25519), so one keyPath may hold several keys.
func parsePublicKeys(name string, data []byte) ([]trustedKey, error) {
	var out []trustedKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" && block.Type != "RSA PUBLIC KEY" {
			continue
		}
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem.EncodeToMemory(block))
		if err != nil {
			return nil, fmt.Errorf("public key %s: %w", name, err)
		}
		k, err := newTrustedKey(name, pub)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("public key %s: no PEM \"PUBLIC KEY\" block found (a cosign.pub file is expected)", name)
	}
	return out, nil
}

func newTrustedKey(name string, pub crypto.PublicKey) (trustedKey, error) {
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return trustedKey{}, fmt.Errorf("public key %s: %w", name, err)
	}
	id, err := KeyID(pub)
	if err != nil {
		return trustedKey{}, fmt.Errorf("public key %s: %w", name, err)
	}
	return trustedKey{name: name, id: id, pub: pub, verifier: v}, nil
}

// PublicKeyIDs parses a PEM file of public keys (as keyPath names) and
// returns their KeyIDs; `sigil trust add` uses it to refuse a file that
// would make the policy unusable.
func PublicKeyIDs(pemData []byte) ([]string, error) {
	keys, err := parsePublicKeys("", pemData)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.id
	}
	return ids, nil
}
