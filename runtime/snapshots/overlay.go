// Package snapshots keeps unpacked layers as overlayfs lower directories,
// one per layer, keyed by the layer's chain ID, so every image that shares
// a layer stack shares its files on disk; and it prepares the writable
// upper directory a container runs on.
//
// Lifecycle: Unpack fills a committed snapshot once (concurrent callers
// wait for the first and then reuse its result); Prepare creates an active
// snapshot (upper + work dirs) over a chain of committed ones and returns
// the overlay mount; View creates a read-only one (no upper directory: an
// image mounted as a volume); Remove deletes either; Delete removes a
// committed one, which gc does only when no image and no active snapshot
// uses it.
//
// On disk:
//
//	snapshots/
//	├── committed/<chain-id hex>/
//	│   ├── fs/             the layer's own files, OCI whiteouts already
//	│   │                   converted to overlayfs form (0/0 char devices,
//	│   │                   trusted.overlay.opaque)
//	│   └── diffid          the layer's uncompressed digest
//	├── active/<key>/
//	│   ├── upper/  work/   the container's writable layer (not in a view)
//	│   ├── empty/          a view's bottom layer, empty (a view of one layer)
//	│   └── parents.json    the chain IDs below it, bottom first
//	├── tmp/                unpacks in progress; renamed into committed/
//	└── locks/
package snapshots

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/sigil-project/sigil/runtime/lockfile"
	"github.com/sigil-project/sigil/runtime/mount"
)

// Snapshotter manages committed and active snapshots under one root.
type Snapshotter struct{ root string }

// New opens (creating if needed) the snapshot root.
func New(root string) (*Snapshotter, error) {
	for _, d := range []string{"committed", "active", "tmp", "locks"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("snapshot root %s: %w", root, err)
		}
	}
	return &Snapshotter{root: root}, nil
}

func (s *Snapshotter) committedDir(chainID digest.Digest) string {
	return filepath.Join(s.root, "committed", chainID.Encoded())
}

// lock takes the lock of the layer whose chain ID is hex: Unpack and
// Delete hold it while they change committed/<hex>, and CleanTmp while it
// removes what they left in tmp/.
func (s *Snapshotter) lock(ctx context.Context, hex string) (unlock func(), err error) {
	return lockfile.Lock(ctx, filepath.Join(s.root, "locks", hex+".lock"))
}

// Has reports whether the snapshot for chainID is committed.
func (s *Snapshotter) Has(chainID digest.Digest) bool {
	_, err := os.Stat(filepath.Join(s.committedDir(chainID), "fs"))
	return err == nil
}

// ApplyFunc writes one layer's files into an empty directory and returns
// the layer's diff ID.
type ApplyFunc func(ctx context.Context, dir string) (digest.Digest, error)

// Unpack commits the snapshot chainID by calling apply on a fresh
// directory, unless it is already committed. The result is renamed into
// place only when apply succeeds, so a killed unpack leaves nothing a later
// reader could mistake for a layer.
func (s *Snapshotter) Unpack(ctx context.Context, chainID digest.Digest, apply ApplyFunc) error {
	if err := checkChainID(chainID); err != nil {
		return err
	}
	if s.Has(chainID) {
		return nil
	}
	unlock, err := s.lock(ctx, chainID.Encoded())
	if err != nil {
		return err
	}
	defer unlock()
	if s.Has(chainID) {
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), chainID.Encoded()+"-")
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", chainID, err)
	}
	defer os.RemoveAll(tmp)
	fsDir := filepath.Join(tmp, "fs")
	if err := os.Mkdir(fsDir, 0o755); err != nil {
		return fmt.Errorf("snapshot %s: %w", chainID, err)
	}
	diffID, err := apply(ctx, fsDir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "diffid"), []byte(diffID.String()), 0o600); err != nil {
		return fmt.Errorf("snapshot %s: %w (is the disk full?)", chainID, err)
	}
	if err := os.Rename(tmp, s.committedDir(chainID)); err != nil {
		return fmt.Errorf("snapshot %s: commit: %w", chainID, err)
	}
	return nil
}

// checkChainID refuses a malformed chain ID before it becomes a path: an
// empty encoded part would name committed/ itself, and a short one would
// make Unpack panic.
func checkChainID(chainID digest.Digest) error {
	if err := chainID.Validate(); err != nil {
		return fmt.Errorf("snapshot %q: %w: %w", chainID, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Prepare creates the active snapshot key over the committed chain (bottom
// first) and returns the overlay mount for it. Every snapshot in chain must
// be committed.
func (s *Snapshotter) Prepare(_ context.Context, key string, chain []digest.Digest, opts ...PrepareOption) (mount.Mount, error) {
	var po prepareOptions
	for _, o := range opts {
		o(&po)
	}
	if err := checkKey(key); err != nil {
		return mount.Mount{}, err
	}
	if len(chain) == 0 {
		return mount.Mount{}, fmt.Errorf("snapshot %s: an image with no layers cannot be run: %w", key, errdefs.ErrInvalidArgument)
	}
	lowers, err := s.lowerDirs(chain)
	if err != nil {
		return mount.Mount{}, err
	}
	if err := s.createActive(key, chain, "upper", "work"); err != nil {
		return mount.Mount{}, err
	}
	m := s.mountFor(key, lowers)
	if po.volatile {
		m.Options = append(m.Options, "volatile")
	}
	return m, nil
}

// View creates the view snapshot key over the committed chain (bottom
// first) and returns its mount: a read-only overlay of the chain's layers
// with no upper directory, mounted nosuid and nodev. A view keeps its
// chain from gc, as an active snapshot does, until Remove(key). Every
// snapshot in chain must be committed (errdefs.ErrNotFound otherwise).
//
// overlayfs wants at least two lower directories without an upper one:
// a chain of one layer gets an empty directory below it.
func (s *Snapshotter) View(_ context.Context, key string, chain []digest.Digest) (mount.Mount, error) {
	if err := checkKey(key); err != nil {
		return mount.Mount{}, err
	}
	if len(chain) == 0 {
		return mount.Mount{}, fmt.Errorf("snapshot %s: an image with no layers has nothing to view: %w", key, errdefs.ErrInvalidArgument)
	}
	lowers, err := s.lowerDirs(chain)
	if err != nil {
		return mount.Mount{}, err
	}
	var subdirs []string
	if len(lowers) == 1 {
		subdirs = []string{"empty"}
		lowers = append(lowers, filepath.Join(s.ActiveDir(key), "empty"))
	}
	if err := s.createActive(key, chain, subdirs...); err != nil {
		return mount.Mount{}, err
	}
	return mount.Mount{
		Type:    "overlay",
		Source:  "overlay",
		Options: []string{"ro", "nosuid", "nodev", "lowerdir=" + strings.Join(lowers, ":"), "index=off"},
	}, nil
}

// checkKey refuses an active snapshot key that is not one path element.
func checkKey(key string) error {
	if key == "" || strings.ContainsAny(key, "/.") {
		return fmt.Errorf("snapshot key %q: %w", key, errdefs.ErrInvalidArgument)
	}
	return nil
}

// lowerDirs returns the fs directories of the committed chain (bottom
// first) in overlayfs' lowerdir order, top first; every snapshot in chain
// must be committed.
func (s *Snapshotter) lowerDirs(chain []digest.Digest) ([]string, error) {
	lowers := make([]string, 0, len(chain)+1)
	for i := len(chain) - 1; i >= 0; i-- {
		if !s.Has(chain[i]) {
			return nil, fmt.Errorf("snapshot %s is not unpacked: fetch the image again: %w", chain[i], errdefs.ErrNotFound)
		}
		lowers = append(lowers, filepath.Join(s.committedDir(chain[i]), "fs"))
	}
	return lowers, nil
}

// createActive makes the directory of the active snapshot key with the
// given subdirectories and records the chain it stands on (parents.json,
// which gc reads). An existing key is errdefs.ErrAlreadyExists; on any
// other failure nothing is left.
func (s *Snapshotter) createActive(key string, chain []digest.Digest, subdirs ...string) error {
	dir := s.ActiveDir(key)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("snapshot %s: %w", key, errdefs.ErrAlreadyExists)
		}
		return fmt.Errorf("snapshot %s: %w", key, err)
	}
	for _, d := range subdirs {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			os.RemoveAll(dir)
			return fmt.Errorf("snapshot %s: %w", key, err)
		}
	}
	b, _ := json.Marshal(chain)
	if err := os.WriteFile(filepath.Join(dir, "parents.json"), b, 0o600); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("snapshot %s: %w (is the disk full?)", key, err)
	}
	return nil
}

type prepareOptions struct{ volatile bool }

// PrepareOption configures an active snapshot.
type PrepareOption func(*prepareOptions)

// WithVolatile mounts the snapshot with overlayfs' "volatile" option: the
// kernel skips syncing the upper directory, above all the syncfs of the
// whole host filesystem that unmounting an overlay otherwise does (tens of
// milliseconds on a busy host). After a host crash such an upper
// directory cannot be mounted again, so use it only for a snapshot that
// will never be reused: a container run with --rm.
func WithVolatile() PrepareOption { return func(o *prepareOptions) { o.volatile = true } }

func (s *Snapshotter) mountFor(key string, lowers []string) mount.Mount {
	dir := s.ActiveDir(key)
	return mount.Mount{
		Type:   "overlay",
		Source: "overlay",
		Options: []string{
			"lowerdir=" + strings.Join(lowers, ":"),
			"upperdir=" + filepath.Join(dir, "upper"),
			"workdir=" + filepath.Join(dir, "work"),
			// index=off and xino=off keep upper dirs portable and avoid
			// the kernel refusing a lower dir reused by another mount.
			"index=off",
		},
	}
}

// Remove deletes the active (or view) snapshot key; absent is not an
// error.
func (s *Snapshotter) Remove(_ context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := os.RemoveAll(s.ActiveDir(key)); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", key, err)
	}
	return nil
}

// Delete removes the committed snapshot chainID; absent is not an error.
// The caller makes sure nothing uses it (gc).
func (s *Snapshotter) Delete(ctx context.Context, chainID digest.Digest) error {
	if err := checkChainID(chainID); err != nil {
		return err
	}
	unlock, err := s.lock(ctx, chainID.Encoded())
	if err != nil {
		return err
	}
	defer unlock()
	// Rename first so a crash mid-delete never leaves a half-deleted layer
	// where Has would find it.
	trash := filepath.Join(s.root, "tmp", "del-"+chainID.Encoded())
	// A Delete killed after its rename left trash behind; rename(2) will
	// not replace a non-empty directory.
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", chainID, err)
	}
	if err := os.Rename(s.committedDir(chainID), trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete snapshot %s: %w", chainID, err)
	}
	return os.RemoveAll(trash)
}

// Committed lists committed snapshots.
func (s *Snapshotter) Committed(_ context.Context) ([]digest.Digest, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "committed"))
	if err != nil {
		return nil, err
	}
	var out []digest.Digest
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// Active lists active snapshots and the chains they stand on.
func (s *Snapshotter) Active(_ context.Context) (map[string][]digest.Digest, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "active"))
	if err != nil {
		return nil, err
	}
	out := map[string][]digest.Digest{}
	for _, e := range entries {
		var chain []digest.Digest
		b, err := os.ReadFile(filepath.Join(s.root, "active", e.Name(), "parents.json"))
		if err == nil {
			_ = json.Unmarshal(b, &chain)
		}
		out[e.Name()] = chain
	}
	return out, nil
}

// CommittedAt is when the snapshot chainID was committed.
func (s *Snapshotter) CommittedAt(chainID digest.Digest) (time.Time, error) {
	fi, err := os.Stat(s.committedDir(chainID))
	if err != nil {
		return time.Time{}, fmt.Errorf("snapshot %s: %w", chainID, err)
	}
	return fi.ModTime(), nil
}
