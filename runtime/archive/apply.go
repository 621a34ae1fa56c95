package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// DefaultMaxSize is the default bound on the uncompressed size of a layer:
// 64 GiB. It is far above any layer seen in practice, yet keeps a
// decompression bomb from filling the disk that holds every other image.
const DefaultMaxSize int64 = 64 << 30

// zstdMaxWindow bounds the memory the zstd decoder may allocate for its
// history window. 128 MiB covers "zstd --long" (which defaults to a 128 MiB
// window) and every level of the usual encoders; larger windows are a way to
// make the runtime allocate gigabytes per pull.
const zstdMaxWindow = 128 << 20

// endMarkerLen is the size of the two zero blocks that end a tar archive.
// archive/tar accepts a stream that simply stops at a header boundary; Apply
// does not, so that a truncated layer is reported even when the caller does
// not compare diff IDs.
const endMarkerLen = 2 * 512

// Result describes an applied layer.
type Result struct {
	// DiffID is the digest of the uncompressed tar stream, to be compared
	// with the image config's rootfs.diff_ids.
	DiffID digest.Digest
	// Size is the number of uncompressed bytes.
	Size int64
}

// ApplyOption configures Apply.
type ApplyOption func(*config)

type config struct {
	maxSize int64
}

// WithMaxSize bounds the uncompressed size of the layer, and separately the
// total logical size of its regular files, to n bytes (default
// DefaultMaxSize, 64 GiB). Apply fails with ErrTooLarge once a bound is
// exceeded. n must be positive.
func WithMaxSize(n int64) ApplyOption {
	return func(c *config) { c.maxSize = n }
}

// Apply reads a layer (gzip, zstd or uncompressed tar, detected by magic
// bytes) from r and writes it into dir, which is the layer's own overlayfs
// "diff" directory: it must exist and be empty, and lower layers are not
// visible through it. It returns the digest and size of the uncompressed tar
// stream (the diff ID) so the caller can check it against the image config's
// rootfs.diff_ids; r is read to its end so that the digest covers it all.
//
// On error dir is left partially populated and must be removed by the
// caller. Even on success, dir must not be used until the diff ID has been
// verified.
//
// ctx is checked before every entry and on every read from the stream.
func Apply(ctx context.Context, dir string, r io.Reader, opts ...ApplyOption) (Result, error) {
	cfg := config{maxSize: DefaultMaxSize}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxSize <= 0 {
		return Result{}, &Error{Reason: fmt.Sprintf("size limit %d is invalid; WithMaxSize needs a positive number of bytes", cfg.maxSize)}
	}
	if err := ctx.Err(); err != nil {
		return Result{}, &Error{Reason: "not started", Err: err}
	}

	root, err := os.OpenRoot(dir)
	if err != nil {
		return Result{}, fsError("", "opening the layer directory", err)
	}
	defer root.Close()
	if err := checkEmpty(root, dir); err != nil {
		return Result{}, err
	}

	a := &applier{ctx: ctx, maxSize: cfg.maxSize, src: &recordingReader{r: r}}
	dec, err := a.decompress()
	if err != nil {
		return Result{}, err
	}
	defer dec.Close()

	a.stream = &boundedReader{r: dec, ctx: ctx, max: cfg.maxSize}
	digester := digest.SHA256.Digester()
	// tar.Reader must see every byte through the tee (it would seek past
	// file data if it could), otherwise the digest would not be the diff ID.
	tee := io.TeeReader(a.stream, digester.Hash())

	x := newExtractor(root, cfg.maxSize)
	defer x.close()

	tr := tar.NewReader(tee)
	for {
		if err := ctx.Err(); err != nil {
			return Result{}, &Error{Reason: fmt.Sprintf("interrupted after %d entries", a.entries), Err: err}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// ErrInsecurePath (GODEBUG=tarinsecurepath=0) comes with a usable
		// header; our own name checks refuse such entries with a better
		// message.
		if err != nil && (hdr == nil || !errors.Is(err, tar.ErrInsecurePath)) {
			return Result{}, a.streamError("", err)
		}
		a.entries++
		a.last = hdr.Name
		if err := x.apply(hdr, tr); err != nil {
			var rf *readFailure
			if errors.As(err, &rf) {
				return Result{}, a.streamError(hdr.Name, rf.err)
			}
			return Result{}, err
		}
	}
	if a.stream.n == 0 {
		return Result{}, &Error{Reason: "layer is empty (even an empty layer holds a 1024-byte tar end marker)", kind: ErrCorrupt}
	}
	if a.stream.zeros < endMarkerLen {
		return Result{}, &Error{Reason: "tar stream ends without its end-of-archive marker (truncated layer)", kind: ErrCorrupt}
	}
	// Whatever follows the end marker (record padding, usually) is part of
	// the diff ID, and reading the compressed stream to its end is also what
	// verifies its checksum.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return Result{}, a.streamError("", err)
	}
	if err := x.finish(); err != nil {
		return Result{}, err
	}
	return Result{DiffID: digester.Digest(), Size: a.stream.n}, nil
}

func checkEmpty(root *os.Root, dir string) error {
	f, err := root.Open(".")
	if err != nil {
		return fsError("", "opening the layer directory", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		// Hardlink targets must be earlier entries of the same layer; that
		// is only checkable if everything in dir came from this layer.
		return &Error{Reason: fmt.Sprintf("layer directory %s is not empty (it contains %q); apply each layer into a new empty directory, and remove the directory after a failed Apply", dir, names[0])}
	}
	if err != nil && err != io.EOF {
		return fsError("", "reading the layer directory", err)
	}
	return nil
}

// applier holds the stream-side state needed to explain a failure.
type applier struct {
	ctx     context.Context
	maxSize int64
	src     *recordingReader
	stream  *boundedReader
	codec   string // "gzip", "zstd" or "tar"
	entries int
	last    string // name of the last header read
}

// decompress picks a decoder from the stream's magic bytes. Media types are
// not trusted for this: they are often wrong in the wild, and the magic
// bytes are what the data actually is.
func (a *applier) decompress() (io.ReadCloser, error) {
	br := bufio.NewReaderSize(a.src, 64<<10)
	magic, err := br.Peek(10)
	if err != nil && err != io.EOF {
		if a.src.err != nil {
			return nil, &Error{Reason: "reading the layer", Err: a.src.err}
		}
		return nil, &Error{Reason: "reading the layer", Err: err}
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		a.codec = "gzip"
		zr, err := gzip.NewReader(br)
		if err != nil {
			if a.src.err != nil {
				return nil, &Error{Reason: "reading the layer", Err: a.src.err}
			}
			return nil, &Error{Reason: "gzip header is corrupt or truncated", Err: err, kind: ErrCorrupt}
		}
		return zr, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}) || isZstdSkippable(magic):
		a.codec = "zstd"
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderMaxMemory(zstdMaxWindow),
			// Synchronous decoding: no background goroutines reading the
			// caller's reader, and no extra cores taken on a busy host.
			zstd.WithDecoderConcurrency(1),
		)
		if err != nil {
			return nil, &Error{Reason: "starting the zstd decoder", Err: err}
		}
		return zr.IOReadCloser(), nil
	}
	if name := unsupportedCodec(magic); name != "" {
		return nil, &Error{Reason: name + "-compressed layers are not supported", kind: ErrUnsupportedCompression}
	}
	a.codec = "tar"
	return io.NopCloser(br), nil
}

func isZstdSkippable(m []byte) bool {
	return len(m) >= 4 && m[0]&0xf0 == 0x50 && m[1] == 0x2a && m[2] == 0x4d && m[3] == 0x18
}

// unsupportedCodec recognises the other formats seen in tarball tooling so
// that the error names the format instead of calling it a corrupt tar. The
// checks are long enough that no plausible tar header (whose first bytes are
// a file name) matches them.
func unsupportedCodec(m []byte) string {
	switch {
	case len(m) >= 10 && m[0] == 'B' && m[1] == 'Z' && m[2] == 'h' && m[3] >= '1' && m[3] <= '9' &&
		(bytes.Equal(m[4:10], []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59}) || // block magic (pi)
			bytes.Equal(m[4:10], []byte{0x17, 0x72, 0x45, 0x38, 0x50, 0x90})): // end of stream (sqrt pi)
		return "bzip2"
	case bytes.HasPrefix(m, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return "xz"
	case bytes.HasPrefix(m, []byte{0x04, 0x22, 0x4d, 0x18}):
		return "lz4"
	}
	return ""
}

// streamError explains a failure to read the layer stream, attributing it to
// the right layer: the caller's reader, the decompressor, the size bound or
// the tar format. entry names the entry whose data was being read, if any.
func (a *applier) streamError(entry string, err error) error {
	if cerr := a.ctx.Err(); cerr != nil {
		return &Error{Entry: entry, Reason: "interrupted", Err: cerr}
	}
	if a.src.err != nil {
		return &Error{Entry: entry, Reason: "reading the layer", Err: a.src.err}
	}
	if s := a.stream; s != nil && s.err != nil {
		switch {
		case errors.Is(s.err, ErrTooLarge):
			return &Error{Entry: entry, Reason: fmt.Sprintf("uncompressed layer is larger than the %d-byte limit", a.maxSize), kind: ErrTooLarge}
		case errors.Is(s.err, zstd.ErrWindowSizeExceeded), errors.Is(s.err, zstd.ErrDecoderSizeExceeded):
			return &Error{Entry: entry, Reason: fmt.Sprintf("zstd stream needs a window larger than the %d MiB this runtime allows", zstdMaxWindow>>20), Err: s.err, kind: ErrUnsupportedCompression}
		}
		return &Error{Entry: entry, Reason: a.codec + " stream is corrupt or truncated", Err: s.err, kind: ErrCorrupt}
	}
	var reason string
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) && entry != "":
		reason = "tar stream is truncated in the middle of this entry"
	case errors.Is(err, io.ErrUnexpectedEOF) && a.entries > 0:
		reason = fmt.Sprintf("tar stream is truncated after entry %q", a.last)
	case errors.Is(err, io.ErrUnexpectedEOF):
		reason = "tar stream is truncated before its first entry"
	case a.entries == 0 && a.codec == "tar":
		reason = "not a tar archive (nor gzip or zstd)"
	case a.entries == 0:
		reason = "decompressed layer is not a tar archive"
	case entry == "":
		reason = fmt.Sprintf("tar stream is corrupt after entry %q", a.last)
	default:
		reason = "tar stream is corrupt"
	}
	return &Error{Entry: entry, Reason: reason, Err: err, kind: ErrCorrupt}
}

// recordingReader remembers the first error of the caller's reader, so that
// a network failure is not reported as a corrupt layer.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// boundedReader is the uncompressed stream: it enforces the size bound and
// cancellation, remembers decompressor errors, and tracks how many zero
// bytes the stream currently ends with (to recognise the tar end marker).
type boundedReader struct {
	r     io.Reader
	ctx   context.Context
	n     int64
	max   int64
	zeros int // trailing zero bytes read so far, capped at endMarkerLen
	err   error
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if err := b.ctx.Err(); err != nil {
		b.err = err
		return 0, err
	}
	// Read at most one byte past the bound: enough to know it was crossed
	// without decompressing any further.
	if rem := b.max - b.n; int64(len(p)) > rem {
		p = p[:rem+1] // rem < len(p), so no overflow even for a huge max
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	b.trackZeros(p[:n])
	if b.n > b.max {
		err = ErrTooLarge
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *boundedReader) trackZeros(p []byte) {
	if len(p) >= endMarkerLen {
		p = p[len(p)-endMarkerLen:]
		b.zeros = 0
	}
	i := len(p)
	for i > 0 && p[i-1] == 0 {
		i--
	}
	if i == 0 {
		b.zeros = min(b.zeros+len(p), endMarkerLen)
	} else {
		b.zeros = len(p) - i
	}
}
