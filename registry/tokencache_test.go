package registry

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	dauth "github.com/distribution/distribution/v3/registry/auth"
)

// countingController grants every token but "bad", counting its checks.
type countingController struct{ calls int }

func (c *countingController) Authorized(req *http.Request, _ ...dauth.Access) (*dauth.Grant, error) {
	c.calls++
	if req.Header.Get("Authorization") == "Bearer "+jwt(0, "bad") {
		return nil, errors.New("invalid token")
	}
	return &dauth.Grant{User: dauth.UserInfo{Name: "alice"}}, nil
}

// jwt is a token-shaped string with exp (0: none) and a marker.
func jwt(exp int64, marker string) string {
	payload := fmt.Sprintf(`{"sub":%q}`, marker)
	if exp != 0 {
		payload = fmt.Sprintf(`{"sub":%q,"exp":%d}`, marker, exp)
	}
	return "e30." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
}

func TestCachingAccessController(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	inner := &countingController{}
	c := newCachingAccessController(inner)
	c.now = func() time.Time { return now }
	pull := dauth.Access{Resource: dauth.Resource{Type: "repository", Name: "a"}, Action: "pull"}
	push := dauth.Access{Resource: dauth.Resource{Type: "repository", Name: "a"}, Action: "push"}
	ask := func(token string, access ...dauth.Access) error {
		req, _ := http.NewRequest(http.MethodGet, "/v2/", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		_, err := c.Authorized(req, access...)
		return err
	}
	tok := jwt(now.Add(5*time.Minute).Unix(), "a")
	short := jwt(now.Add(63*time.Second).Unix(), "short")
	steps := []struct {
		name      string
		token     string
		access    []dauth.Access
		advance   time.Duration
		wantCalls int
		wantErr   bool
	}{
		{"first check", tok, []dauth.Access{pull}, 0, 1, false},
		{"same token and access: cached", tok, []dauth.Access{pull}, 0, 1, false},
		{"other access: checked", tok, []dauth.Access{push}, 0, 2, false},
		{"no token: always checked", "", nil, 0, 3, false},
		{"failure", jwt(0, "bad"), nil, 0, 4, true},
		{"failure not cached", jwt(0, "bad"), nil, 0, 5, true},
		{"cache lasts at most a minute", tok, []dauth.Access{pull}, 61 * time.Second, 6, false},
		{"token expired: checked again", short, nil, 0, 7, false},
		{"short token cached until its exp", short, nil, time.Second, 7, false},
		{"then checked", short, nil, 2 * time.Second, 8, false},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		err := ask(s.token, s.access...)
		if (err != nil) != s.wantErr || inner.calls != s.wantCalls {
			t.Errorf("%s: err %v, inner checks %d; want error %v, %d checks", s.name, err, inner.calls, s.wantErr, s.wantCalls)
		}
	}
}
