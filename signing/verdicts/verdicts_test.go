package verdicts

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/sigil-project/sigil/signing/policy"
)

func files(m map[string][]byte) ReadFileFunc {
	return func(p string) ([]byte, error) {
		if b, ok := m[p]; ok {
			return b, nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
}

func TestFingerprintCoversEveryByteOfKeyMaterial(t *testing.T) {
	m := map[string][]byte{"/a.pub": []byte("key A"), "/rekor.pub": []byte("rekor")}
	fp := func(req *policy.SigstoreSigned) []byte {
		t.Helper()
		b, err := Fingerprint(req, files(m))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	byPath := &policy.SigstoreSigned{KeyPath: "/a.pub", RekorPublicKeyPath: "/rekor.pub"}
	first := fp(byPath)
	if !bytes.Equal(first, fp(byPath)) {
		t.Fatal("Fingerprint is not deterministic")
	}
	if bytes.Equal(first, fp(&policy.SigstoreSigned{KeyData: []byte("key A"), RekorPublicKeyPath: "/rekor.pub"})) {
		t.Error("keyPath and keyData with the same bytes fingerprint alike: the requirement itself must count")
	}
	for _, f := range []string{"/a.pub", "/rekor.pub"} {
		old := m[f]
		m[f] = append(append([]byte{}, old...), '!')
		if bytes.Equal(first, fp(byPath)) {
			t.Errorf("editing %s did not change the fingerprint", f)
		}
		m[f] = old
	}
	if _, err := Fingerprint(&policy.SigstoreSigned{KeyPath: "/missing.pub"}, files(m)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing key file: %v", err)
	}
	if _, err := Fingerprint(&policy.SigstoreSigned{}, files(m)); err == nil {
		t.Error("a requirement with no key, pki or fulcio was fingerprinted")
	}
}

func TestCacheRoundTripAndExpiry(t *testing.T) {
	dir := t.TempDir()
	pol := digest.FromString("policy")
	d := digest.FromString("manifest")
	fp := []byte("fingerprint")
	now := time.Now()
	signer := &policy.Signer{KeyID: "k1"}
	c := New(dir, pol)
	if err := c.Put("r.example/app:1", d, fp, signer, now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s, _, ok := c.Get("r.example/app:1", d, fp, now); !ok || s.KeyID != "k1" {
		t.Fatalf("Get after Put = %+v, %v", s, ok)
	}
	for name, get := range map[string]func() bool{
		"other name":     func() bool { _, _, ok := c.Get("r.example/app:2", d, fp, now); return ok },
		"other digest":   func() bool { _, _, ok := c.Get("r.example/app:1", digest.FromString("x"), fp, now); return ok },
		"other material": func() bool { _, _, ok := c.Get("r.example/app:1", d, []byte("other"), now); return ok },
		"other policy": func() bool {
			_, _, ok := New(dir, digest.FromString("p2")).Get("r.example/app:1", d, fp, now)
			return ok
		},
		"certificate ended": func() bool { _, _, ok := c.Get("r.example/app:1", d, fp, now.Add(2*time.Hour)); return ok },
		"write-only":        func() bool { _, _, ok := c.WriteOnly().Get("r.example/app:1", d, fp, now); return ok },
	} {
		if get() {
			t.Errorf("%s: cache hit", name)
		}
	}
	l := &Lookup{Cache: c, ReadFile: files(map[string][]byte{"/k": []byte("k")}), Now: func() time.Time { return now }}
	if _, err := l.VerifySigstore(context.Background(), "r.example/app:1", d, &policy.SigstoreSigned{KeyPath: "/k"}); !errors.Is(err, ErrNotCached) {
		t.Errorf("Lookup of an uncached requirement = %v, want ErrNotCached", err)
	}

	old := filepath.Join(dir, "old.json")
	if err := os.WriteFile(old, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(old, now.Add(-30*24*time.Hour), now.Add(-30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := Prune(dir, 7*24*time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Prune kept a 30-day-old verdict: %v", err)
	}
	if _, _, ok := c.Get("r.example/app:1", d, fp, now); !ok {
		t.Error("Prune removed a fresh verdict")
	}
	if err := Prune(filepath.Join(dir, "missing"), time.Hour, now); err != nil {
		t.Errorf("Prune of a missing directory: %v", err)
	}
}
