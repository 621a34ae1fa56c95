package registry

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	dauth "github.com/distribution/distribution/v3/registry/auth"
)

// Distribution checks the bearer token of every request: an ECDSA
// signature, its certificate and its claims, about a tenth of the CPU a
// small blob request costs. A client sends the same token for minutes, so
// the grant is remembered per token and access set until the token
// expires (at most verifiedTTL). Nothing is weakened: a token cannot be
// revoked before it expires in any case, a different token or access set
// misses the cache, and a failure is never remembered.

// verifiedTTL caps how long a verified grant is reused.
const verifiedTTL = time.Minute

// maxVerified bounds the cache; when full it is emptied.
const maxVerified = 10000

// cachingAccessController remembers the grants of another access
// controller (distribution's "token" one).
type cachingAccessController struct {
	inner dauth.AccessController
	now   func() time.Time

	grants verifiedCache[dauth.Grant]
}

// verifiedCache remembers what was learnt from verifying a token (a
// grant, a caller), keyed by a SHA-256 of the token and what it was asked,
// until an expiry. The zero value is ready; when it holds maxVerified
// entries it is emptied.
type verifiedCache[V any] struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]verified[V]
}

type verified[V any] struct {
	value   V
	expires time.Time
}

// get returns the value stored under key if it has not expired at now.
func (c *verifiedCache[V]) get(key [sha256.Size]byte, now time.Time) (V, bool) {
	c.mu.Lock()
	e, hit := c.m[key]
	c.mu.Unlock()
	if !hit || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// put stores v under key until the earlier of now+verifiedTTL and
// notAfter (when not zero).
func (c *verifiedCache[V]) put(key [sha256.Size]byte, v V, now, notAfter time.Time) {
	expires := now.Add(verifiedTTL)
	if !notAfter.IsZero() && notAfter.Before(expires) {
		expires = notAfter
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = map[[sha256.Size]byte]verified[V]{}
	}
	c.m[key] = verified[V]{value: v, expires: expires}
	c.mu.Unlock()
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(req *http.Request) (string, bool) {
	scheme, raw, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || raw == "" {
		return "", false
	}
	return raw, true
}

// cachingControllerName is the name the cached controller is registered
// under in distribution's registry of access controllers. The instance
// travels in the options map: distribution's registry is process-wide, the
// cache is per Registry.
const cachingControllerName = "sigil-cached-token"

const cacheOption = "sigil.cache"

func init() {
	// Distribution finds access controllers by name only.
	_ = dauth.Register(cachingControllerName, func(options map[string]any) (dauth.AccessController, error) {
		c, _ := options[cacheOption].(*cachingAccessController)
		if c == nil {
			return nil, errors.New(cachingControllerName + ": no controller in the options")
		}
		return c, nil
	})
}

func newCachingAccessController(inner dauth.AccessController) *cachingAccessController {
	return &cachingAccessController{inner: inner, now: time.Now}
}

// Authorized implements dauth.AccessController.
func (c *cachingAccessController) Authorized(req *http.Request, access ...dauth.Access) (*dauth.Grant, error) {
	raw, ok := bearerToken(req)
	if !ok {
		return c.inner.Authorized(req, access...)
	}
	h := sha256.New()
	h.Write([]byte(raw))
	for _, a := range access {
		h.Write([]byte{0})
		h.Write([]byte(a.Type + ":" + a.Class + ":" + a.Name + ":" + a.Action))
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	now := c.now()
	if g, hit := c.grants.get(key, now); hit {
		return &g, nil
	}
	g, err := c.inner.Authorized(req, access...)
	if err != nil || g == nil {
		return g, err
	}
	exp, _ := tokenExpiry(raw)
	c.grants.put(key, *g, now, exp)
	return g, nil
}

// tokenExpiry reads the "exp" claim of a JWT the inner controller has just
// verified.
func tokenExpiry(raw string) (time.Time, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == 0 {
		return time.Time{}, false
	}
	return time.Unix(claims.Exp, 0), true
}
