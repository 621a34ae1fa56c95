// Package refindex keeps the registry's reverse indexes of manifests: which
// manifests name a given manifest as their OCI 1.1 subject (the referrers
// API), and which image indexes list a given manifest as a child (so trust
// enforcement can accept the platform manifest of a signed index).
// Distribution's storage has neither: it only knows the forward direction.
//
// The index lives in the registry's storage driver, next to the
// repository's own data, one small file per edge, so replicas sharing
// object storage share it and two pushes never race on one file:
//
//	<root>/docker/registry/v2/repositories/<name>/
//	├── _manifests/ _layers/ _uploads/        (distribution's)
//	└── _sigil/
//	    ├── referrers/<alg>/<subject hex>/<alg>-<referrer hex>   descriptor JSON
//	    └── parents/<alg>/<child hex>/<alg>-<index hex>          descriptor JSON
//
// Distribution walks a repository for its catalog and garbage collection and
// skips directories whose names start with "_", so it never sees these
// files; deleting a repository deletes them with it.
//
// Entries are added when a manifest is pushed and removed when it is
// deleted; `sigil registry gc` rebuilds them from the manifests themselves,
// so a crash between the two writes is repaired there. Readers must still
// check that a listed manifest exists (see List).
package refindex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Kind is one of the two reverse indexes.
type Kind string

const (
	// Referrers maps a subject digest to the manifests whose "subject"
	// field names it.
	Referrers Kind = "referrers"
	// Parents maps a manifest digest to the image indexes (and Docker
	// manifest lists) that list it.
	Parents Kind = "parents"
)

// repositoriesRoot is distribution's layout (registry/storage/paths.go).
const repositoriesRoot = "/docker/registry/v2/repositories"

// Index reads and writes the reverse indexes. It is safe for concurrent
// use; it holds no state besides the driver.
type Index struct {
	driver storagedriver.StorageDriver
}

// New returns an Index over d, the same driver the registry stores into.
func New(d storagedriver.StorageDriver) *Index { return &Index{driver: d} }

func kindDir(repo string, kind Kind) string {
	return path.Join(repositoriesRoot, repo, "_sigil", string(kind))
}

func targetDir(repo string, kind Kind, target digest.Digest) string {
	return path.Join(kindDir(repo, kind), target.Algorithm().String(), target.Encoded())
}

func entryPath(repo string, kind Kind, target, from digest.Digest) string {
	return path.Join(targetDir(repo, kind, target), from.Algorithm().String()+"-"+from.Encoded())
}

func check(kind Kind, target digest.Digest) error {
	if kind != Referrers && kind != Parents {
		return fmt.Errorf("refindex: unknown kind %q", kind)
	}
	if err := target.Validate(); err != nil {
		return fmt.Errorf("refindex: digest %q: %w", target, err)
	}
	return nil
}

// Add records that the manifest described by desc, in repo, points at
// target. Adding an edge again overwrites it (pushes are idempotent).
func (x *Index) Add(ctx context.Context, kind Kind, repo string, target digest.Digest, desc ocispec.Descriptor) error {
	if err := check(kind, target); err != nil {
		return err
	}
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("refindex: descriptor digest %q: %w", desc.Digest, err)
	}
	data, err := json.Marshal(desc)
	if err != nil {
		return err
	}
	p := entryPath(repo, kind, target, desc.Digest)
	if err := x.driver.PutContent(ctx, p, data); err != nil {
		return fmt.Errorf("recording %s of %s in %s: %w", kind, target, repo, err)
	}
	return nil
}

// Remove forgets the edge from -> target. Removing an absent edge is not
// an error: deletes are retried by clients and repeated by gc.
func (x *Index) Remove(ctx context.Context, kind Kind, repo string, target, from digest.Digest) error {
	if err := check(kind, target); err != nil {
		return err
	}
	err := x.driver.Delete(ctx, entryPath(repo, kind, target, from))
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("removing %s %s of %s in %s: %w", kind, from, target, repo, err)
	}
	return nil
}

// List returns the descriptors recorded for target, in digest order. An
// unknown repository or target has none. The manifests may have been
// deleted since (an interrupted delete); callers that serve the list check
// existence.
func (x *Index) List(ctx context.Context, kind Kind, repo string, target digest.Digest) ([]ocispec.Descriptor, error) {
	if err := check(kind, target); err != nil {
		return nil, err
	}
	paths, err := x.driver.List(ctx, targetDir(repo, kind, target))
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s of %s in %s: %w", kind, target, repo, err)
	}
	var out []ocispec.Descriptor
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := x.driver.GetContent(ctx, p)
		if isNotFound(err) {
			continue // removed while listing
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		var d ocispec.Descriptor
		if err := json.Unmarshal(data, &d); err != nil || d.Digest.Validate() != nil {
			// A torn or foreign file: gc rewrites the index; skip it
			// rather than fail every referrers request until then.
			continue
		}
		out = append(out, d)
	}
	// Driver listings come back in no promised order.
	sortDescriptors(out)
	return out, nil
}

// Targets calls fn for every target digest that has entries of kind in
// repo. gc uses it to find stale entries.
func (x *Index) Targets(ctx context.Context, kind Kind, repo string, fn func(target digest.Digest, from []digest.Digest) error) error {
	algs, err := x.driver.List(ctx, kindDir(repo, kind))
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, algDir := range algs {
		targets, err := x.driver.List(ctx, algDir)
		if err != nil && !isNotFound(err) {
			return err
		}
		for _, t := range targets {
			target := digest.NewDigestFromEncoded(digest.Algorithm(path.Base(algDir)), path.Base(t))
			if target.Validate() != nil {
				continue
			}
			entries, err := x.driver.List(ctx, t)
			if err != nil && !isNotFound(err) {
				return err
			}
			var from []digest.Digest
			for _, e := range entries {
				alg, hex, ok := strings.Cut(path.Base(e), "-")
				d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
				if ok && d.Validate() == nil {
					from = append(from, d)
				}
			}
			if err := fn(target, from); err != nil {
				return err
			}
		}
	}
	return nil
}

func isNotFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf)
}

func sortDescriptors(ds []ocispec.Descriptor) {
	slices.SortFunc(ds, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
}
