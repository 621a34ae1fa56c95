package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// maxPathLen bounds entry names. The kernel cannot resolve longer paths in
// one call (PATH_MAX), so no tool that builds images produces them, while a
// name of a million "a/" components would cost Apply a million directory
// opens.
const maxPathLen = 4096

// maxID is the largest usable uid/gid; (uid_t)-1 tells chown to leave the
// owner unchanged, which would silently leave the file owned by root.
const maxID = 1<<32 - 2

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// readFailure marks an error from the layer stream (as opposed to the
// filesystem) that happened while copying an entry's data, so that Apply
// can explain it with the stream's state.
type readFailure struct{ err error }

func (r *readFailure) Error() string { return r.err.Error() }

// dirHandle is an open directory of the layer, reached from the root without
// following any symlink. Entries are created in it by single-component name
// only, so nothing done through it can leave the layer.
type dirHandle struct {
	path string   // cleaned path relative to the root, "." for the root
	root *os.Root // scoped to this directory
	f    *os.File // the same directory, for the *at syscalls os.Root lacks
}

func (h *dirHandle) fd() int { return int(h.f.Fd()) }

func (h *dirHandle) close() {
	h.f.Close()
	h.root.Close()
}

type extractor struct {
	root      *os.Root
	maxSize   int64
	fileBytes int64 // logical size of regular files written so far

	// dirs holds the directories known to be real directories (not
	// symlinks) because this Apply created or checked them, so that each
	// path component is checked once per layer, not once per entry.
	dirs map[string]bool
	// dirTimes are applied at the end: creating entries in a directory
	// changes its mtime.
	dirTimes map[string][2]time.Time
	// cur caches the parent of the last entry; layers list the entries of
	// a directory together, so this saves re-walking nearly every time.
	cur *dirHandle
	buf []byte
}

func newExtractor(root *os.Root, maxSize int64) *extractor {
	return &extractor{
		root:     root,
		maxSize:  maxSize,
		dirs:     map[string]bool{".": true},
		dirTimes: map[string][2]time.Time{},
		buf:      make([]byte, 256<<10),
	}
}

func (x *extractor) close() {
	if x.cur != nil {
		x.cur.close()
		x.cur = nil
	}
}

// cleanPath turns a tar name into a path relative to the layer root. Unlike
// containerd, which reinterprets absolute names and ".." relative to the
// root, it refuses them: no image builder emits them, so they only appear in
// hostile or broken layers.
func cleanPath(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path; layer entries must be relative to the layer root")
	}
	if len(name) > maxPathLen {
		return "", fmt.Errorf("name is longer than %d bytes", maxPathLen)
	}
	parts := make([]string, 0, strings.Count(name, "/")+1)
	depth, dotdot := 0, false
	for p := range strings.SplitSeq(name, "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			dotdot = true
			if depth--; depth < 0 {
				return "", errors.New("path escapes the layer root")
			}
			continue
		}
		depth++
		parts = append(parts, p)
	}
	if dotdot {
		return "", errors.New(`path has a ".." component, which layers never need`)
	}
	if len(parts) == 0 {
		return ".", nil
	}
	return strings.Join(parts, "/"), nil
}

// splitPath splits a cleaned path into its parent and its last component.
func splitPath(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ".", p
	}
	return p[:i], p[i+1:]
}

func joinPath(dir, base string) string {
	if dir == "." {
		return base
	}
	return dir + "/" + base
}

// meta is what a header says about an inode besides its content.
type meta struct {
	uid, gid int
	mode     uint32 // permission bits plus setuid, setgid and sticky
	atime    time.Time
	mtime    time.Time
	xattrs   []xattr
}

func entryMeta(entry string, hdr *tar.Header) (meta, error) {
	if hdr.Uid < 0 || hdr.Uid > maxID || hdr.Gid < 0 || hdr.Gid > maxID {
		return meta{}, unsafeEntry(entry, "owner %d:%d is out of range", hdr.Uid, hdr.Gid)
	}
	xa, err := layerXattrs(entry, hdr)
	if err != nil {
		return meta{}, err
	}
	m := meta{
		uid:    hdr.Uid,
		gid:    hdr.Gid,
		mode:   uint32(hdr.Mode & 0o7777),
		atime:  hdr.AccessTime,
		mtime:  hdr.ModTime,
		xattrs: xa,
	}
	if m.atime.IsZero() {
		m.atime = m.mtime
	}
	return m, nil
}

func (x *extractor) apply(hdr *tar.Header, r io.Reader) error {
	entry := hdr.Name
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		// archive/tar does not apply global PAX records to later entries,
		// and neither does Apply: in practice they carry comments (git
		// archive's commit ID), and a global xattr or path would be a
		// way to smuggle metadata past the per-entry checks.
		return nil
	case tar.TypeChar, tar.TypeBlock:
		return unsafeEntry(entry, "device nodes are not allowed in image layers (the container runtime provides /dev)")
	}

	name, err := cleanPath(hdr.Name)
	if err != nil {
		return unsafeEntry(entry, "%v", err)
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return unsafeEntry(entry, "the layer root can only be a directory")
		}
		return x.rootDir(entry, hdr)
	}
	dir, base := splitPath(name)

	if dir != "." {
		for c := range strings.SplitSeq(dir, "/") {
			if strings.HasPrefix(c, whiteoutMeta) {
				// Inside AUFS metadata (hardlink pools and the like),
				// which means nothing to overlayfs.
				return nil
			}
			if strings.HasPrefix(c, whiteoutPrefix) {
				return unsafeEntry(entry, "whiteout %q cannot contain entries", c)
			}
		}
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return x.whiteout(entry, dir, base)
	}

	m, err := entryMeta(entry, hdr)
	if err != nil {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		return x.regular(entry, dir, base, hdr.Size, m, r)
	case tar.TypeDir:
		return x.directory(entry, dir, base, m)
	case tar.TypeSymlink:
		return x.symlink(entry, dir, base, hdr.Linkname, m)
	case tar.TypeLink:
		return x.hardlink(entry, name, hdr.Linkname)
	case tar.TypeFifo:
		return x.fifo(entry, dir, base, m)
	}
	return unsafeEntry(entry, "unsupported entry type %q", hdr.Typeflag)
}

// dir returns a handle on the cleaned directory path p, creating missing
// directories (mode 0755, root-owned, as Docker and containerd do for
// parents a layer does not list) when create is set.
func (x *extractor) dir(entry, p string, create bool) (*dirHandle, error) {
	if x.cur != nil && x.cur.path == p {
		return x.cur, nil
	}
	h, err := x.walk(entry, p, create)
	if err != nil {
		return nil, err
	}
	x.close()
	x.cur = h
	return h, nil
}

// walk opens p one component at a time, each step scoped to the directory
// before it, so that cost is linear in the depth and no symlink is followed.
func (x *extractor) walk(entry, p string, create bool) (*dirHandle, error) {
	cur, err := x.root.OpenRoot(".")
	if err != nil {
		return nil, fsError(entry, "opening the layer root", err)
	}
	walked := "."
	if p != "." {
		for c := range strings.SplitSeq(p, "/") {
			next := joinPath(walked, c)
			if !x.dirs[next] {
				if err := x.checkDir(entry, cur, next, c, create); err != nil {
					cur.Close()
					return nil, err
				}
			}
			sub, err := cur.OpenRoot(c)
			cur.Close()
			if err != nil {
				return nil, fsError(entry, fmt.Sprintf("opening directory %q", next), err)
			}
			cur, walked = sub, next
		}
	}
	f, err := cur.Open(".")
	if err != nil {
		cur.Close()
		return nil, fsError(entry, fmt.Sprintf("opening directory %q", p), err)
	}
	return &dirHandle{path: p, root: cur, f: f}, nil
}

func (x *extractor) checkDir(entry string, parent *os.Root, path, c string, create bool) error {
	fi, err := parent.Lstat(c)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !create {
			return unsafeEntry(entry, "directory %q does not exist in this layer", path)
		}
		if err := parent.Mkdir(c, 0o755); err != nil {
			return fsError(entry, fmt.Sprintf("creating parent directory %q", path), err)
		}
		// The process umask must not decide the mode of an image's
		// directories.
		if err := parent.Chmod(c, 0o755); err != nil {
			return fsError(entry, fmt.Sprintf("setting the mode of parent directory %q", path), err)
		}
	case err != nil:
		return fsError(entry, fmt.Sprintf("inspecting parent directory %q", path), err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return unsafeEntry(entry, "parent %q is a symbolic link; layer entries must not be written through symlinks", path)
	case !fi.IsDir():
		return unsafeEntry(entry, "parent %q is not a directory", path)
	}
	x.dirs[path] = true
	return nil
}

// forget drops cached knowledge about path and everything below it after it
// has been removed.
func (x *extractor) forget(path string) {
	prefix := path + "/"
	for p := range x.dirs {
		if p == path || strings.HasPrefix(p, prefix) {
			delete(x.dirs, p)
		}
	}
	for p := range x.dirTimes {
		if p == path || strings.HasPrefix(p, prefix) {
			delete(x.dirTimes, p)
		}
	}
	if x.cur != nil && (x.cur.path == path || strings.HasPrefix(x.cur.path, prefix)) {
		x.close()
	}
}

// clear makes room for a new entry base in h: as in tar extraction, a later
// entry replaces an earlier one with the same name, except that a directory
// over a directory merges. It reports whether the existing directory was kept
// and whether the replaced entry was a whiteout, in which case a directory
// taking its place must be opaque to keep hiding the lower layers' one.
func (x *extractor) clear(entry string, h *dirHandle, base string, isDir bool) (kept, wasWhiteout bool, err error) {
	var st unix.Stat_t
	err = unix.Fstatat(h.fd(), base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return false, false, nil
	}
	if err != nil {
		return false, false, fsError(entry, "inspecting the existing entry", err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if isDir {
			return true, false, nil
		}
		if err := h.root.RemoveAll(base); err != nil {
			return false, false, fsError(entry, "removing the directory it replaces", err)
		}
		x.forget(joinPath(h.path, base))
		return false, false, nil
	case unix.S_IFCHR:
		wasWhiteout = st.Rdev == 0
	}
	if err := unix.Unlinkat(h.fd(), base, 0); err != nil {
		return false, false, fsError(entry, "removing the entry it replaces", err)
	}
	return false, wasWhiteout, nil
}

func (x *extractor) rootDir(entry string, hdr *tar.Header) error {
	m, err := entryMeta(entry, hdr)
	if err != nil {
		return err
	}
	h, err := x.dir(entry, ".", true)
	if err != nil {
		return err
	}
	if err := setMetaFd(entry, h.fd(), m); err != nil {
		return err
	}
	x.dirTimes["."] = [2]time.Time{m.atime, m.mtime}
	return nil
}

func (x *extractor) directory(entry, dir, base string, m meta) error {
	h, err := x.dir(entry, dir, true)
	if err != nil {
		return err
	}
	kept, wasWhiteout, err := x.clear(entry, h, base, true)
	if err != nil {
		return err
	}
	if !kept {
		if err := h.root.Mkdir(base, 0o700); err != nil {
			return fsError(entry, "creating directory", err)
		}
	}
	x.dirs[joinPath(dir, base)] = true
	if wasWhiteout {
		m.xattrs = append(m.xattrs, xattr{opaqueXattr, []byte("y")})
	}
	if err := setMetaAt(entry, h, base, m, false); err != nil {
		return err
	}
	x.dirTimes[joinPath(dir, base)] = [2]time.Time{m.atime, m.mtime}
	return nil
}

// fileWriter hides (*os.File).ReadFrom, which for a non-file source falls
// back to io.Copy with a fresh 32 KiB buffer per file.
type fileWriter struct{ f *os.File }

func (w fileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// dataReader tells stream errors apart from write errors during a copy.
type dataReader struct {
	r   io.Reader
	err error
}

func (d *dataReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		d.err = err
	}
	return n, err
}

func (x *extractor) regular(entry, dir, base string, size int64, m meta, r io.Reader) error {
	// A sparse entry expands its holes into zeros, so it can write far more
	// than the stream holds; bound what lands on disk too.
	x.fileBytes += size
	if x.fileBytes > x.maxSize {
		return &Error{Entry: entry, Reason: fmt.Sprintf("regular files add up to more than the %d-byte limit", x.maxSize), kind: ErrTooLarge}
	}
	h, err := x.dir(entry, dir, true)
	if err != nil {
		return err
	}
	if _, _, err := x.clear(entry, h, base, false); err != nil {
		return err
	}
	// O_EXCL (and os.Root's O_NOFOLLOW) guarantee a new inode: never write
	// through a symlink or into a file hardlinked from elsewhere.
	f, err := h.root.OpenFile(base, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fsError(entry, "creating file", err)
	}
	dr := &dataReader{r: r}
	if _, err := io.CopyBuffer(fileWriter{f}, dr, x.buf); err != nil {
		f.Close()
		if dr.err != nil {
			return &readFailure{dr.err}
		}
		return fsError(entry, "writing file", err)
	}
	if err := setMetaFd(entry, int(f.Fd()), m); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fsError(entry, "writing file", err)
	}
	return setTimesAt(entry, h, base, m)
}

func (x *extractor) symlink(entry, dir, base, target string, m meta) error {
	// The target is only text here: it is resolved inside the container's
	// root at run time, and Apply never follows it.
	h, err := x.dir(entry, dir, true)
	if err != nil {
		return err
	}
	if _, _, err := x.clear(entry, h, base, false); err != nil {
		return err
	}
	if err := h.root.Symlink(target, base); err != nil {
		return fsError(entry, "creating symlink", err)
	}
	if err := setMetaAt(entry, h, base, m, true); err != nil {
		return err
	}
	return setTimesAt(entry, h, base, m)
}

func (x *extractor) fifo(entry, dir, base string, m meta) error {
	h, err := x.dir(entry, dir, true)
	if err != nil {
		return err
	}
	if _, _, err := x.clear(entry, h, base, false); err != nil {
		return err
	}
	if err := unix.Mknodat(h.fd(), base, unix.S_IFIFO|0o600, 0); err != nil {
		return fsError(entry, "creating fifo", err)
	}
	if err := setMetaAt(entry, h, base, m, false); err != nil {
		return err
	}
	return setTimesAt(entry, h, base, m)
}

// hardlink links name to an earlier entry of the same layer. The link's own
// header metadata is ignored: owner, mode, times and xattrs belong to the
// shared inode and were set by the target's entry.
func (x *extractor) hardlink(entry, name, linkname string) error {
	target, err := cleanPath(linkname)
	if err != nil {
		return unsafeEntry(entry, "hardlink target %q: %v", linkname, err)
	}
	if target == "." {
		return unsafeEntry(entry, "hardlink to the layer root")
	}
	if target == name {
		return nil
	}
	tdir, tbase := splitPath(target)
	th, err := x.walk(entry, tdir, false)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.kind == ErrUnsafeEntry {
			e.Reason = fmt.Sprintf("hardlink target %q: %s", linkname, e.Reason)
		}
		return err
	}
	defer th.close()
	var st unix.Stat_t
	switch err := unix.Fstatat(th.fd(), tbase, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
		return unsafeEntry(entry, "hardlink target %q is not an earlier entry of this layer", linkname)
	case err != nil:
		return fsError(entry, fmt.Sprintf("inspecting hardlink target %q", linkname), err)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return unsafeEntry(entry, "hardlink target %q is a directory", linkname)
	case st.Mode&unix.S_IFMT == unix.S_IFCHR:
		// The only character devices in a layer are whiteouts, and a
		// link to one would be a whiteout under another name.
		return unsafeEntry(entry, "hardlink target %q is a whiteout", linkname)
	}

	dir, base := splitPath(name)
	h, err := x.dir(entry, dir, true)
	if err != nil {
		return err
	}
	if _, _, err := x.clear(entry, h, base, false); err != nil {
		return err
	}
	if err := unix.Linkat(th.fd(), tbase, h.fd(), base, 0); err != nil {
		return fsError(entry, fmt.Sprintf("creating hardlink to %q", linkname), err)
	}
	return nil
}

// whiteout converts an OCI whiteout into its overlayfs form.
func (x *extractor) whiteout(entry, dir, base string) error {
	if base == whiteoutOpaque {
		h, err := x.dir(entry, dir, true)
		if err != nil {
			return err
		}
		if err := unix.Fsetxattr(h.fd(), opaqueXattr, []byte("y"), 0); err != nil {
			return fsError(entry, "marking the directory opaque", err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // AUFS metadata
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return unsafeEntry(entry, "whiteout names no file (%q)", name)
	}
	h, err := x.dir(entry, dir, true)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	switch err := unix.Fstatat(h.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
		if err := unix.Mknodat(h.fd(), name, unix.S_IFCHR, 0); err != nil {
			return fsError(entry, "creating the overlayfs whiteout", err)
		}
	case err != nil:
		return fsError(entry, "inspecting the whited-out entry", err)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		// The whiteout hides the lower layers' directory while this
		// layer's own one stays: that is an opaque directory.
		if err := unix.Lsetxattr(procPath(h, name), opaqueXattr, []byte("y"), 0); err != nil {
			return fsError(entry, "marking the directory opaque", err)
		}
	default:
		// A non-directory of this layer already hides the lower one.
	}
	return nil
}

// procPath names base in h for syscalls that have no *at form (lsetxattr):
// the kernel resolves /proc/self/fd/N to the directory itself, and the final
// component is not followed.
func procPath(h *dirHandle, base string) string {
	return fmt.Sprintf("/proc/self/fd/%d/%s", h.fd(), base)
}

// setMetaFd applies ownership, mode and xattrs through an open descriptor.
// The order matters: chown clears setuid/setgid and file capabilities, so
// chmod and the xattrs come after it.
func setMetaFd(entry string, fd int, m meta) error {
	if err := unix.Fchown(fd, m.uid, m.gid); err != nil {
		return fsError(entry, "setting owner", err)
	}
	if err := unix.Fchmod(fd, m.mode); err != nil {
		return fsError(entry, "setting mode", err)
	}
	for _, xa := range m.xattrs {
		if err := unix.Fsetxattr(fd, xa.name, xa.value, 0); err != nil {
			return fsError(entry, fmt.Sprintf("setting xattr %q", xa.name), err)
		}
	}
	return nil
}

// setMetaAt is setMetaFd for entries that cannot be opened for it (symlinks,
// fifos) or need not be (directories).
func setMetaAt(entry string, h *dirHandle, base string, m meta, isSymlink bool) error {
	if err := unix.Fchownat(h.fd(), base, m.uid, m.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fsError(entry, "setting owner", err)
	}
	// Symlink modes mean nothing on Linux and cannot be changed.
	if !isSymlink {
		if err := unix.Fchmodat(h.fd(), base, m.mode, 0); err != nil {
			return fsError(entry, "setting mode", err)
		}
	}
	for _, xa := range m.xattrs {
		if err := unix.Lsetxattr(procPath(h, base), xa.name, xa.value, 0); err != nil {
			return fsError(entry, fmt.Sprintf("setting xattr %q", xa.name), err)
		}
	}
	return nil
}

func setTimesAt(entry string, h *dirHandle, base string, m meta) error {
	ts, err := timespecs(m)
	if err != nil {
		return fsError(entry, "setting times", err)
	}
	if err := unix.UtimesNanoAt(h.fd(), base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fsError(entry, "setting times", err)
	}
	return nil
}

func timespecs(m meta) ([]unix.Timespec, error) {
	at, err := unix.TimeToTimespec(m.atime)
	if err != nil {
		return nil, err
	}
	mt, err := unix.TimeToTimespec(m.mtime)
	if err != nil {
		return nil, err
	}
	return []unix.Timespec{at, mt}, nil
}

// finish sets directory times, now that nothing more will be created in
// them.
func (x *extractor) finish() error {
	x.close()
	for p, t := range x.dirTimes {
		// x.dirTimes only holds paths that are still directories of this
		// layer (see forget), so following the path is safe.
		if err := x.root.Chtimes(p, t[0], t[1]); err != nil {
			return fsError(p, "setting directory times", err)
		}
	}
	return nil
}
