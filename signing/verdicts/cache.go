// Package verdicts remembers the trust policy's acceptances of images
// whose requirements needed signatures, so a stored image is not verified
// over the network again before every run.
//
// It is apart from package signing, which checks signatures with cosign's
// packages, so that a small program (the runtime shim that fronts `sigil
// run`) can answer from the cache without linking cosign: Lookup is a
// policy.SignatureVerifier that only reads the cache.
package verdicts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/sigil-project/sigil/runtime/atomicfile"
	"github.com/sigil-project/sigil/signing/policy"
)

// Cache remembers that a sigstoreSigned requirement accepted an
// image, so a stored image is not verified over the network again before
// every run. Only acceptances are cached: a refusal may be cured by a
// signature pushed later.
//
// An entry is keyed by the SHA-256 of
//
//	the policy file's content (policy.Policy.Digest)
//	the image reference evaluated (identity checks depend on the name)
//	the manifest digest
//	the requirement, and every byte of the keys and CAs it names
//
// so any change to the policy or to a key file misses the cache, and an
// entry is never used across a policy change. Entries whose acceptance
// rests on a certificate checked at the current time carry its expiry.
//
// On disk, one file per entry, written to a temporary name and renamed, so
// concurrent sigil processes only ever read whole entries:
//
//	ROOT/verdicts/
//	├── <sha256 of the key>.json   {"version":1,"ref":…,"digest":…,"signer":…,"verified_at":…}
//	└── .<name>.*                  being written (runtime/atomicfile)
type Cache struct {
	dir       string
	policy    digest.Digest
	writeOnly bool
}

// New returns a cache in dir for verdicts of the policy whose
// file content has digest policyDigest. It returns nil (no caching) when
// policyDigest is "", as for a policy built in code.
func New(dir string, policyDigest digest.Digest) *Cache {
	if policyDigest == "" {
		return nil
	}
	return &Cache{dir: dir, policy: policyDigest}
}

type cacheEntry struct {
	Version    int            `json:"version"`
	Ref        string         `json:"ref"`
	Digest     digest.Digest  `json:"digest"`
	Signer     *policy.Signer `json:"signer"`
	VerifiedAt time.Time      `json:"verified_at"`
	NotAfter   *time.Time     `json:"not_after,omitempty"`
	Policy     digest.Digest  `json:"policy"`
}

const cacheVersion = 1

func (c *Cache) key(ref string, d digest.Digest, fingerprint []byte) string {
	h := sha256.New()
	writeField(h, "version", []byte{cacheVersion})
	writeField(h, "policy", []byte(c.policy))
	writeField(h, "ref", []byte(ref))
	writeField(h, "digest", []byte(d))
	writeField(h, "material", fingerprint)
	return hex.EncodeToString(h.Sum(nil))
}

func (c *Cache) path(key string) string { return filepath.Join(c.dir, key+".json") }

// Get returns the signer cached for ref at digest d under the key material
// whose Fingerprint is given, if any and still valid at now, with the time
// it was verified. Anything unexpected (unreadable, another digest) is a
// miss.
func (c *Cache) Get(ref string, d digest.Digest, fingerprint []byte, now time.Time) (*policy.Signer, time.Time, bool) {
	if c == nil || c.writeOnly {
		return nil, time.Time{}, false
	}
	b, err := os.ReadFile(c.path(c.key(ref, d, fingerprint)))
	if err != nil {
		return nil, time.Time{}, false
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil || e.Version != cacheVersion || e.Digest != d || e.Policy != c.policy || e.Signer == nil {
		return nil, time.Time{}, false
	}
	if e.NotAfter != nil && now.After(*e.NotAfter) {
		return nil, time.Time{}, false
	}
	return e.Signer, e.VerifiedAt, true
}

// Put records that s's signature accepted ref at digest d under the key
// material whose Fingerprint is given; notAfter, when not zero, is when
// the acceptance stops holding (a certificate's expiry).
func (c *Cache) Put(ref string, d digest.Digest, fingerprint []byte, s *policy.Signer, now, notAfter time.Time) error {
	if c == nil {
		return nil
	}
	e := cacheEntry{Version: cacheVersion, Ref: ref, Digest: d, Signer: s, VerifiedAt: now.UTC(), Policy: c.policy}
	if !notAfter.IsZero() {
		na := notAfter.UTC()
		e.NotAfter = &na
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("verdict cache: %w", err)
	}
	// Only a verification that read signatures writes here, so the
	// fsync costs no warm run anything.
	if err := atomicfile.WriteFile(c.path(c.key(ref, d, fingerprint)), b, 0o600); err != nil {
		return fmt.Errorf("verdict cache: %w", err)
	}
	return nil
}

// WriteOnly returns a cache that records acceptances but never answers
// from what it recorded: `sigil verify` checks afresh and refreshes the
// entry for the runs that follow.
func (c *Cache) WriteOnly() *Cache {
	if c == nil {
		return nil
	}
	cp := *c
	cp.writeOnly = true
	return &cp
}

// Prune removes verdicts in dir older than maxAge, whatever policy they
// were made under, and leftover temporary files; sigil gc calls it. A
// missing directory is not an error.
func Prune(dir string, maxAge time.Duration, now time.Time) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, de := range entries {
		info, err := de.Info()
		if err != nil {
			continue
		}
		if now.Sub(info.ModTime()) > maxAge {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
	return nil
}
