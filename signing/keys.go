package signing

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// ErrKeyDecrypt is matched (errors.Is) by LoadKeySigner's error when the
// private key cannot be decrypted: a wrong password, or not a cosign key.
var ErrKeyDecrypt = errors.New("cannot decrypt the private key")

// GenerateKeyPair makes an ECDSA P-256 key pair in cosign's formats:
// privatePEM is the "ENCRYPTED SIGSTORE PRIVATE KEY" that `cosign
// generate-key-pair` writes (scrypt + secretbox under password), publicPEM
// the PKIX "PUBLIC KEY". Either tool signs and verifies with them.
func GenerateKeyPair(password []byte) (privatePEM, publicPEM []byte, err error) {
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		return nil, nil, fmt.Errorf("generating a key pair: %w", err)
	}
	return kb.PrivateBytes, kb.PublicBytes, nil
}

// KeySigner signs with a private key. It holds the decrypted key in
// memory; never log it.
type KeySigner struct {
	sv     signature.SignerVerifier
	pub    crypto.PublicKey
	pubPEM []byte
	id     string
}

// LoadKeySigner decrypts a cosign private key (as GenerateKeyPair or
// `cosign generate-key-pair` write it) with password.
func LoadKeySigner(privatePEM, password []byte) (*KeySigner, error) {
	sv, err := cosign.LoadPrivateKey(privatePEM, password, nil)
	if err != nil {
		return nil, fmt.Errorf("%w (wrong password, or not a cosign private key): %v", ErrKeyDecrypt, err)
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, err
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, err
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &KeySigner{sv: sv, pub: pub, pubPEM: pubPEM, id: id}, nil
}

// KeyID is the public key's KeyID (see KeyID).
func (s *KeySigner) KeyID() string { return s.id }

// PublicKeyPEM is the public key, PEM-encoded as in a cosign.pub file.
func (s *KeySigner) PublicKeyPEM() []byte { return bytes.Clone(s.pubPEM) }

// sign signs message (hashed with SHA-256, as cosign does).
func (s *KeySigner) sign(message []byte) ([]byte, error) {
	return s.sv.SignMessage(bytes.NewReader(message))
}

// verifies reports whether sig is this key's signature of message.
func (s *KeySigner) verifies(sig, message []byte) bool {
	return s.sv.VerifySignature(bytes.NewReader(sig), bytes.NewReader(message)) == nil
}
