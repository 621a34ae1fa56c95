package auth

import (
	"fmt"
	"testing"
)

// Many distinct attackers cannot grow the limiter without bound.
func TestRateLimiterBoundsMemory(t *testing.T) {
	l := NewRateLimiter(RateLimitOptions{MaxEntries: 100})
	for i := range 5000 {
		l.Failed(fmt.Sprintf("u%d", i), fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		if n := len(l.buckets); n > 102 {
			t.Fatalf("after %d failures: %d buckets, want at most MaxEntries (+2 being added)", i+1, n)
		}
	}
}
