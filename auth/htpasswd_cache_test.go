package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestHtpasswdRemembersVerifiedPasswords checks the cache of verified
// passwords: a repeated login skips bcrypt, a wrong password or a changed
// hash never hits it, and entries expire.
func TestHtpasswdRemembersVerifiedPasswords(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "htpasswd")
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.DefaultCost)
	if err := os.WriteFile(path, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := NewHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h.verified.now = func() time.Time { return now }

	start := time.Now()
	if _, err := h.Authenticate(ctx, "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	start = time.Now()
	if _, err := h.Authenticate(ctx, "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	if second := time.Since(start); second > first/4 {
		t.Errorf("second login took %v after a first of %v: the verified password was not remembered", second, first)
	}
	if _, err := h.Authenticate(ctx, "alice", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("wrong password after a good login = %v, want ErrInvalidCredentials", err)
	}

	// A new password in the file: the remembered one no longer works.
	hash2, _ := bcrypt.GenerateFromPassword([]byte("pw2"), bcrypt.MinCost)
	if err := os.WriteFile(path, []byte("alice:"+string(hash2)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(path, future, future)
	if _, err := h.Authenticate(ctx, "alice", "pw"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("old password after the hash changed = %v, want ErrInvalidCredentials", err)
	}
	if _, err := h.Authenticate(ctx, "alice", "pw2"); err != nil {
		t.Errorf("new password = %v, want success", err)
	}

	// Expiry: past the TTL, the entry is not used (the check falls back to
	// bcrypt, which still accepts the right password).
	now = now.Add(verifiedTTL + time.Second)
	if h.verified.ok("alice", hash2, "pw2") {
		t.Error("an expired verified entry was used")
	}
}
