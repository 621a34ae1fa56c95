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

	mu     sync.Mutex
	grants map[[sha256.Size]byte]cachedGrant
}

type cachedGrant struct {
	grant   dauth.Grant
	expires time.Time
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
	return &cachingAccessController{inner: inner, now: time.Now, grants: map[[sha256.Size]byte]cachedGrant{}}
}

// Authorized implements dauth.AccessController.
func (c *cachingAccessController) Authorized(req *http.Request, access ...dauth.Access) (*dauth.Grant, error) {
	scheme, raw, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || raw == "" {
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
	c.mu.Lock()
	cg, hit := c.grants[key]
	c.mu.Unlock()
	if hit && now.Before(cg.expires) {
		g := cg.grant
		return &g, nil
	}
	g, err := c.inner.Authorized(req, access...)
	if err != nil || g == nil {
		return g, err
	}
	expires := now.Add(verifiedTTL)
	if exp, ok := tokenExpiry(raw); ok && exp.Before(expires) {
		expires = exp
	}
	c.mu.Lock()
	if len(c.grants) >= maxVerified {
		c.grants = map[[sha256.Size]byte]cachedGrant{}
	}
	c.grants[key] = cachedGrant{grant: *g, expires: expires}
	c.mu.Unlock()
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
