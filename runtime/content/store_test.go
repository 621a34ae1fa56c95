package content_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/content"
	"github.com/sigil-project/sigil/runtime/lockfile"
)

// newStore opens a store in a fresh directory and returns it with its root.
func newStore(t *testing.T) (*content.Store, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "content")
	s, err := content.NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func descOf(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// opener serves r, counting how often the store asked for it.
func opener(r io.Reader, calls *atomic.Int32) content.Opener {
	return func(context.Context) (io.ReadCloser, error) {
		if calls != nil {
			calls.Add(1)
		}
		return io.NopCloser(r), nil
	}
}

// assertEmpty fails when a store directory holds anything: a failed ingest
// must leave neither a partial download nor a blob behind.
func assertEmpty(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		entries, err := os.ReadDir(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%s after a failed ingest = %q, want it empty", d, names)
		}
	}
}

// endless is a stream that never ends, counting what it hands out.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.n += int64(len(p))
	return len(p), nil
}

func TestIngestVerifies(t *testing.T) {
	t.Parallel()
	blob := bytes.Repeat([]byte("sigil layer bytes "), 40000) // 720000 bytes: several 256 KiB chunks
	good := descOf(blob)
	other := append(bytes.Clone(blob[:len(blob)-1]), '!')

	tests := []struct {
		name     string
		desc     ocispec.Descriptor
		src      io.Reader
		wantErr  error // nil, ErrSizeMismatch or ErrDigestMismatch
		wantRead int64
		wantGot  digest.Digest
	}{
		{name: "exact", desc: good, src: bytes.NewReader(blob)},
		{name: "empty blob", desc: descOf(nil), src: strings.NewReader("")},
		{name: "same size, other bytes", desc: good, src: bytes.NewReader(other),
			wantErr: content.ErrDigestMismatch, wantRead: good.Size, wantGot: digest.FromBytes(other)},
		{name: "one byte too many", desc: good, src: io.MultiReader(bytes.NewReader(blob), strings.NewReader("!")),
			wantErr: content.ErrSizeMismatch, wantRead: good.Size + 1},
		{name: "endless stream", desc: good, src: &endless{},
			wantErr: content.ErrSizeMismatch, wantRead: good.Size + 1},
		{name: "truncated", desc: good, src: bytes.NewReader(blob[:1000]),
			wantErr: content.ErrSizeMismatch, wantRead: 1000},
		{name: "nothing at all", desc: good, src: strings.NewReader(""),
			wantErr: content.ErrSizeMismatch, wantRead: 0},
		{name: "size promised zero", desc: ocispec.Descriptor{Digest: digest.FromBytes(nil), Size: 0}, src: strings.NewReader("x"),
			wantErr: content.ErrSizeMismatch, wantRead: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, root := newStore(t)
			ctx := context.Background()
			var progress int64
			err := s.Ingest(ctx, tc.desc, opener(tc.src, nil), func(n int) { progress += int64(n) })
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Ingest(%s) = %v, want %v", tc.name, err, tc.wantErr)
			}
			if tc.wantErr == nil {
				info, err := s.Info(ctx, tc.desc.Digest)
				if err != nil || info.Size != tc.desc.Size {
					t.Fatalf("Info after Ingest = %+v, %v, want size %d", info, err, tc.desc.Size)
				}
				if progress != tc.desc.Size {
					t.Errorf("progress total = %d, want %d", progress, tc.desc.Size)
				}
				fi, err := os.Stat(s.Path(tc.desc.Digest))
				if err != nil || fi.Mode().Perm() != 0o444 {
					t.Errorf("stored blob mode = %v (%v), want read-only 0444", fi.Mode(), err)
				}
				assertEmpty(t, root, "ingest")
				return
			}
			var ve *content.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Ingest(%s) error %T %v, want *content.VerifyError", tc.name, err, err)
			}
			if ve.Read != tc.wantRead || ve.Got != tc.wantGot || ve.Expected.Digest != tc.desc.Digest {
				t.Errorf("VerifyError = {Read %d, Got %q, Expected %s}, want {Read %d, Got %q, Expected %s}",
					ve.Read, ve.Got, ve.Expected.Digest, tc.wantRead, tc.wantGot, tc.desc.Digest)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.desc.Digest.String()) || !strings.Contains(msg, "nothing was stored") {
				t.Errorf("Ingest error message %q, want the digest and 'nothing was stored'", msg)
			}
			if e, ok := tc.src.(*endless); ok && e.n > tc.desc.Size+256<<10 {
				t.Errorf("read %d bytes of an endless stream for a %d byte blob, want at most one chunk more", e.n, tc.desc.Size)
			}
			if _, err := s.Info(ctx, tc.desc.Digest); !errdefs.IsNotFound(err) {
				t.Errorf("Info after failed Ingest = %v, want not found", err)
			}
			assertEmpty(t, root, "ingest", "blobs/sha256")
		})
	}
}

// failAfter hands out n bytes of data, then fails.
type failAfter struct {
	data []byte
	n    int
	err  error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	m := copy(p, f.data[:min(f.n, len(f.data))])
	f.data, f.n = f.data[m:], f.n-m
	return m, nil
}

func TestIngestReaderFails(t *testing.T) {
	t.Parallel()
	s, root := newStore(t)
	blob := bytes.Repeat([]byte("y"), 600<<10)
	boom := errors.New("connection reset by peer")
	err := s.Ingest(context.Background(), descOf(blob), opener(&failAfter{data: blob, n: 300 << 10, err: boom}, nil), nil)
	if !errors.Is(err, boom) {
		t.Fatalf("Ingest with a reader failing after 300 KiB = %v, want it to wrap %v", err, boom)
	}
	var ve *content.VerifyError
	if errors.As(err, &ve) {
		t.Errorf("Ingest with a failing reader = %v, a VerifyError; want an I/O error (the source is not corrupt)", err)
	}
	if !strings.Contains(err.Error(), "read after 307200 of 614400 bytes") {
		t.Errorf("Ingest error %q, want it to say how far it got", err)
	}
	assertEmpty(t, root, "ingest", "blobs/sha256")

	// The opener failing is returned as is and leaves nothing either.
	openErr := errors.New("dial tcp: refused")
	err = s.Ingest(context.Background(), descOf(blob), func(context.Context) (io.ReadCloser, error) { return nil, openErr }, nil)
	if !errors.Is(err, openErr) {
		t.Errorf("Ingest with a failing opener = %v, want %v", err, openErr)
	}
	assertEmpty(t, root, "ingest", "blobs/sha256")

	// And the same blob from a good source afterwards succeeds.
	if err := s.Write(context.Background(), descOf(blob), bytes.NewReader(blob)); err != nil {
		t.Fatalf("Write after failed Ingest = %v, want nil", err)
	}
}

// cancelAfterFirstRead cancels its context once it has handed out data.
type cancelAfterFirstRead struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelAfterFirstRead) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.cancel()
	return n, err
}

func TestIngestContextCancelled(t *testing.T) {
	t.Parallel()
	blob := bytes.Repeat([]byte("z"), 1<<20)

	t.Run("mid-stream", func(t *testing.T) {
		t.Parallel()
		s, root := newStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var reads int
		src := &cancelAfterFirstRead{r: io.TeeReader(bytes.NewReader(blob), writerFunc(func(p []byte) { reads++ })), cancel: cancel}
		err := s.Ingest(ctx, descOf(blob), opener(src, nil), nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Ingest cancelled mid-stream = %v, want context.Canceled", err)
		}
		if reads != 1 {
			t.Errorf("reads after cancel = %d, want 1 (stop at the next chunk)", reads)
		}
		assertEmpty(t, root, "ingest", "blobs/sha256")
	})

	t.Run("waiting for another ingest", func(t *testing.T) {
		t.Parallel()
		s, root := newStore(t)
		d := descOf(blob)
		// Another process holds the blob's lock and never finishes.
		unlock, err := lockfile.Lock(context.Background(), filepath.Join(root, "locks", d.Digest.Encoded()+".lock"))
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		var calls atomic.Int32
		err = s.Ingest(ctx, d, opener(bytes.NewReader(blob), &calls), nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ingest while the lock is held = %v, want context.DeadlineExceeded", err)
		}
		if n := calls.Load(); n != 0 {
			t.Errorf("opener calls while the lock is held = %d, want 0", n)
		}
	})
}

type writerFunc func(p []byte)

func (w writerFunc) Write(p []byte) (int, error) { w(p); return len(p), nil }

// slowReader hands out its data in small pieces with pauses, so concurrent
// ingests overlap.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 4096)])
}

func TestIngestConcurrentOpensOnce(t *testing.T) {
	t.Parallel()
	s, root := newStore(t)
	blob := bytes.Repeat([]byte("concurrent "), 4000)
	d := descOf(blob)
	var calls atomic.Int32
	open := func(context.Context) (io.ReadCloser, error) {
		calls.Add(1)
		return io.NopCloser(slowReader{bytes.NewReader(blob)}), nil
	}
	const workers = 8
	var (
		start sync.WaitGroup
		done  sync.WaitGroup
		errs  = make([]error, workers)
	)
	start.Add(1)
	for i := range workers {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			errs[i] = s.Ingest(context.Background(), d, open, nil)
		}()
	}
	start.Done()
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Ingest in goroutine %d = %v, want nil", i, err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("opener calls for %d concurrent Ingests of one blob = %d, want 1", workers, n)
	}
	got, err := s.ReadAll(context.Background(), d.Digest, d.Size)
	if err != nil || !bytes.Equal(got, blob) {
		t.Errorf("ReadAll after concurrent Ingest = %d bytes, %v; want the %d byte blob", len(got), err, len(blob))
	}
	assertEmpty(t, root, "ingest")

	// Present blobs are never fetched again.
	if err := s.Ingest(context.Background(), d, open, nil); err != nil || calls.Load() != 1 {
		t.Errorf("Ingest of a present blob = %v with %d opener calls, want nil and no new call", err, calls.Load()-1)
	}
}

func TestStoreReadOps(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	blobs := [][]byte{[]byte("one"), []byte("second blob"), bytes.Repeat([]byte("3"), 1000)}
	want := map[digest.Digest]int64{}
	for _, b := range blobs {
		if err := s.Write(ctx, descOf(b), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		want[digest.FromBytes(b)] = int64(len(b))
	}
	absent := digest.FromString("absent")

	t.Run("Info", func(t *testing.T) {
		for _, b := range blobs {
			d := digest.FromBytes(b)
			info, err := s.Info(ctx, d)
			if err != nil || info.Digest != d || info.Size != int64(len(b)) || info.ModTime.IsZero() {
				t.Errorf("Info(%s) = %+v, %v; want size %d", d, info, err, len(b))
			}
		}
		if _, err := s.Info(ctx, absent); !errdefs.IsNotFound(err) {
			t.Errorf("Info(absent) = %v, want ErrNotFound", err)
		}
	})
	t.Run("Open", func(t *testing.T) {
		f, err := s.Open(ctx, digest.FromBytes(blobs[1]))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		if !bytes.Equal(got, blobs[1]) {
			t.Errorf("Open(%s) reads %q, want %q", digest.FromBytes(blobs[1]), got, blobs[1])
		}
		if _, err := s.Open(ctx, absent); !errdefs.IsNotFound(err) {
			t.Errorf("Open(absent) = %v, want ErrNotFound", err)
		}
	})
	t.Run("ReadAll limit", func(t *testing.T) {
		d := digest.FromBytes(blobs[2])
		for _, tc := range []struct {
			limit   int64
			wantErr bool
		}{{1000, false}, {1001, false}, {999, true}, {0, true}} {
			got, err := s.ReadAll(ctx, d, tc.limit)
			if tc.wantErr {
				if !errdefs.IsInvalidArgument(err) || got != nil {
					t.Errorf("ReadAll(1000 byte blob, %d) = %d bytes, %v; want ErrInvalidArgument", tc.limit, len(got), err)
				}
				continue
			}
			if err != nil || !bytes.Equal(got, blobs[2]) {
				t.Errorf("ReadAll(1000 byte blob, %d) = %d bytes, %v; want the blob", tc.limit, len(got), err)
			}
		}
		if _, err := s.ReadAll(ctx, absent, 10); !errdefs.IsNotFound(err) {
			t.Errorf("ReadAll(absent) = %v, want ErrNotFound", err)
		}
	})
	t.Run("Walk", func(t *testing.T) {
		got := map[digest.Digest]int64{}
		if err := s.Walk(ctx, func(i content.Info) error { got[i.Digest] = i.Size; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("Walk found %v, want %v", got, want)
		}
		for d, n := range want {
			if got[d] != n {
				t.Errorf("Walk size of %s = %d, want %d", d, got[d], n)
			}
		}
		stop := errors.New("stop")
		calls := 0
		if err := s.Walk(ctx, func(content.Info) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
			t.Errorf("Walk with fn failing = %v after %d calls, want %v after 1", err, calls, stop)
		}
	})
}

func TestDelete(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	b := []byte("to be deleted")
	d := digest.FromBytes(b)
	if err := s.Write(ctx, descOf(b), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second time the blob is already gone
		if err := s.Delete(ctx, d); err != nil {
			t.Errorf("Delete #%d(%s) = %v, want nil", i+1, d, err)
		}
		if _, err := s.Info(ctx, d); !errdefs.IsNotFound(err) {
			t.Errorf("Info after Delete #%d = %v, want ErrNotFound", i+1, err)
		}
	}
}

func TestInvalidDigest(t *testing.T) {
	t.Parallel()
	s, root := newStore(t)
	ctx := context.Background()
	// A file whose name a traversal would reach; nothing may touch it.
	victim := filepath.Join(filepath.Dir(root), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := []digest.Digest{
		"",
		"sha256",
		"sha256:",
		"sha256:abc",
		digest.Digest("sha256:" + strings.Repeat("G", 64)),
		digest.Digest("sha256:" + strings.ToUpper(digest.FromString("x").Encoded())),
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"sha256:../../victim",
		digest.Digest("sha256:" + digest.FromString("x").Encoded() + "/.."),
	}
	ops := map[string]func(d digest.Digest) error{
		"Info":   func(d digest.Digest) error { _, err := s.Info(ctx, d); return err },
		"Open":   func(d digest.Digest) error { _, err := s.Open(ctx, d); return err },
		"Delete": func(d digest.Digest) error { return s.Delete(ctx, d) },
		"ReadAll": func(d digest.Digest) error {
			_, err := s.ReadAll(ctx, d, 100)
			return err
		},
		"Ingest": func(d digest.Digest) error {
			return s.Ingest(ctx, ocispec.Descriptor{Digest: d, Size: 4}, opener(strings.NewReader("keep"), nil), nil)
		},
	}
	names := make([]string, 0, len(ops))
	for n := range ops {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, op := range names {
		for _, d := range bad {
			if err := ops[op](d); !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s(%q) = %v, want ErrInvalidArgument", op, d, err)
			}
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep" {
		t.Errorf("file outside the store after invalid digests = %q, %v; want it untouched", b, err)
	}
	err := s.Ingest(ctx, ocispec.Descriptor{Digest: digest.FromString("x"), Size: -1}, opener(strings.NewReader("x"), nil), nil)
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("Ingest(size -1) = %v, want ErrInvalidArgument", err)
	}
	assertEmpty(t, root, "ingest", "blobs/sha256")
}

func TestCleanIngest(t *testing.T) {
	t.Parallel()
	s, root := newStore(t)
	ingest := filepath.Join(root, "ingest")
	now := time.Now()
	files := map[string]time.Duration{ // name -> age
		"old-2h":   2 * time.Hour,
		"old-61m":  61 * time.Minute,
		"young-1m": time.Minute,
		"fresh":    0,
	}
	for name, age := range files {
		p := filepath.Join(ingest, name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	// A stored blob is never a partial download.
	blob := []byte("stored")
	if err := s.Write(context.Background(), descOf(blob), bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-48 * time.Hour)
	if err := os.Chtimes(s.Path(digest.FromBytes(blob)), old, old); err != nil {
		t.Fatal(err)
	}

	if err := s.CleanIngest(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	for name, age := range files {
		_, err := os.Stat(filepath.Join(ingest, name))
		gone := errors.Is(err, fs.ErrNotExist)
		if wantGone := age > time.Hour; gone != wantGone {
			t.Errorf("CleanIngest(1h): %s (age %v) removed = %v, want %v", name, age, gone, wantGone)
		}
	}
	if _, err := s.Info(context.Background(), digest.FromBytes(blob)); err != nil {
		t.Errorf("Info(stored blob) after CleanIngest = %v, want it kept", err)
	}
}
