package archive

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrUnsafeEntry reports a layer entry that Apply refuses to write
	// because it could escape the layer directory, forge overlayfs metadata,
	// create a device node, or otherwise does not describe a plain
	// filesystem tree. Such an image cannot be unpacked.
	ErrUnsafeEntry = errors.New("unsafe layer entry")

	// ErrCorrupt reports a layer whose compressed or tar stream is damaged
	// or truncated. Unlike ErrUnsafeEntry this usually means a bad download.
	ErrCorrupt = errors.New("corrupt layer")

	// ErrTooLarge reports a layer that expands beyond the size limit (see
	// WithMaxSize), typically a decompression bomb.
	ErrTooLarge = errors.New("layer too large")

	// ErrUnsupportedCompression reports a layer compressed with something
	// other than gzip or zstd, or with zstd parameters Apply will not accept.
	ErrUnsupportedCompression = errors.New("unsupported layer compression")
)

// hint tells the operator what to do about each class of failure; it is
// appended to the message so that a log line alone is actionable.
func hint(kind error) string {
	switch kind {
	case ErrUnsafeEntry:
		return "hostile or corrupt layer; the image cannot be unpacked"
	case ErrCorrupt:
		return "the layer blob is damaged or truncated; pull the image again"
	case ErrTooLarge:
		return "a decompression bomb, or a layer larger than allowed: if the image is trusted, raise the layer size limit (sigil fetch --max-layer-size)"
	case ErrUnsupportedCompression:
		return "layers must be gzip, zstd or uncompressed tar; recompress the layer"
	}
	return ""
}

// Error is the error returned by Apply.
type Error struct {
	// Entry is the name of the offending tar entry exactly as it appears in
	// the layer, or "" when the failure concerns the layer as a whole.
	Entry string
	// Reason says what is wrong, in words meant for an operator.
	Reason string
	// Err is the underlying error, if any (a syscall error, a decompressor
	// error, context.Canceled, ...).
	Err error

	// kind is one of the package sentinels, or nil. It is kept apart from
	// Err so that both the sentinel and the underlying cause stay reachable
	// through errors.Is.
	kind error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Entry != "" {
		fmt.Fprintf(&b, "layer entry %q: ", elide(e.Entry))
	} else {
		b.WriteString("layer: ")
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if h := hint(e.kind); h != "" {
		b.WriteString(" (")
		b.WriteString(h)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel classifying e.
func (e *Error) Is(target error) bool { return e.kind != nil && target == e.kind }

func unsafeEntry(entry, format string, args ...any) *Error {
	return &Error{Entry: entry, Reason: fmt.Sprintf(format, args...), kind: ErrUnsafeEntry}
}

// fsError reports a failure of the filesystem itself (ENOSPC, EPERM when not
// root, ...), which says nothing about the layer, so it carries no sentinel.
func fsError(entry, what string, err error) *Error {
	return &Error{Entry: entry, Reason: what, Err: err}
}

// elide shortens absurdly long entry names (hostile layers use names of
// kilobytes) so that the message stays readable; Entry keeps the full name.
func elide(s string) string {
	const keep = 120
	if len(s) <= 2*keep+16 {
		return s
	}
	return fmt.Sprintf("%s...(%d bytes)...%s", s[:keep], len(s)-2*keep, s[len(s)-keep:])
}
