package registry_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/registry/audit"
	"github.com/sigil-project/sigil/runtime/remote"
	"github.com/sigil-project/sigil/signing"
)

// basicKeychain hands the same credentials to every registry.
type basicKeychain struct{ user string }

func (k basicKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: password(k.user)}, nil
}

func newSigner(t *testing.T) (*signing.KeySigner, []byte) {
	t.Helper()
	priv, pub, err := signing.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.LoadKeySigner(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	return s, pub
}

// sign signs repo@d in the registry as user, the way `sigil sign` does.
func (e *env) sign(user, repo string, d digest.Digest, s *signing.KeySigner, referrer bool) {
	e.t.Helper()
	ctx := context.Background()
	c := remote.NewClient(remote.WithKeychain(basicKeychain{user}))
	r, err := c.Repository(ctx, remote.Endpoint{Registry: e.host, Repository: repo, Insecure: true}, "pull", "push")
	if err != nil {
		e.t.Fatal(err)
	}
	desc, _, err := r.Resolve(ctx, d.String())
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := signing.Sign(ctx, r, e.host+"/"+repo, desc, s, signing.SignOptions{Referrer: referrer}); err != nil {
		e.t.Fatalf("signing %s@%s: %v", repo, d, err)
	}
}

// TestEnforcementSignatures: in an enforced repository an unsigned image
// cannot be pulled, one signed by the trusted key (cosign tag scheme or
// sigstore bundle referrer) can, one signed by another key cannot.
func TestEnforcementSignatures(t *testing.T) {
	t.Parallel()
	trusted, pub := newSigner(t)
	other, _ := newSigner(t)
	policy := func(host string) string {
		return fmt.Sprintf(`{"default":[{"type":"reject"}],"transports":{"docker":{%q:[
			{"type":"sigstoreSigned","keyData":%q,"signedIdentity":{"type":"matchRepository"}}]}}}`,
			host+"/team-a", base64.StdEncoding.EncodeToString(pub))
	}
	e := newEnv(t, envOptions{policy: policy, enforce: []string{"team-a/**"}})

	tests := []struct {
		repo     string
		signer   *signing.KeySigner
		referrer bool
		want     int
		reason   string
	}{
		{"team-a/unsigned", nil, false, http.StatusForbidden, "SIGNATURE_MISSING"},
		{"team-a/tag-signed", trusted, false, http.StatusOK, ""},
		{"team-a/bundle-signed", trusted, true, http.StatusOK, ""},
		{"team-a/other-key", other, false, http.StatusForbidden, "KEY_UNTRUSTED"},
	}
	for _, tt := range tests {
		d := e.mustPush(alice, tt.repo+":1", randomImage(t))
		if tt.signer != nil {
			e.sign(alice, tt.repo, d, tt.signer, tt.referrer)
		}
		c := e.client(alice, "repository:"+tt.repo+":pull")
		for _, ref := range []string{"1", d.String()} {
			resp, body := do(t, c, http.MethodGet, e.url+"/v2/"+tt.repo+"/manifests/"+ref, nil, "Accept", manifestAccept)
			if resp.StatusCode != tt.want {
				t.Errorf("GET %s:%s: status %d, want %d: %s", tt.repo, ref, resp.StatusCode, tt.want, body)
				continue
			}
			if tt.reason != "" {
				code, msg := ociError(t, body)
				if code != "DENIED" || !strings.HasPrefix(msg, tt.reason+": ") {
					t.Errorf("GET %s:%s: %s %q, want DENIED %s: ...", tt.repo, ref, code, msg, tt.reason)
				}
			}
		}
		if tt.reason != "" {
			e.wantAudit(audit.Event{User: alice, Action: audit.Denied, Repository: tt.repo, Digest: d.String(), Reason: tt.reason})
		} else {
			e.wantAudit(audit.Event{User: alice, Action: audit.Pull, Repository: tt.repo, Digest: d.String(), Outcome: audit.Success})
		}
	}
	// The signatures themselves are readable where the image is refused.
	c := e.client(alice, "repository:team-a/other-key:pull")
	resp, _ := do(t, c, http.MethodGet, e.url+"/v2/team-a/other-key/tags/list", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("tags/list: %d", resp.StatusCode)
	}
	_ = ocispec.MediaTypeImageManifest
}
