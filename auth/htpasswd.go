package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Htpasswd authenticates against an Apache htpasswd file holding bcrypt
// hashes (htpasswd -B), the embedded default when there is no directory.
// The file is read again when it changes, so `htpasswd -B FILE user` takes
// effect without a restart. Users have no groups.
//
// Other hash types (MD5 "$apr1$", SHA-1 "{SHA}", crypt, plain text) are
// refused: they are weak, and some cannot be compared in constant time.
// A file holding one fails to load, naming the line and the fix; if it
// turns bad while in use, logins fail (ErrUnavailable) until it is fixed
// rather than running on a stale copy.
type Htpasswd struct {
	path  string
	dummy []byte // bcrypt hash compared for unknown users, to take as long

	mu    sync.Mutex
	stamp fileStamp
	users map[string][]byte
	err   error

	verified verifiedCache
}

// verifiedCache remembers, for a few minutes, that a password was checked
// against a user's bcrypt hash, so a client that asks for a token per push
// (docker, crane, skopeo do) pays bcrypt's ~80 ms once, not on every
// request. Only a keyed MAC of the password is kept (the key is random per
// process and never leaves memory), an entry is bound to the hash it was
// checked against (a changed password misses), and failures are never
// cached, so guessing still costs a full bcrypt check per attempt.
type verifiedCache struct {
	mu      sync.Mutex
	key     [32]byte
	entries map[string]verifiedEntry
	now     func() time.Time
}

type verifiedEntry struct {
	hash    string // the stored bcrypt hash the password matched
	mac     [32]byte
	expires time.Time
}

const (
	verifiedTTL        = 5 * time.Minute
	verifiedMaxEntries = 10000
)

func (c *verifiedCache) mac(password string) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(password))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

func (c *verifiedCache) ok(username string, hash []byte, password string) bool {
	c.mu.Lock()
	e, found := c.entries[username]
	c.mu.Unlock()
	if !found || e.hash != string(hash) || c.now().After(e.expires) {
		return false
	}
	m := c.mac(password)
	return hmac.Equal(e.mac[:], m[:])
}

func (c *verifiedCache) remember(username string, hash []byte, password string) {
	m := c.mac(password)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= verifiedMaxEntries {
		c.entries = map[string]verifiedEntry{}
	}
	c.entries[username] = verifiedEntry{hash: string(hash), mac: m, expires: c.now().Add(verifiedTTL)}
}

// NewHtpasswd loads path. Errors name the file, the line and the fix.
func NewHtpasswd(path string) (*Htpasswd, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte(randomID()), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	h := &Htpasswd{path: path, dummy: dummy}
	h.verified.now = time.Now
	if _, err := rand.Read(h.verified.key[:]); err != nil {
		return nil, err
	}
	if err := h.reload(); err != nil {
		return nil, err
	}
	return h, nil
}

// Authenticate implements Authenticator.
func (h *Htpasswd) Authenticate(_ context.Context, username, password string) (*Identity, error) {
	if err := checkUsername(username); err != nil {
		return nil, err
	}
	if password == "" {
		return nil, fmt.Errorf("htpasswd %s: empty password for %q refused: %w", h.path, username, ErrInvalidCredentials)
	}
	hash, ok, err := h.lookup(username)
	if err != nil {
		return nil, err
	}
	if !ok {
		// As long as a real check, so timing does not tell who exists.
		_ = bcrypt.CompareHashAndPassword(h.dummy, []byte(password))
		return nil, fmt.Errorf("htpasswd %s: no user %q: %w", h.path, username, ErrUnknownUser)
	}
	if h.verified.ok(username, hash, password) {
		return &Identity{Name: username, Source: "htpasswd"}, nil
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil {
		return nil, fmt.Errorf("htpasswd %s: wrong password for %q: %w", h.path, username, ErrInvalidCredentials)
	}
	h.verified.remember(username, hash, password)
	return &Identity{Name: username, Source: "htpasswd"}, nil
}

// Lookup implements Lookuper.
func (h *Htpasswd) Lookup(_ context.Context, username string) (*Identity, error) {
	if err := checkUsername(username); err != nil {
		return nil, err
	}
	_, ok, err := h.lookup(username)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("htpasswd %s: no user %q: %w", h.path, username, ErrUnknownUser)
	}
	return &Identity{Name: username, Source: "htpasswd"}, nil
}

func (h *Htpasswd) lookup(username string) ([]byte, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st, err := statFile(h.path); err != nil || st != h.stamp {
		h.loadLocked(st, err)
	}
	if h.err != nil {
		return nil, false, unavailablef(h.err, "%s; logins with htpasswd users fail until it is fixed", h.err)
	}
	hash, ok := h.users[username]
	return hash, ok, nil
}

func (h *Htpasswd) reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.loadLocked(statFile(h.path))
	return h.err
}

// loadLocked reads the file whose stat (statFile) gave st and err.
func (h *Htpasswd) loadLocked(st fileStamp, err error) {
	if err != nil {
		h.users, h.err = nil, fmt.Errorf("htpasswd: %w", err)
		return
	}
	data, err := os.ReadFile(h.path)
	if err != nil {
		h.users, h.err = nil, fmt.Errorf("htpasswd: %w", err)
		return
	}
	users, err := parseHtpasswd(h.path, data)
	h.stamp = st
	if err != nil {
		h.users, h.err = nil, err
		return
	}
	h.users, h.err = users, nil
}

func parseHtpasswd(path string, data []byte) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("htpasswd %s line %d: want user:hash; re-create it with htpasswd -B %s USER", path, n, path)
		}
		if err := checkUsername(user); err != nil {
			return nil, fmt.Errorf("htpasswd %s line %d: %w", path, n, errors.Unwrap(err))
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("htpasswd %s line %d: user %q appears twice; delete one line", path, n, user)
		}
		if kind := hashKind(hash); kind != "bcrypt" {
			return nil, fmt.Errorf("htpasswd %s line %d: user %q has a %s hash, which Sigil refuses (only bcrypt is accepted); re-create it with: htpasswd -B %s %s",
				path, n, user, kind, path, user)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("htpasswd %s line %d: user %q: broken bcrypt hash (%v); re-create it with: htpasswd -B %s %s", path, n, user, err, path, user)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	return users, nil
}

func hashKind(h string) string {
	switch {
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		return "bcrypt"
	case strings.HasPrefix(h, "$apr1$"):
		return "MD5 ($apr1$)"
	case strings.HasPrefix(h, "$1$"):
		return "MD5-crypt ($1$)"
	case strings.HasPrefix(h, "{SHA}"):
		return "SHA-1 ({SHA})"
	case strings.HasPrefix(h, "$5$"):
		return "SHA-256-crypt ($5$)"
	case strings.HasPrefix(h, "$6$"):
		return "SHA-512-crypt ($6$)"
	case strings.HasPrefix(h, "$argon2"):
		return "Argon2"
	case len(h) == 13 && !strings.ContainsFunc(h, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '/')
	}):
		return "DES crypt"
	}
	return "plain-text or unknown"
}

// fileStamp identifies a version of a file cheaply: an atomic rename
// changes the inode, an in-place edit the size or the time.
type fileStamp struct {
	ino, size int64
	mtime     time.Time
}

func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = int64(sys.Ino)
	}
	return st, nil
}
