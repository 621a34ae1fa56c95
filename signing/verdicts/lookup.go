package verdicts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/sigil-project/sigil/signing/policy"
)

// ErrNotCached is Lookup's answer when the cache holds no acceptance for
// the image: only a full verification can judge it.
var ErrNotCached = errors.New("no cached verdict for this image and key material")

// Lookup is a policy.SignatureVerifier that answers from a Cache alone,
// never reading a signature: an acceptance recorded under the same policy
// file, name, digest and key material, else ErrNotCached.
type Lookup struct {
	Cache    *Cache
	ReadFile ReadFileFunc     // default os.ReadFile
	Now      func() time.Time // default time.Now
}

var _ policy.SignatureVerifier = (*Lookup)(nil)

// VerifySigstore implements policy.SignatureVerifier.
func (l *Lookup) VerifySigstore(_ context.Context, ref string, d digest.Digest, req *policy.SigstoreSigned) (*policy.Signer, error) {
	read, now := l.ReadFile, l.Now
	if read == nil {
		read = os.ReadFile
	}
	if now == nil {
		now = time.Now
	}
	fp, err := Fingerprint(req, read)
	if err != nil {
		return nil, fmt.Errorf("loading the trust material of the sigstoreSigned requirement: %w", err)
	}
	s, _, ok := l.Cache.Get(ref, d, fp, now())
	if !ok {
		return nil, ErrNotCached
	}
	return s, nil
}
