package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/registry/config"
	"github.com/sigil-project/sigil/registry/refindex"
	"github.com/sigil-project/sigil/signing/policy"
)

// verdictTTL is how long an acceptance is reused. Signatures can be
// deleted at any time; half a minute bounds how long a pull may see the
// old answer while sparing a policy evaluation (signature reads and
// checks) on every manifest request of a busy image. Refusals are never
// reused: an image signed a second ago must pull now.
const verdictTTL = 30 * time.Second

// maxParents bounds the image indexes tried for a refused platform
// manifest.
const maxParents = 16

// enforcer judges manifest pulls in the repositories it covers.
type enforcer struct {
	patterns     config.Patterns
	judge        ImageJudge
	registryName string
	index        *refindex.Index
	ns           distribution.Namespace

	mu       sync.Mutex
	verdicts map[string]verdict
}

type verdict struct {
	repo    string
	expires time.Time
}

func newEnforcer(patterns config.Patterns, judge ImageJudge, registryName string, index *refindex.Index, ns distribution.Namespace) *enforcer {
	return &enforcer{
		patterns:     patterns,
		judge:        judge,
		registryName: registryName,
		index:        index,
		ns:           ns,
		verdicts:     map[string]verdict{},
	}
}

func (e *enforcer) covers(repo string) bool { return e.patterns.Match(repo) }

// check decides whether the manifest d (media type mt; payload when the
// caller has it, else read from storage) of repo, asked for as reference,
// may be served. It returns nil, a *policy.RejectedError, or another error
// when the policy could not be evaluated.
//
// What is judged: runnable images (an image config and filesystem layers,
// or no layers at all) and image indexes. Everything else (cosign
// signatures and attestations, SBOMs, other OCI artifacts) is served: it
// cannot be run, and clients need it to verify. A "subject" field or a
// signature-like tag exempts nothing, since anyone may push one.
func (e *enforcer) check(ctx context.Context, repo, ref string, d digest.Digest, mt string, payload []byte) error {
	if d.Validate() != nil {
		return fmt.Errorf("distribution answered without a valid Docker-Content-Digest (%q)", d)
	}
	if payload == nil {
		var err error
		if mt, payload, err = readManifest(ctx, e.ns, repo, d); err != nil {
			return err
		}
	}
	m, err := refindex.ParseManifest(payload, mt)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	if !judged(m) {
		return nil
	}
	name := e.registryName + "/" + repo
	if _, err := digest.Parse(ref); err != nil && ref != "" {
		name += ":" + ref // judge under the tag asked for: signed identities name it
	} else {
		name += "@" + d.String()
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: d, Size: int64(len(payload))}
	err = e.verify(ctx, repo, name, desc)
	var rej *policy.RejectedError
	if !errors.As(err, &rej) || m.IsIndex() {
		return err
	}
	// A platform manifest is covered by a signature on an index that lists
	// it: the index's digest pins the child's.
	parents, perr := e.index.List(ctx, refindex.Parents, repo, d)
	if perr != nil {
		return errors.Join(err, perr)
	}
	for i, p := range parents {
		if i == maxParents {
			break
		}
		if exists, _ := e.exists(ctx, repo, p.Digest); !exists {
			continue
		}
		pname := e.registryName + "/" + repo + "@" + p.Digest.String()
		if e.verify(ctx, repo, pname, ocispec.Descriptor{MediaType: p.MediaType, Digest: p.Digest, Size: p.Size}) == nil {
			return nil
		}
	}
	return err
}

// judged reports whether the policy decides about m.
func judged(m *refindex.Manifest) bool {
	if m.IsIndex() {
		if m.ArtifactType != "" || m.Subject != nil {
			return false // an artifact index; its children are judged on their own
		}
		for _, c := range m.Manifests {
			if c.ArtifactType == "" {
				return true
			}
		}
		return false
	}
	if m.Config == nil {
		return false
	}
	switch m.Config.MediaType {
	case ocispec.MediaTypeImageConfig, schema2.MediaTypeImageConfig:
	default:
		return false // an OCI artifact: no runtime runs it
	}
	if len(m.Layers) == 0 {
		return true
	}
	for _, l := range m.Layers {
		if isFilesystemLayer(l.MediaType) {
			return true
		}
	}
	return false // e.g. a cosign signature: simple-signing payload layers
}

func isFilesystemLayer(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		// Non-distributable layers are deprecated for new images, but
		// runtimes still run the images that have them.
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		schema2.MediaTypeLayer, schema2.MediaTypeForeignLayer, schema2.MediaTypeUncompressedLayer:
		return true
	}
	return false
}

// verify asks the judge, through the cache of acceptances.
func (e *enforcer) verify(ctx context.Context, repo, name string, desc ocispec.Descriptor) error {
	key := name + "|" + desc.Digest.String()
	now := time.Now()
	e.mu.Lock()
	v, ok := e.verdicts[key]
	e.mu.Unlock()
	if ok && now.Before(v.expires) {
		return nil
	}
	err := e.judge.VerifyImage(ctx, name, desc)
	if err == nil {
		e.mu.Lock()
		if len(e.verdicts) >= 10000 {
			e.verdicts = map[string]verdict{} // bounded; refilled as pulls come
		}
		e.verdicts[key] = verdict{repo: repo, expires: now.Add(verdictTTL)}
		e.mu.Unlock()
	}
	return err
}

// forget drops the acceptances of repo's images, when a manifest (perhaps
// a signature) is deleted there. Other replicas keep theirs until they
// expire.
func (e *enforcer) forget(repo string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range e.verdicts {
		if v.repo == repo {
			delete(e.verdicts, k)
		}
	}
}

func (e *enforcer) exists(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	ms, err := manifestService(ctx, e.ns, repo)
	if err != nil {
		return false, err
	}
	return ms.Exists(ctx, d)
}
