package auth

import (
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"time"
)

// Limit is a token bucket of failed logins: Burst failures are allowed at
// once, and one more every Every.
type Limit struct {
	Burst int
	Every time.Duration
}

// RateLimitOptions configure a RateLimiter; zero fields take the defaults.
type RateLimitOptions struct {
	// PerUser limits failures against one user name, whatever the address.
	// Default 10 at once, then one per 30s. It is what stops a slow
	// distributed guesser; the price is that an attacker can make a user
	// wait, so it stays generous.
	PerUser Limit
	// PerAddress limits failures from one client address (IPv6 addresses
	// count per /64, which is what one host usually gets). Default 30 at
	// once, then one per 10s.
	PerAddress Limit
	// MaxEntries bounds memory: buckets that have refilled are dropped
	// first; past this many, arbitrary ones are. Default 100000.
	MaxEntries int
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

// RateLimiter counts failed logins per user name and per client address,
// and refuses further attempts, without asking any backend, while either
// bucket is empty. Successful logins do not count; a success empties the
// user's record (not the address's). It is safe for concurrent use.
type RateLimiter struct {
	user, addr Limit
	max        int
	now        func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	ops     int
}

type bucket struct {
	tokens float64
	at     time.Time
	limit  *Limit
}

// RateLimitError is returned when a login is refused for too many failures.
type RateLimitError struct {
	// Subject is what was limited: `user "alice"` or `address 192.0.2.7`.
	Subject string
	// RetryAfter is when the next attempt will be considered.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("too many failed logins for %s: try again in %s", e.Subject, e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// NewRateLimiter returns a limiter with opts, defaults filled in.
func NewRateLimiter(opts RateLimitOptions) *RateLimiter {
	if opts.PerUser.Burst <= 0 {
		opts.PerUser.Burst = 10
	}
	if opts.PerUser.Every <= 0 {
		opts.PerUser.Every = 30 * time.Second
	}
	if opts.PerAddress.Burst <= 0 {
		opts.PerAddress.Burst = 30
	}
	if opts.PerAddress.Every <= 0 {
		opts.PerAddress.Every = 10 * time.Second
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 100000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &RateLimiter{
		user: opts.PerUser, addr: opts.PerAddress, max: opts.MaxEntries, now: opts.Now,
		buckets: make(map[string]*bucket),
	}
}

// Check returns a *RateLimitError if user or addr has no attempts left.
// An empty user or addr is not checked.
func (l *RateLimiter) Check(user, addr string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range l.keys(user, addr) {
		b, ok := l.buckets[k.key]
		if !ok {
			continue
		}
		b.refill(now)
		if b.tokens < 1 {
			wait := time.Duration(math.Ceil((1 - b.tokens) * float64(b.limit.Every)))
			return &RateLimitError{Subject: k.subject, RetryAfter: max(wait, time.Second)}
		}
	}
	return nil
}

// Failed records a failed login for user and addr.
func (l *RateLimiter) Failed(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range l.keys(user, addr) {
		b, ok := l.buckets[k.key]
		if !ok {
			b = &bucket{tokens: float64(k.limit.Burst), at: now, limit: k.limit}
			l.buckets[k.key] = b
		}
		b.refill(now)
		b.tokens = max(b.tokens-1, 0)
	}
	l.ops++
	if l.ops%1024 == 0 || len(l.buckets) > l.max {
		l.sweep(now)
	}
}

// Succeeded forgets the failures of user: who knows the password should
// not stay one typo away from a wait.
func (l *RateLimiter) Succeeded(user string) {
	if user == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.buckets, userKey(user))
}

type limitKey struct {
	key, subject string
	limit        *Limit
}

func (l *RateLimiter) keys(user, addr string) []limitKey {
	var ks []limitKey
	if user != "" {
		ks = append(ks, limitKey{userKey(user), fmt.Sprintf("user %q", user), &l.user})
	}
	if addr != "" {
		a := addressKey(addr)
		ks = append(ks, limitKey{"a:" + a, "address " + a, &l.addr})
	}
	return ks
}

// userKey folds case and runs of spaces, as directories do when they
// match user names: "Alice" and "alice", "jo  ann" and "jo ann" are one
// account to guess at.
func userKey(user string) string {
	return "u:" + strings.ToLower(strings.Join(strings.Fields(user), " "))
}

// addressKey reduces an address to what one client controls: the IP
// without port, IPv6 to its /64.
func addressKey(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

func (b *bucket) refill(now time.Time) {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(float64(b.limit.Burst), b.tokens+float64(el)/float64(b.limit.Every))
	}
	b.at = now
}

func (l *RateLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		b.refill(now)
		if b.tokens >= float64(b.limit.Burst) {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) <= l.max {
			break
		}
		delete(l.buckets, k)
	}
}
