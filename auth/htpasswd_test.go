package auth_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sigil-project/sigil/auth"
)

func TestHtpasswd(t *testing.T) {
	ctx := context.Background()
	path := writeHtpasswd(t, map[string]string{"alice": "alice-pw", "bob": "bob-pw"})
	h, err := auth.NewHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, pass string
		wantErr    error // nil: success
	}{
		{"alice", "alice-pw", nil},
		{"bob", "bob-pw", nil},
		{"alice", "bob-pw", auth.ErrInvalidCredentials},
		{"alice", "", auth.ErrInvalidCredentials},
		{"alice", "alice-pw ", auth.ErrInvalidCredentials},
		{"Alice", "alice-pw", auth.ErrUnknownUser},
		{"carol", "alice-pw", auth.ErrUnknownUser},
		{"", "alice-pw", auth.ErrUnknownUser},
		{"alice\n", "alice-pw", auth.ErrUnknownUser},
	} {
		id, err := h.Authenticate(ctx, tc.user, tc.pass)
		switch {
		case tc.wantErr == nil && (err != nil || id == nil || id.Name != tc.user || id.Source != "htpasswd"):
			t.Errorf("Authenticate(%q) = %+v, %v; want %s", tc.user, id, err, tc.user)
		case tc.wantErr != nil && (id != nil || !errors.Is(err, tc.wantErr)):
			t.Errorf("Authenticate(%q, %q) = %+v, %v; want %v", tc.user, tc.pass, id, err, tc.wantErr)
		}
	}
	if _, err := h.Lookup(ctx, "bob"); err != nil {
		t.Errorf("Lookup(bob) = %v", err)
	}
	if _, err := h.Lookup(ctx, "carol"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Errorf("Lookup(carol) = %v, want ErrUnknownUser", err)
	}

	// Changes apply without a restart: a new user, a removed one.
	hash, _ := bcrypt.GenerateFromPassword([]byte("carol-pw"), bcrypt.MinCost)
	old, _ := os.ReadFile(path)
	var kept []string
	for l := range strings.Lines(string(old)) {
		if !strings.HasPrefix(l, "bob:") {
			kept = append(kept, l)
		}
	}
	writeAtomic(t, path, strings.Join(kept, "")+"carol:"+string(hash)+"\n")
	if _, err := h.Authenticate(ctx, "carol", "carol-pw"); err != nil {
		t.Errorf("new user carol: %v", err)
	}
	if _, err := h.Authenticate(ctx, "bob", "bob-pw"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Errorf("removed user bob: %v, want ErrUnknownUser", err)
	}

	// A file that turns bad fails closed, saying why, until fixed.
	writeAtomic(t, path, string(old)+"mallory:$apr1$abc$def\n")
	_, err = h.Authenticate(ctx, "alice", "alice-pw")
	if !errors.Is(err, auth.ErrUnavailable) || !strings.Contains(err.Error(), "mallory") {
		t.Errorf("with a bad line: %v, want ErrUnavailable naming mallory", err)
	}
	writeAtomic(t, path, string(old))
	if _, err := h.Authenticate(ctx, "alice", "alice-pw"); err != nil {
		t.Errorf("after the fix: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Authenticate(ctx, "alice", "alice-pw"); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("file removed: %v, want ErrUnavailable", err)
	}
}

func TestHtpasswdRefusesOtherHashes(t *testing.T) {
	good, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	for _, tc := range []struct {
		line, want string
	}{
		{"bob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "MD5 ($apr1$)"},
		{"bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1 ({SHA})"},
		{"bob:rqXexS6ZhobKA", "DES crypt"},
		{"bob:$6$salt$hash", "SHA-512-crypt"},
		{"bob:$5$salt$hash", "SHA-256-crypt"},
		{"bob:$1$salt$hash", "MD5-crypt"},
		{"bob:password", "plain-text"},
		{"bob:$2y$10$short", "broken bcrypt"},
		{"bob", "want user:hash"},
		{"alice:" + string(good), "appears twice"},
	} {
		path := writeHtpasswd(t, map[string]string{"alice": "pw"})
		f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("# a comment\n\n" + tc.line + "\n")
		f.Close()
		_, err := auth.NewHtpasswd(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path+" line 4") {
			t.Errorf("line %q: %v, want an error naming %s line 4 and %q", tc.line, err, path, tc.want)
			continue
		}
		if tc.want != "appears twice" && tc.want != "want user:hash" && !strings.Contains(err.Error(), "htpasswd -B "+path+" bob") {
			t.Errorf("line %q: %v, want the fix (htpasswd -B %s bob)", tc.line, err, path)
		}
	}
	if _, err := auth.NewHtpasswd("/nonexistent/htpasswd"); err == nil {
		t.Error("missing file accepted")
	}
}

// Unknown users cost a bcrypt comparison too, so timing does not tell
// which names exist.
func TestHtpasswdUnknownUserTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	users := map[string]string{"alice": "pw"}
	path := writeHtpasswd(t, users)
	// A realistic cost for the known user, like the dummy's.
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.DefaultCost)
	writeAtomic(t, path, "alice:"+string(hash)+"\n")
	h, err := auth.NewHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	timeOf := func(user string) time.Duration {
		best := time.Hour
		for range 3 {
			start := time.Now()
			_, _ = h.Authenticate(context.Background(), user, "wrong")
			best = min(best, time.Since(start))
		}
		return best
	}
	known, unknown := timeOf("alice"), timeOf("nobody")
	if unknown < known/3 {
		t.Errorf("unknown user answered in %s, known in %s: the difference tells who exists", unknown, known)
	}
}

func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
