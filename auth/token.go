package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sigil-project/sigil/runtime/atomicfile"
)

// Defaults of TokenOptions.
const (
	DefaultTokenExpiration   = 5 * time.Minute
	DefaultRefreshExpiration = 7 * 24 * time.Hour
)

// TokenOptions configure a TokenIssuer. Issuer, Service and KeyFile are
// required.
type TokenOptions struct {
	// Issuer is the "iss" claim; distribution's token.issuer must be equal.
	Issuer string
	// Service is the "aud" claim, the registry's name; distribution's
	// token.service must be equal and clients must send it as service=.
	Service string
	// Expiration is the lifetime of access tokens. Default
	// DefaultTokenExpiration; clients fetch a new one when it ends.
	Expiration time.Duration
	// RefreshExpiration is the lifetime of refresh tokens (what
	// `docker login` stores as identitytoken). Default
	// DefaultRefreshExpiration; negative disables refresh tokens, and
	// clients then keep the password instead.
	RefreshExpiration time.Duration
	// KeyFile is a PEM private key (ECDSA P-256/P-384, RSA >= 2048 bits or
	// Ed25519; PKCS#8, SEC 1 or PKCS#1). When missing, an ECDSA P-256 key
	// is generated and saved with mode 0600. Replicas behind one load
	// balancer must share the file.
	KeyFile string
	// CertFile is where the self-signed certificate of the key is written
	// for distribution's token.rootcertbundle. Default: KeyFile with its
	// extension replaced by ".crt".
	CertFile string
	// JWKSFile is where the public key is written as a JSON Web Key Set,
	// for distribution's token.jwks. Default: KeyFile with its extension
	// replaced by ".jwks".
	JWKSFile string
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

// TokenIssuer signs the JWTs of the Docker registry token flow. It is safe
// for concurrent use.
type TokenIssuer struct {
	issuer, service string
	expiration      time.Duration
	refreshExp      time.Duration
	certFile        string
	now             func() time.Time

	key    crypto.Signer
	method jwt.SigningMethod
	kid    string
	jwks   string // path of the JWKS file
}

// ResourceActions is one entry of a token's "access" claim, as
// distribution reads it.
type ResourceActions struct {
	Type    string   `json:"type"`
	Class   string   `json:"class,omitempty"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// AccessClaims are the claims of an access token.
type AccessClaims struct {
	jwt.RegisteredClaims
	Access []ResourceActions `json:"access"`
}

// refreshClaims are the claims of a refresh token. Its audience is not the
// service, so distribution refuses it as an access token, and Type marks
// it so an access token is never taken for a refresh token.
type refreshClaims struct {
	jwt.RegisteredClaims
	Type   string `json:"sigil_typ"`
	Source string `json:"sigil_src,omitempty"`
}

const refreshType = "refresh"

// NewTokenIssuer loads (or creates) the signing key and writes its
// certificate. Errors name the file and what to do.
func NewTokenIssuer(opts TokenOptions) (*TokenIssuer, error) {
	switch {
	case opts.Issuer == "":
		return nil, errors.New("token issuer: no issuer name: set auth.token.issuer (distribution's token.issuer must be the same)")
	case opts.Service == "":
		return nil, errors.New("token issuer: no service name: set the registry's service name (distribution's token.service must be the same)")
	case opts.KeyFile == "":
		return nil, errors.New("token issuer: no key file: give the path of the token signing key (it is created when missing)")
	case opts.Expiration < 0:
		return nil, fmt.Errorf("token issuer: negative expiration %s", opts.Expiration)
	}
	t := &TokenIssuer{
		issuer:     opts.Issuer,
		service:    opts.Service,
		expiration: opts.Expiration,
		refreshExp: opts.RefreshExpiration,
		certFile:   opts.CertFile,
		jwks:       opts.JWKSFile,
		now:        opts.Now,
	}
	if t.expiration == 0 {
		t.expiration = DefaultTokenExpiration
	}
	if t.refreshExp == 0 {
		t.refreshExp = DefaultRefreshExpiration
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.certFile == "" {
		t.certFile = replaceExt(opts.KeyFile, ".crt")
	}
	if t.jwks == "" {
		t.jwks = replaceExt(opts.KeyFile, ".jwks")
	}
	key, err := loadOrCreateKey(opts.KeyFile)
	if err != nil {
		return nil, err
	}
	t.key = key
	if t.method, err = signingMethod(key); err != nil {
		return nil, fmt.Errorf("token signing key %s: %w", opts.KeyFile, err)
	}
	t.kid = KeyID(key.Public())
	if err := ensureCert(t.certFile, key, opts.Issuer, t.now()); err != nil {
		return nil, err
	}
	if err := ensureJWKS(t.jwks, key.Public(), t.kid, t.method.Alg()); err != nil {
		return nil, err
	}
	return t, nil
}

func replaceExt(path, ext string) string {
	p := strings.TrimSuffix(path, filepath.Ext(path)) + ext
	if p == path {
		p += ext
	}
	return p
}

// Issuer is the "iss" of every token, for distribution's token.issuer.
func (t *TokenIssuer) Issuer() string { return t.issuer }

// Service is the "aud" of access tokens, for distribution's token.service.
func (t *TokenIssuer) Service() string { return t.service }

// RootCertBundle is the path of a PEM file holding the self-signed
// certificate of the signing key: distribution's token.rootcertbundle.
//
// Tokens name their key by "kid" (KeyID), which distribution matches
// against the keys of the bundle's certificates; they carry no x5c chain,
// so replicas that share the key but wrote their own certificates accept
// each other's tokens.
func (t *TokenIssuer) RootCertBundle() string { return t.certFile }

// JWKSFile is the path of the public key as a JSON Web Key Set with the
// same kid: distribution's token.jwks, an alternative to RootCertBundle
// that does not depend on how distribution computes thumbprints.
func (t *TokenIssuer) JWKSFile() string { return t.jwks }

// Expiration is the lifetime of access tokens.
func (t *TokenIssuer) Expiration() time.Duration { return t.expiration }

// Issue signs an access token for id (nil: anonymous, subject "") with the
// given access. It returns the token and when it expires.
func (t *TokenIssuer) Issue(id *Identity, access []ResourceActions) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(t.expiration)
	if access == nil {
		access = []ResourceActions{}
	}
	claims := AccessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   id.Subject(),
			Audience:  jwt.ClaimStrings{t.service},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        randomID(),
		},
		Access: access,
	}
	s, err := t.sign(claims)
	return s, exp, err
}

// issueRefresh signs a refresh token for a user; robots and anonymous get
// none (a robot has its secret, and a removed and re-created robot of the
// same name must not inherit old refresh tokens).
func (t *TokenIssuer) issueRefresh(id *Identity) (string, error) {
	if id == nil || id.Robot || t.refreshExp < 0 {
		return "", nil
	}
	now := t.now()
	return t.sign(refreshClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   id.Name,
			Audience:  jwt.ClaimStrings{t.refreshAudience()},
			ExpiresAt: jwt.NewNumericDate(now.Add(t.refreshExp)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        randomID(),
		},
		Type:   refreshType,
		Source: id.Source,
	})
}

// refreshAudience differs from the service so that distribution, which
// checks aud, never takes a refresh token for an access token.
func (t *TokenIssuer) refreshAudience() string { return t.service + "#refresh" }

// parseRefresh verifies a refresh token's signature, issuer, audience,
// type and lifetime, and returns the user name and source in it.
func (t *TokenIssuer) parseRefresh(raw string) (subject, source string, err error) {
	var c refreshClaims
	_, err = jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return t.key.Public(), nil },
		jwt.WithValidMethods([]string{t.method.Alg()}),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(t.refreshAudience()),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now),
		jwt.WithLeeway(time.Minute),
	)
	if err != nil {
		return "", "", fmt.Errorf("refresh token: %w", err)
	}
	if c.Type != refreshType || c.Subject == "" {
		return "", "", errors.New("refresh token: not a refresh token")
	}
	return c.Subject, c.Source, nil
}

// VerifyAccess checks an access token this issuer signed (signature,
// issuer, audience, lifetime) and returns its claims. Distribution does
// this itself; this is for tools and tests that hold a token.
func (t *TokenIssuer) VerifyAccess(raw string) (*AccessClaims, error) {
	var c AccessClaims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return t.key.Public(), nil },
		jwt.WithValidMethods([]string{t.method.Alg()}),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(t.service),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return nil, fmt.Errorf("access token: %w", err)
	}
	return &c, nil
}

func (t *TokenIssuer) sign(claims jwt.Claims) (string, error) {
	tok := jwt.NewWithClaims(t.method, claims)
	tok.Header["kid"] = t.kid
	s, err := tok.SignedString(t.key)
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return s, nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

func signingMethod(key crypto.Signer) (jwt.SigningMethod, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256, nil
		case elliptic.P384():
			return jwt.SigningMethodES384, nil
		case elliptic.P521():
			return jwt.SigningMethodES512, nil
		}
		return nil, fmt.Errorf("ECDSA curve %s is not supported: use P-256", k.Curve.Params().Name)
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits is too weak: use 2048 bits or more, or delete the file to get a new ECDSA key", k.N.BitLen())
		}
		return jwt.SigningMethodRS256, nil
	case ed25519.PrivateKey:
		return jwt.SigningMethodEdDSA, nil
	}
	return nil, fmt.Errorf("key type %T is not supported: use ECDSA, RSA or Ed25519", key)
}

// KeyID is the "kid" of tokens signed by the key whose public half is pub:
// the JWK thumbprint (RFC 7638, SHA-256) computed the way distribution's
// token.GetJWKThumbprint does, which is how distribution indexes the keys
// of its rootcertbundle.
func KeyID(pub crypto.PublicKey) string {
	var payload string
	enc := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *rsa.PublicKey:
		payload = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, enc(big.NewInt(int64(k.E)).Bytes()), enc(k.N.Bytes()))
	case *ecdsa.PublicKey:
		// Like distribution, big.Int bytes without left padding.
		x, y := ecdsaXY(k)
		payload = fmt.Sprintf(`{"crv":"%s","kty":"EC","x":"%s","y":"%s"}`, k.Curve.Params().Name, enc(x), enc(y))
	case ed25519.PublicKey:
		payload = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, enc(k))
	default:
		return ""
	}
	sum := sha256.Sum256([]byte(payload))
	return enc(sum[:])
}

// ecdsaXY returns the point's coordinates as minimal big-endian bytes
// (what big.Int.Bytes gives), via the uncompressed encoding since the
// X and Y fields are deprecated.
func ecdsaXY(k *ecdsa.PublicKey) (x, y []byte) {
	raw, err := k.Bytes()
	if err != nil {
		return nil, nil
	}
	n := (len(raw) - 1) / 2
	return new(big.Int).SetBytes(raw[1 : 1+n]).Bytes(), new(big.Int).SetBytes(raw[1+n:]).Bytes()
}

// loadOrCreateKey reads the PEM key at path, or generates an ECDSA P-256
// key there. Creation is race-free between replicas starting together on a
// shared directory: the key is written to a temporary file and hard-linked
// into place, and a loser of the race reads the winner's key.
func loadOrCreateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := createKey(path); err != nil {
			return nil, err
		}
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("token signing key %s: %w", path, err)
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("token signing key %s: %w; fix the file or move it away to get a new key (clients then log in again)", path, err)
	}
	return key, nil
}

func createKey(path string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating token signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding token signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating token signing key %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("creating token signing key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600: the key is never readable by others,
	// not even for a moment.
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return fmt.Errorf("writing token signing key %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing token signing key %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing token signing key %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating token signing key %s: %w", path, err)
	}
	return nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key in the file")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted: store it unencrypted (mode 0600)")
		default:
			continue // e.g. "EC PARAMETERS" before the key
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", block.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key type %T cannot sign", key)
		}
		return s, nil
	}
}

// ensureCert makes sure certFile holds a self-signed certificate for key
// that is valid now and for the next 30 days. A valid file is left alone
// (replicas sharing it do not rewrite it); otherwise a new ten-year
// certificate replaces it atomically.
func ensureCert(certFile string, key crypto.Signer, issuer string, now time.Time) error {
	if data, err := os.ReadFile(certFile); err == nil {
		if block, _ := pem.Decode(data); block != nil && block.Type == "CERTIFICATE" {
			if c, err := x509.ParseCertificate(block.Bytes); err == nil &&
				publicKeyEqual(c.PublicKey, key.Public()) &&
				now.After(c.NotBefore) && now.Add(30*24*time.Hour).Before(c.NotAfter) {
				return nil
			}
		}
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: issuer + " token signing"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("token certificate %s: %w", certFile, err)
	}
	if err := writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("token certificate %s: %w", certFile, err)
	}
	return nil
}

// ensureJWKS writes the public key as a one-key JWKS, unless the file
// already says exactly that.
func ensureJWKS(path string, pub crypto.PublicKey, kid, alg string) error {
	enc := base64.RawURLEncoding.EncodeToString
	jwk := map[string]string{"kid": kid, "alg": alg, "use": "sig"}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		raw, err := k.Bytes()
		if err != nil {
			return fmt.Errorf("token JWKS %s: %w", path, err)
		}
		// RFC 7518: coordinates padded to the curve size.
		n := (len(raw) - 1) / 2
		jwk["kty"], jwk["crv"], jwk["x"], jwk["y"] = "EC", k.Curve.Params().Name, enc(raw[1:1+n]), enc(raw[1+n:])
	case *rsa.PublicKey:
		jwk["kty"], jwk["n"], jwk["e"] = "RSA", enc(k.N.Bytes()), enc(big.NewInt(int64(k.E)).Bytes())
	case ed25519.PublicKey:
		jwk["kty"], jwk["crv"], jwk["x"] = "OKP", "Ed25519", enc(k)
	}
	data, err := json.MarshalIndent(map[string]any{"keys": []any{jwk}}, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return fmt.Errorf("token JWKS %s: %w", path, err)
	}
	return nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// writeFileAtomic creates path's directory if needed and writes data
// there with atomicfile (temporary file, sync, rename), so readers see the
// old or the new content.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, mode)
}
