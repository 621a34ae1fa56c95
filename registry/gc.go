package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/registry/config"
	"github.com/sigil-project/sigil/registry/refindex"
)

// GCOptions configure GarbageCollect.
type GCOptions struct {
	// DryRun reports what would be removed and changes nothing.
	DryRun bool
	// DeleteUntagged also removes manifests no tag reaches, except those
	// a kept manifest still needs: the platform manifests of a kept index
	// and the referrers (signatures, attestations, SBOMs) of a kept
	// manifest, transitively. Without it every manifest is kept, as
	// distribution's garbage-collect does by default.
	DeleteUntagged bool
}

// GCReport says what GarbageCollect found and did (or would do).
type GCReport struct {
	Repositories     int
	Manifests        int
	ManifestsKept    int
	BlobsKept        int
	DeletedManifests []RepoDigest
	DeletedBlobs     []digest.Digest
	DeletedLinks     []RepoDigest // a repository's link to a blob it no longer uses
	IndexAdded       int          // referrers/parents entries written
	IndexRemoved     int          // stale entries dropped
}

// RepoDigest names a manifest or blob link in a repository.
type RepoDigest struct {
	Repository string
	Digest     digest.Digest
}

// GarbageCollect removes the blobs no manifest uses, like distribution's
// MarkAndSweep, and never one that a kept manifest, signature or referrer
// still uses; then it rebuilds the referrers and parents indexes from the
// manifests that remain.
//
// Like distribution's, it must not run while clients push: stop the
// registry, or put every replica in read-only mode (storage.maintenance:
// {readonly: {enabled: true}}) for the duration.
func GarbageCollect(ctx context.Context, cfg *config.Config, opts GCOptions) (*GCReport, error) {
	d, err := newDriver(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ns, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return collectGarbage(ctx, d, ns, opts)
}

// gcRepo is what the mark phase learned of one repository.
type gcRepo struct {
	name      string
	repo      distribution.Repository
	manifests map[digest.Digest]*gcManifest
	tags      map[digest.Digest][]string // digest -> tags pointing at it now
	allTags   []string
	referrers map[digest.Digest][]digest.Digest // subject -> manifests naming it
}

type gcManifest struct {
	refs   []digest.Digest // config, layers, index children
	parsed *refindex.Manifest
	size   int64
}

func collectGarbage(ctx context.Context, d storagedriver.StorageDriver, ns distribution.Namespace, opts GCOptions) (*GCReport, error) {
	enum, ok := ns.(distribution.RepositoryEnumerator)
	if !ok {
		return nil, errors.New("storage cannot enumerate repositories")
	}
	rep := &GCReport{}
	var repos []*gcRepo
	err := enum.Enumerate(ctx, func(name string) error {
		r, err := readRepo(ctx, ns, name)
		if err != nil {
			return fmt.Errorf("repository %s: %w", name, err)
		}
		repos = append(repos, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading repositories: %w", err)
	}

	// Mark.
	marked := map[digest.Digest]bool{}
	live := map[*gcRepo]map[digest.Digest]bool{}
	byName := make(map[string]*gcRepo, len(repos))
	for _, r := range repos {
		byName[r.name] = r
		rep.Repositories++
		rep.Manifests += len(r.manifests)
		keep := r.liveManifests(opts.DeleteUntagged)
		live[r] = keep
		for dg := range keep {
			marked[dg] = true
			for _, ref := range r.manifests[dg].refs {
				marked[ref] = true
			}
		}
		rep.ManifestsKept += len(keep)
		for dg := range r.manifests {
			if !keep[dg] {
				rep.DeletedManifests = append(rep.DeletedManifests, RepoDigest{r.name, dg})
			}
		}
	}

	// Sweep: manifests, then repository links, then blobs.
	vacuum := storage.NewVacuum(ctx, d)
	for _, m := range rep.DeletedManifests {
		if opts.DryRun {
			continue
		}
		if err := vacuum.RemoveManifest(m.Repository, m.Digest, byName[m.Repository].allTags); err != nil {
			return rep, fmt.Errorf("deleting manifest %s@%s: %w", m.Repository, m.Digest, err)
		}
	}
	for _, r := range repos {
		links, ok := r.repo.Blobs(ctx).(distribution.ManifestEnumerator)
		if !ok {
			return rep, errors.New("storage cannot enumerate a repository's blob links")
		}
		err := links.Enumerate(ctx, func(dg digest.Digest) error {
			if !marked[dg] {
				rep.DeletedLinks = append(rep.DeletedLinks, RepoDigest{r.name, dg})
			}
			return nil
		})
		if err != nil && !isPathNotFound(err) {
			return rep, fmt.Errorf("listing blob links of %s: %w", r.name, err)
		}
	}
	for _, l := range rep.DeletedLinks {
		if opts.DryRun {
			continue
		}
		if err := vacuum.RemoveLayer(l.Repository, l.Digest); err != nil && !isPathNotFound(err) {
			return rep, fmt.Errorf("deleting blob link %s@%s: %w", l.Repository, l.Digest, err)
		}
	}
	err = ns.Blobs().Enumerate(ctx, func(dg digest.Digest) error {
		if marked[dg] {
			rep.BlobsKept++
		} else {
			rep.DeletedBlobs = append(rep.DeletedBlobs, dg)
		}
		return nil
	})
	if err != nil && !isPathNotFound(err) {
		return rep, fmt.Errorf("listing blobs: %w", err)
	}
	for _, b := range rep.DeletedBlobs {
		if opts.DryRun {
			continue
		}
		if err := vacuum.RemoveBlob(b.String()); err != nil && !isPathNotFound(err) {
			return rep, fmt.Errorf("deleting blob %s: %w", b, err)
		}
	}

	// Rebuild the indexes from the manifests that remain.
	index := refindex.New(d)
	for _, r := range repos {
		added, removed, err := r.rebuildIndex(ctx, index, live[r], opts.DryRun)
		rep.IndexAdded += added
		rep.IndexRemoved += removed
		if err != nil {
			return rep, fmt.Errorf("rebuilding the referrers index of %s: %w", r.name, err)
		}
	}
	return rep, nil
}

func readRepo(ctx context.Context, ns distribution.Namespace, name string) (*gcRepo, error) {
	named, err := reference.WithName(name)
	if err != nil {
		return nil, err
	}
	repo, err := ns.Repository(ctx, named)
	if err != nil {
		return nil, err
	}
	r := &gcRepo{
		name:      name,
		repo:      repo,
		manifests: map[digest.Digest]*gcManifest{},
		tags:      map[digest.Digest][]string{},
		referrers: map[digest.Digest][]digest.Digest{},
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	me, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return nil, errors.New("storage cannot enumerate manifests")
	}
	err = me.Enumerate(ctx, func(dg digest.Digest) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := ms.Get(ctx, dg)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", dg, err)
		}
		mt, payload, err := m.Payload()
		if err != nil {
			return fmt.Errorf("manifest %s: %w", dg, err)
		}
		gm := &gcManifest{size: int64(len(payload))}
		for _, desc := range m.References() {
			gm.refs = append(gm.refs, desc.Digest)
		}
		if gm.parsed, err = refindex.ParseManifest(payload, mt); err != nil {
			return fmt.Errorf("manifest %s: %w", dg, err)
		}
		if s := gm.parsed.Subject; s != nil && s.Digest.Validate() == nil {
			r.referrers[s.Digest] = append(r.referrers[s.Digest], dg)
		}
		r.manifests[dg] = gm
		return nil
	})
	if err != nil && !isPathNotFound(err) {
		return nil, err
	}
	tags := repo.Tags(ctx)
	r.allTags, err = tags.All(ctx)
	var unknown distribution.ErrRepositoryUnknown
	if err != nil && !errors.As(err, &unknown) && !isPathNotFound(err) {
		return nil, fmt.Errorf("listing tags: %w", err)
	}
	for _, t := range r.allTags {
		desc, err := tags.Get(ctx, t)
		if err != nil {
			var tu distribution.ErrTagUnknown
			if errors.As(err, &tu) || isPathNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("tag %s: %w", t, err)
		}
		r.tags[desc.Digest] = append(r.tags[desc.Digest], t)
	}
	return r, nil
}

// liveManifests is the set of manifests to keep: all, or those reachable
// from a tag through index children and referrers.
func (r *gcRepo) liveManifests(deleteUntagged bool) map[digest.Digest]bool {
	keep := map[digest.Digest]bool{}
	if !deleteUntagged {
		for dg := range r.manifests {
			keep[dg] = true
		}
		return keep
	}
	var queue []digest.Digest
	for dg := range r.tags {
		queue = append(queue, dg)
	}
	for len(queue) > 0 {
		dg := queue[0]
		queue = queue[1:]
		m, ok := r.manifests[dg]
		if !ok || keep[dg] {
			continue
		}
		keep[dg] = true
		// A child of an index is a manifest of this repository too.
		for _, ref := range m.refs {
			if _, isManifest := r.manifests[ref]; isManifest {
				queue = append(queue, ref)
			}
		}
		// Whatever refers to a kept manifest is kept: its signatures,
		// attestations, SBOMs, and what refers to those.
		queue = append(queue, r.referrers[dg]...)
	}
	return keep
}

// rebuildIndex makes the repository's referrers and parents entries match
// the kept manifests exactly.
func (r *gcRepo) rebuildIndex(ctx context.Context, index *refindex.Index, keep map[digest.Digest]bool, dryRun bool) (added, removed int, err error) {
	type edge struct{ target, from digest.Digest }
	want := map[refindex.Kind]map[edge]ocispec.Descriptor{refindex.Referrers: {}, refindex.Parents: {}}
	for dg := range keep {
		m := r.manifests[dg]
		desc := m.parsed.Descriptor(dg, m.size)
		for kind, target := range m.parsed.Edges() {
			want[kind][edge{target, dg}] = desc
		}
	}
	for _, kind := range []refindex.Kind{refindex.Referrers, refindex.Parents} {
		have := map[edge]bool{}
		err := index.Targets(ctx, kind, r.name, func(target digest.Digest, from []digest.Digest) error {
			for _, f := range from {
				e := edge{target, f}
				have[e] = true
				if _, ok := want[kind][e]; ok {
					continue
				}
				removed++
				if !dryRun {
					if err := index.Remove(ctx, kind, r.name, target, f); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return added, removed, err
		}
		edges := make([]edge, 0, len(want[kind]))
		for e := range want[kind] {
			edges = append(edges, e)
		}
		slices.SortFunc(edges, func(a, b edge) int {
			return cmp.Or(cmp.Compare(a.target, b.target), cmp.Compare(a.from, b.from))
		})
		for _, e := range edges {
			if have[e] {
				continue
			}
			added++
			if !dryRun {
				if err := index.Add(ctx, kind, r.name, e.target, want[kind][e]); err != nil {
					return added, removed, err
				}
			}
		}
	}
	return added, removed, nil
}

func isPathNotFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf)
}
