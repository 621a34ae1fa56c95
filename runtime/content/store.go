// Package content is Sigil's content-addressed blob store: manifests,
// configs and compressed layers, each stored once under its digest.
//
// A blob becomes visible only whole and verified: Ingest streams it into a
// temporary file, checks size and digest while it streams, fsyncs it, then
// renames it into place. A download that is interrupted leaves at most a
// temporary file, which the next Ingest or gc removes, so a failed fetch can
// simply be run again. Several processes ingesting the same blob at once
// download it once: the first holds a per-digest lock, the others wait and
// then find it present.
//
// On disk, under the store root:
//
//	content/
//	├── blobs/sha256/<hex>     verified blobs, read-only (0444)
//	├── ingest/<random>        partial downloads; never read
//	└── locks/<hex>.lock       flock(2) targets, one per blob being fetched
//
// Usage:
//
//	s, err := content.NewStore(filepath.Join(root, "content"))
//	err = s.Ingest(ctx, desc, func(ctx context.Context) (io.ReadCloser, error) {
//		return fetcher.Fetch(ctx, desc)
//	}, nil)
//	f, err := s.Open(ctx, desc.Digest)
package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/lockfile"
)

// ErrDigestMismatch and ErrSizeMismatch classify a blob whose bytes are not
// what its descriptor promised: a corrupt or hostile registry, never an I/O
// fault. Match them with errors.Is.
var (
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrSizeMismatch   = errors.New("size mismatch")
)

// VerifyError reports a blob that failed verification while streaming.
type VerifyError struct {
	Expected ocispec.Descriptor
	Got      digest.Digest // empty when the size was already wrong
	Read     int64
	Err      error // ErrDigestMismatch or ErrSizeMismatch
}

func (e *VerifyError) Error() string {
	if errors.Is(e.Err, ErrSizeMismatch) {
		return fmt.Sprintf("blob %s: %v: expected %d bytes, got %d: the source is corrupt, truncated or tampered with; nothing was stored",
			e.Expected.Digest, e.Err, e.Expected.Size, e.Read)
	}
	return fmt.Sprintf("blob %s: %v: content hashes to %s: the source is corrupt or tampered with; nothing was stored",
		e.Expected.Digest, e.Err, e.Got)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Info describes a stored blob.
type Info struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// Store is a blob store rooted at one directory. It is safe for use by
// several goroutines and several processes at once.
type Store struct {
	root string
}

// NewStore opens (creating if needed) the store at root.
func NewStore(root string) (*Store, error) {
	for _, d := range []string{"blobs/sha256", "ingest", "locks"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("content store %s: %w", root, err)
		}
	}
	return &Store{root: root}, nil
}

// Path is where the blob with digest d lives once stored. Callers that need
// the file itself (overlay unpack, export) use it; the digest must be valid.
func (s *Store) Path(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded())
}

// Info returns the blob's size. If it is not present, an error wrapping
// errdefs.ErrNotFound is returned.
func (s *Store) Info(_ context.Context, d digest.Digest) (Info, error) {
	if err := d.Validate(); err != nil {
		return Info{}, fmt.Errorf("digest %q: %w: %w", d, err, errdefs.ErrInvalidArgument)
	}
	fi, err := os.Stat(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blob %s: %w", d, err)
	}
	return Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Open opens a stored blob for reading; errdefs.ErrNotFound if absent.
func (s *Store) Open(_ context.Context, d digest.Digest) (*os.File, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("digest %q: %w: %w", d, err, errdefs.ErrInvalidArgument)
	}
	f, err := os.Open(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return f, nil
}

// ReadAll returns a small stored blob (a manifest or a config) whole,
// refusing one larger than limit bytes.
func (s *Store) ReadAll(ctx context.Context, d digest.Digest, limit int64) ([]byte, error) {
	f, err := s.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s is larger than %d bytes: %w", d, limit, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// Opener supplies a blob's bytes when the store needs to fetch it.
type Opener func(ctx context.Context) (io.ReadCloser, error)

// Ingest makes sure the blob desc is stored: it returns at once if it is,
// else it opens the source and streams it in, verifying size and digest.
// progress, if not nil, is called with the byte count of every chunk read.
func (s *Store) Ingest(ctx context.Context, desc ocispec.Descriptor, open Opener, progress func(n int)) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("descriptor digest %q: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 {
		return fmt.Errorf("blob %s: negative size %d: %w", desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
	}
	if _, err := s.Info(ctx, desc.Digest); err == nil {
		return nil
	}
	unlock, err := lockfile.Lock(ctx, filepath.Join(s.root, "locks", desc.Digest.Encoded()+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	// Another process may have stored it while we waited for the lock.
	if _, err := s.Info(ctx, desc.Digest); err == nil {
		return nil
	}
	rc, err := open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	return s.write(ctx, desc, rc, progress)
}

// Write stores the blob read from r, verified against desc.
func (s *Store) Write(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return s.Ingest(ctx, desc, func(context.Context) (io.ReadCloser, error) { return io.NopCloser(r), nil }, nil)
}

func (s *Store) write(ctx context.Context, desc ocispec.Descriptor, r io.Reader, progress func(int)) (retErr error) {
	tmp, err := os.CreateTemp(filepath.Join(s.root, "ingest"), desc.Digest.Encoded()[:12]+"-*")
	if err != nil {
		return fmt.Errorf("blob %s: create temporary file: %w", desc.Digest, err)
	}
	defer func() {
		if retErr != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	verifier := desc.Digest.Verifier()
	// Read one byte past the promised size so an over-long blob is caught
	// without reading an unbounded stream.
	src := io.LimitReader(r, desc.Size+1)
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("blob %s: %w", desc.Digest, err)
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			n += int64(m)
			if n > desc.Size {
				return &VerifyError{Expected: desc, Read: n, Err: ErrSizeMismatch}
			}
			if _, err := tmp.Write(buf[:m]); err != nil {
				return fmt.Errorf("blob %s: write %s: %w (is the disk full?)", desc.Digest, tmp.Name(), err)
			}
			verifier.Write(buf[:m])
			if progress != nil {
				progress(m)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("blob %s: read after %d of %d bytes: %w", desc.Digest, n, desc.Size, rerr)
		}
	}
	if n != desc.Size {
		return &VerifyError{Expected: desc, Read: n, Err: ErrSizeMismatch}
	}
	if !verifier.Verified() {
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("blob %s: %w", desc.Digest, err)
		}
		got, _ := desc.Digest.Algorithm().FromReader(tmp)
		return &VerifyError{Expected: desc, Got: got, Read: n, Err: ErrDigestMismatch}
	}
	if err := tmp.Chmod(0o444); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("blob %s: sync: %w (is the disk full?)", desc.Digest, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if err := os.Rename(tmp.Name(), s.Path(desc.Digest)); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return nil
}

// Delete removes a blob. Deleting an absent blob is not an error, so gc can
// be rerun after an interruption.
func (s *Store) Delete(_ context.Context, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w: %w", d, err, errdefs.ErrInvalidArgument)
	}
	if err := os.Remove(s.Path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	return nil
}

// Walk calls fn for every stored blob.
func (s *Store) Walk(ctx context.Context, fn func(Info) error) error {
	dir := filepath.Join(s.root, "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("content store %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if err := fn(Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// CleanIngest removes partial downloads older than age, left by processes
// that were killed mid-download.
func (s *Store) CleanIngest(_ context.Context, age time.Duration) error {
	dir := filepath.Join(s.root, "ingest")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > age {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}
