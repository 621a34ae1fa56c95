package auth_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sigil-project/sigil/auth"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func TestRateLimiter(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := auth.NewRateLimiter(auth.RateLimitOptions{
		PerUser:    auth.Limit{Burst: 3, Every: time.Minute},
		PerAddress: auth.Limit{Burst: 5, Every: 10 * time.Second},
		Now:        clock.Now,
	})
	check := func(user, addr string, wantLimited bool, wantWait time.Duration) {
		t.Helper()
		err := l.Check(user, addr)
		var rl *auth.RateLimitError
		switch {
		case !wantLimited && err != nil:
			t.Errorf("Check(%q, %q) = %v, want allowed", user, addr, err)
		case wantLimited && (!errors.Is(err, auth.ErrRateLimited) || !errors.As(err, &rl)):
			t.Errorf("Check(%q, %q) = %v, want limited", user, addr, err)
		case wantLimited && wantWait != 0 && rl.RetryAfter != wantWait:
			t.Errorf("Check(%q, %q) RetryAfter = %s, want %s", user, addr, rl.RetryAfter, wantWait)
		}
	}

	// Per user, whatever the address.
	for i := range 3 {
		check("alice", fmt.Sprintf("192.0.2.%d", i), false, 0)
		l.Failed("alice", fmt.Sprintf("192.0.2.%d", i))
	}
	check("alice", "198.51.100.1", true, time.Minute)
	check("ALICE", "198.51.100.1", true, 0) // one account, whatever the case
	check("bob", "198.51.100.1", false, 0)
	clock.Advance(30 * time.Second)
	check("alice", "198.51.100.1", true, 30*time.Second)
	clock.Advance(30 * time.Second)
	check("alice", "198.51.100.1", false, 0)

	// A success forgets the user's failures.
	l.Failed("alice", "")
	check("alice", "", true, 0)
	l.Succeeded("alice")
	check("alice", "", false, 0)

	// Per address, whatever the user; IPv6 per /64, ports ignored.
	for i := range 5 {
		l.Failed(fmt.Sprintf("user%d", i), fmt.Sprintf("[2001:db8:1:2::%d]:5000", i))
	}
	check("someone", "2001:db8:1:2:ffff::1", true, 10*time.Second)
	check("someone", "2001:db8:1:3::1", false, 0)
	check("someone", "192.0.2.200", false, 0)
	check("", "", false, 0)
	clock.Advance(10 * time.Second)
	check("someone", "2001:db8:1:2::9", false, 0)
}
