package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// requireRoot skips tests that create files owned by other users, whiteout
// device nodes and trusted.* xattrs: all of that needs a real root.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("Apply needs root (chown, mknod of whiteouts, trusted.overlay.* xattrs)")
	}
}

// entry is one tar member of a test layer.
type entry struct {
	hdr  tar.Header
	body string
}

func file(name string, mode int64, body string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}, body: body}
}

func dirent(name string, mode int64) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}}
}

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}

func withXattr(e entry, name, value string) entry {
	if e.hdr.PAXRecords == nil {
		e.hdr.PAXRecords = map[string]string{}
	}
	e.hdr.PAXRecords["SCHILY.xattr."+name] = value
	return e
}

func buildTar(tb testing.TB, entries ...entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if len(h.PAXRecords) > 0 {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			tb.Fatalf("WriteHeader(%q) = %v, want nil", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			tb.Fatalf("Write(%q) = %v, want nil", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatalf("tar Close() = %v, want nil", err)
	}
	return buf.Bytes()
}

func gzipped(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(tb testing.TB, b []byte) []byte {
	tb.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

func sha(b []byte) digest.Digest {
	sum := sha256.Sum256(b)
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(sum[:]))
}

// capNetRaw is a VFS_CAP_REVISION_2 security.capability value granting
// cap_net_raw (bit 13), effective.
func capNetRaw() string {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|0x1)
	binary.LittleEndian.PutUint32(b[4:], 1<<13)
	return string(b)
}

func newLayerDir(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "diff")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

var (
	t1 = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	t2 = time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC)
	t3 = time.Date(2019, 11, 12, 13, 14, 15, 0, time.UTC)
)

func goodLayer(tb testing.TB) []byte {
	at := func(e entry, mt time.Time) entry { e.hdr.ModTime = mt; return e }
	owned := func(e entry, uid, gid int) entry { e.hdr.Uid, e.hdr.Gid = uid, gid; return e }
	return buildTar(tb,
		at(dirent("./", 0o755), t1),
		at(dirent("./bin/", 0o755), t2),
		at(file("./bin/tool", 0o4755, "#!/bin/sh\necho tool\n"), t1),
		at(withXattr(file("bin/ping", 0o755, "ping"), "security.capability", capNetRaw()), t1),
		hardlink("bin/tool-again", "./bin/tool"),
		at(symlink("bin/sh", "/bin/busybox"), t3),
		at(symlink("lib", "../../usr/lib"), t3),
		at(owned(dirent("home/user/", 0o700), 1000, 1000), t3),
		at(owned(withXattr(withXattr(file("home/user/notes.txt", 0o640, "hello"),
			"user.foo", "bar"), "security.selinux", "system_u:object_r:etc_t:s0"), 1000, 1000), t2),
		at(owned(dirent("srv/shared/", 0o2775), 0, 1000), t1),
		at(dirent("tmp", 0o1777), t1),
		at(owned(entry{hdr: tar.Header{Name: "run/ctl.fifo", Typeflag: tar.TypeFifo, Mode: 0o620}}, 1000, 1000), t2),
		at(file("etc/motd", 0o644, "old"), t1),
		at(file("etc/motd", 0o600, "new"), t2),
		at(file("etc/thing", 0o644, "a file at first"), t1),
		at(dirent("etc/thing/", 0o750), t2),
		at(file("etc/thing/inner", 0o644, ""), t1),
		at(dirent("etc/gone/", 0o755), t1),
		at(file("etc/gone/x", 0o644, "x"), t1),
		at(symlink("etc/gone", "motd"), t3),
		at(dirent("etc", 0o755), t3),
	)
}

type want struct {
	mode     fs.FileMode
	uid, gid uint32
	content  string // regular files
	target   string // symlinks
	mtime    time.Time
	xattrs   map[string]string // exactly the xattrs expected
	sameAs   string            // another path with the same inode
}

func checkTree(t *testing.T, dir string, wants map[string]want) {
	t.Helper()
	var got []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("WalkDir(%s) = %v", p, err)
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		got = append(got, rel)
		return nil
	})
	var names []string
	for n := range wants {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("tree = %q, want %q", got, names)
	}
	for _, name := range names {
		w := wants[name]
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("Lstat(%s) = %v", name, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != w.mode {
			t.Errorf("Lstat(%s).Mode() = %v, want %v", name, fi.Mode(), w.mode)
		}
		if st.Uid != w.uid || st.Gid != w.gid {
			t.Errorf("Lstat(%s) owner = %d:%d, want %d:%d", name, st.Uid, st.Gid, w.uid, w.gid)
		}
		if !w.mtime.IsZero() && !fi.ModTime().Equal(w.mtime) {
			t.Errorf("Lstat(%s).ModTime() = %v, want %v", name, fi.ModTime().UTC(), w.mtime)
		}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil || string(b) != w.content {
				t.Errorf("ReadFile(%s) = %q, %v; want %q, nil", name, b, err, w.content)
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			if l, err := os.Readlink(p); l != w.target {
				t.Errorf("Readlink(%s) = %q, %v; want %q, nil", name, l, err, w.target)
			}
		case fi.Mode()&fs.ModeCharDevice != 0:
			if st.Rdev != 0 {
				t.Errorf("Lstat(%s).Rdev = %#x, want 0 (overlayfs whiteout)", name, st.Rdev)
			}
		}
		if w.sameAs != "" {
			other, err := os.Lstat(filepath.Join(dir, w.sameAs))
			if err != nil || !os.SameFile(fi, other) {
				t.Errorf("SameFile(%s, %s) = false (%v), want true", name, w.sameAs, err)
			}
		}
		if gx := xattrs(t, p); !mapsEqual(gx, w.xattrs) {
			t.Errorf("xattrs(%s) = %q, want %q", name, gx, w.xattrs)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func xattrs(t *testing.T, p string) map[string]string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("Llistxattr(%s) = %v", p, err)
	}
	var out map[string]string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 4096)
		vn, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("Lgetxattr(%s, %s) = %v", p, name, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(v[:vn])
	}
	return out
}

func TestApplyGoodLayer(t *testing.T) {
	requireRoot(t)
	plain := goodLayer(t)
	wants := map[string]want{
		".":                   {mode: fs.ModeDir | 0o755, mtime: t1},
		"bin":                 {mode: fs.ModeDir | 0o755, mtime: t2},
		"bin/tool":            {mode: fs.ModeSetuid | 0o755, content: "#!/bin/sh\necho tool\n", mtime: t1},
		"bin/tool-again":      {mode: fs.ModeSetuid | 0o755, content: "#!/bin/sh\necho tool\n", mtime: t1, sameAs: "bin/tool"},
		"bin/ping":            {mode: 0o755, content: "ping", mtime: t1, xattrs: map[string]string{"security.capability": capNetRaw()}},
		"bin/sh":              {mode: fs.ModeSymlink | 0o777, target: "/bin/busybox", mtime: t3},
		"lib":                 {mode: fs.ModeSymlink | 0o777, target: "../../usr/lib", mtime: t3},
		"home":                {mode: fs.ModeDir | 0o755},
		"home/user":           {mode: fs.ModeDir | 0o700, uid: 1000, gid: 1000, mtime: t3},
		"home/user/notes.txt": {mode: 0o640, uid: 1000, gid: 1000, content: "hello", mtime: t2, xattrs: map[string]string{"user.foo": "bar"}},
		"srv":                 {mode: fs.ModeDir | 0o755},
		"srv/shared":          {mode: fs.ModeDir | fs.ModeSetgid | 0o775, gid: 1000, mtime: t1},
		"tmp":                 {mode: fs.ModeDir | fs.ModeSticky | 0o777, mtime: t1},
		"run":                 {mode: fs.ModeDir | 0o755},
		"run/ctl.fifo":        {mode: fs.ModeNamedPipe | 0o620, uid: 1000, gid: 1000, mtime: t2},
		"etc":                 {mode: fs.ModeDir | 0o755, mtime: t3},
		"etc/motd":            {mode: 0o600, content: "new", mtime: t2},
		"etc/thing":           {mode: fs.ModeDir | 0o750, mtime: t2},
		"etc/thing/inner":     {mode: 0o644, mtime: t1},
		"etc/gone":            {mode: fs.ModeSymlink | 0o777, target: "motd", mtime: t3},
	}

	variants := []struct {
		name string
		blob []byte
	}{
		{"plain", plain},
		{"gzip", gzipped(t, plain)},
		{"zstd", zstded(t, plain)},
	}
	var snapshots []string
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			dir := newLayerDir(t)
			res, err := Apply(context.Background(), dir, bytes.NewReader(v.blob))
			if err != nil {
				t.Fatalf("Apply(%s) = %v, want nil", v.name, err)
			}
			if want := sha(plain); res.DiffID != want {
				t.Errorf("Apply(%s).DiffID = %s, want %s", v.name, res.DiffID, want)
			}
			if res.Size != int64(len(plain)) {
				t.Errorf("Apply(%s).Size = %d, want %d", v.name, res.Size, len(plain))
			}
			checkTree(t, dir, wants)
			snapshots = append(snapshots, snapshot(t, dir))
		})
	}
	for i := 1; i < len(snapshots); i++ {
		if snapshots[i] != snapshots[0] {
			t.Errorf("tree from %s differs from plain:\n%s\nwant:\n%s", variants[i].name, snapshots[i], snapshots[0])
		}
	}
}

// snapshot describes a tree in enough detail that two extractions can be
// compared wholesale.
func snapshot(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		fi, _ := os.Lstat(p)
		st := fi.Sys().(*syscall.Stat_t)
		mtime := fi.ModTime().UnixNano()
		if time.Since(fi.ModTime()) < time.Hour {
			mtime = 0 // an implicit parent, created "now"
		}
		fmt.Fprintf(&b, "%s %v %d:%d n=%d size=%d mtime=%d rdev=%d", rel, fi.Mode(), st.Uid, st.Gid, st.Nlink, fi.Size(), mtime, st.Rdev)
		if fi.Mode().IsRegular() {
			c, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %s", sha(c))
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", l)
		}
		fmt.Fprintf(&b, " %q\n", xattrs(t, p))
		return nil
	})
	return b.String()
}

func TestApplyWhiteouts(t *testing.T) {
	requireRoot(t)
	plain := buildTar(t,
		file("a/.wh.b", 0o644, ""),
		file("c/.wh..wh..opq", 0o644, ""),
		dirent("d/", 0o755),
		file("d/.wh..wh..opq", 0o644, ""),
		file("d/keep", 0o644, "k"),
		file(".wh.top", 0o644, ""),
		// A directory replacing a whiteout must stay opaque, or the lower
		// layers' directory would show through it.
		file("e/.wh.f", 0o644, ""),
		dirent("e/f/", 0o755),
		// A whiteout for a directory of this same layer: this layer's
		// content stays, the lower layers' is hidden.
		dirent("g/h/", 0o755),
		file("g/.wh.h", 0o644, ""),
		// A whiteout for a file of this same layer changes nothing.
		file("i/j", 0o644, "j"),
		file("i/.wh.j", 0o644, ""),
		// AUFS metadata is skipped, parents included.
		dirent(".wh..wh.plnk/", 0o700),
		file(".wh..wh.plnk/123.456", 0o644, "x"),
		file("k/.wh..wh.aufs", 0o644, ""),
	)
	dir := newLayerDir(t)
	if _, err := Apply(context.Background(), dir, bytes.NewReader(plain)); err != nil {
		t.Fatalf("Apply() = %v, want nil", err)
	}
	opaque := map[string]string{"trusted.overlay.opaque": "y"}
	wh := fs.ModeDevice | fs.ModeCharDevice
	checkTree(t, dir, map[string]want{
		".":      {mode: fs.ModeDir | 0o755},
		"a":      {mode: fs.ModeDir | 0o755},
		"a/b":    {mode: wh},
		"c":      {mode: fs.ModeDir | 0o755, xattrs: opaque},
		"d":      {mode: fs.ModeDir | 0o755, xattrs: opaque},
		"d/keep": {mode: 0o644, content: "k"},
		"top":    {mode: wh},
		"e":      {mode: fs.ModeDir | 0o755},
		"e/f":    {mode: fs.ModeDir | 0o755, xattrs: opaque},
		"g":      {mode: fs.ModeDir | 0o755},
		"g/h":    {mode: fs.ModeDir | 0o755, xattrs: opaque},
		"i":      {mode: fs.ModeDir | 0o755},
		"i/j":    {mode: 0o644, content: "j"},
	})
}

// rawHeader builds a ustar header block by hand, for what archive/tar's
// writer refuses to produce (PAX sparse headers).
func rawHeader(name string, typeflag byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], fmt.Sprintf("%011o\x00", 0))
	b[156] = typeflag
	copy(b[257:], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padBlock(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec) + 1
	for len(fmt.Sprint(n))+len(rec) != n {
		n++
	}
	return fmt.Sprint(n) + rec
}

// sparseLayer is a GNU PAX 1.0 sparse file of realSize bytes, all hole, in a
// stream of a few blocks.
func sparseLayer(realSize int64) []byte {
	pax := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", "big") + paxRecord("GNU.sparse.realsize", fmt.Sprint(realSize))
	var out []byte
	out = append(out, rawHeader("PaxHeaders/big", 'x', int64(len(pax)))...)
	out = append(out, padBlock([]byte(pax))...)
	spmap := padBlock([]byte("1\n0\n0\n"))
	out = append(out, rawHeader("GNUSparseFile.0/big", '0', int64(len(spmap)))...)
	out = append(out, spmap...)
	return append(out, make([]byte, 1024)...)
}

func TestApplySparse(t *testing.T) {
	requireRoot(t)
	plain := sparseLayer(8192)
	dir := newLayerDir(t)
	res, err := Apply(context.Background(), dir, bytes.NewReader(plain))
	if err != nil {
		t.Fatalf("Apply(sparse) = %v, want nil", err)
	}
	if res.DiffID != sha(plain) {
		t.Errorf("Apply(sparse).DiffID = %s, want %s", res.DiffID, sha(plain))
	}
	b, err := os.ReadFile(filepath.Join(dir, "big"))
	if err != nil || !bytes.Equal(b, make([]byte, 8192)) {
		t.Errorf("ReadFile(big) = %d bytes, %v; want 8192 zero bytes, nil", len(b), err)
	}
}

func TestApplyHostile(t *testing.T) {
	requireRoot(t)
	tok := fmt.Sprintf("sigil-archive-escape-%d", os.Getpid())
	bomb := buildTar(t, file("zeros", 0o644, string(make([]byte, 10<<20))))
	good := buildTar(t, file("a", 0o644, strings.Repeat("data ", 1000)), file("b", 0o644, "b"))
	gz := gzipped(t, good)
	badCRC := slices.Clone(gz)
	badCRC[len(badCRC)-8] ^= 0xff
	// A zstd frame header asking for a 2 GiB window (Window_Descriptor
	// exponent 21), followed by an empty last raw block.
	bigWindow := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3, 0x01, 0x00, 0x00}

	tests := []struct {
		name  string
		blob  []byte
		opts  []ApplyOption
		want  error
		entry string // the entry the message must name, if any
		text  string // more text the message must contain
	}{
		{name: "dotdot", blob: buildTar(t, file("../"+tok, 0o644, "x")), want: ErrUnsafeEntry, entry: "../" + tok, text: "escapes the layer root"},
		{name: "nested dotdot", blob: buildTar(t, file("a/../../"+tok, 0o644, "x")), want: ErrUnsafeEntry, entry: "a/../../" + tok, text: "escapes"},
		{name: "inner dotdot", blob: buildTar(t, file("a/../"+tok, 0o644, "x")), want: ErrUnsafeEntry, entry: "a/../" + tok},
		{name: "absolute", blob: buildTar(t, file("/etc/"+tok, 0o644, "x")), want: ErrUnsafeEntry, entry: "/etc/" + tok, text: "absolute"},
		{name: "absolute tmp", blob: buildTar(t, file("/tmp/"+tok, 0o644, "x")), want: ErrUnsafeEntry, entry: "/tmp/" + tok},
		{name: "symlink to slash", blob: buildTar(t, symlink("l", "/"), file("l/"+tok, 0o644, "x")), want: ErrUnsafeEntry, entry: "l/" + tok, text: "symbolic link"},
		{name: "symlink to tmp", blob: buildTar(t, symlink("l", "/tmp"), file("l/"+tok, 0o644, "x")), want: ErrUnsafeEntry, entry: "l/" + tok},
		{name: "symlink up", blob: buildTar(t, symlink("l", "../.."), file("l/"+tok, 0o644, "x")), want: ErrUnsafeEntry, entry: "l/" + tok},
		{name: "symlink up dir", blob: buildTar(t, symlink("l", ".."), dirent("l/"+tok+"/", 0o755)), want: ErrUnsafeEntry, entry: "l/" + tok + "/"},
		{name: "symlink chain", blob: buildTar(t, symlink("a", "b"), symlink("b", "/"), file("a/"+tok, 0o644, "x")), want: ErrUnsafeEntry, entry: "a/" + tok},
		{name: "symlink inside layer", blob: buildTar(t, dirent("real/", 0o755), symlink("l", "real"), file("l/x", 0o644, "x")), want: ErrUnsafeEntry, entry: "l/x"},
		{name: "symlink then whiteout", blob: buildTar(t, symlink("l", "/tmp"), file("l/.wh."+tok, 0o644, "")), want: ErrUnsafeEntry, entry: "l/.wh." + tok},
		{name: "symlink then opaque", blob: buildTar(t, symlink("l", "/tmp"), file("l/.wh..wh..opq", 0o644, "")), want: ErrUnsafeEntry, entry: "l/.wh..wh..opq"},
		{name: "hardlink absolute", blob: buildTar(t, hardlink("pw", "/etc/passwd")), want: ErrUnsafeEntry, entry: "pw", text: "/etc/passwd"},
		{name: "hardlink outside", blob: buildTar(t, hardlink("s", "../sentinel")), want: ErrUnsafeEntry, entry: "s", text: "../sentinel"},
		{name: "hardlink through symlink", blob: buildTar(t, symlink("l", "/etc"), hardlink("pw", "l/passwd")), want: ErrUnsafeEntry, entry: "pw", text: "symbolic link"},
		{name: "hardlink through dotdot symlink", blob: buildTar(t, symlink("l", ".."), hardlink("s", "l/sentinel")), want: ErrUnsafeEntry, entry: "s"},
		{name: "hardlink missing", blob: buildTar(t, hardlink("x", "nope")), want: ErrUnsafeEntry, entry: "x", text: "not an earlier entry"},
		{name: "hardlink to directory", blob: buildTar(t, dirent("d/", 0o755), hardlink("x", "d")), want: ErrUnsafeEntry, entry: "x", text: "directory"},
		{name: "hardlink to whiteout", blob: buildTar(t, file(".wh.w", 0o644, ""), hardlink("x", "w")), want: ErrUnsafeEntry, entry: "x", text: "whiteout"},
		{name: "whiteout dotdot", blob: buildTar(t, file(".wh...", 0o644, "")), want: ErrUnsafeEntry, entry: ".wh...", text: "whiteout"},
		{name: "whiteout dot", blob: buildTar(t, file("a/.wh..", 0o644, "")), want: ErrUnsafeEntry, entry: "a/.wh.."},
		{name: "whiteout empty", blob: buildTar(t, file("a/.wh.", 0o644, "")), want: ErrUnsafeEntry, entry: "a/.wh."},
		{name: "whiteout escaping", blob: buildTar(t, file("../.wh."+tok, 0o644, "")), want: ErrUnsafeEntry, entry: "../.wh." + tok},
		{name: "whiteout with children", blob: buildTar(t, file(".wh.x/"+tok, 0o644, "")), want: ErrUnsafeEntry, entry: ".wh.x/" + tok},
		{name: "char device", blob: buildTar(t, entry{hdr: tar.Header{Name: "dev/mem", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 1}}), want: ErrUnsafeEntry, entry: "dev/mem", text: "device nodes"},
		{name: "block device", blob: buildTar(t, entry{hdr: tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 8}}), want: ErrUnsafeEntry, entry: "dev/sda", text: "device nodes"},
		{name: "forged whiteout device", blob: buildTar(t, entry{hdr: tar.Header{Name: "etc", Typeflag: tar.TypeChar}}), want: ErrUnsafeEntry, entry: "etc"},
		{name: "trusted.overlay.opaque", blob: buildTar(t, withXattr(dirent("d/", 0o755), "trusted.overlay.opaque", "y")), want: ErrUnsafeEntry, entry: "d/", text: "trusted.overlay.opaque"},
		{name: "trusted.overlay.redirect", blob: buildTar(t, withXattr(dirent("d/", 0o755), "trusted.overlay.redirect", "/etc")), want: ErrUnsafeEntry, entry: "d/"},
		{name: "trusted.overlay.metacopy", blob: buildTar(t, withXattr(file("f", 0o644, ""), "trusted.overlay.metacopy", "")), want: ErrUnsafeEntry, entry: "f"},
		{name: "trusted other", blob: buildTar(t, withXattr(file("f", 0o644, ""), "trusted.foo", "1")), want: ErrUnsafeEntry, entry: "f", text: "trusted.foo"},
		{name: "user.overlay", blob: buildTar(t, withXattr(dirent("d/", 0o755), "user.overlay.opaque", "y")), want: ErrUnsafeEntry, entry: "d/"},
		{name: "security.ima", blob: buildTar(t, withXattr(file("f", 0o644, ""), "security.ima", "\x03")), want: ErrUnsafeEntry, entry: "f"},
		{name: "unknown xattr namespace", blob: buildTar(t, withXattr(file("f", 0o644, ""), "os2.ea", "1")), want: ErrUnsafeEntry, entry: "f"},
		{name: "uid -1", blob: buildTar(t, entry{hdr: tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1<<32 - 1}}), want: ErrUnsafeEntry, entry: "f", text: "owner"},
		{name: "root as file", blob: buildTar(t, file(".", 0o644, "")), want: ErrUnsafeEntry, entry: "."},
		{name: "long name", blob: buildTar(t, file(strings.Repeat("a/", 2100)+"f", 0o644, "")), want: ErrUnsafeEntry, text: "bytes).../a/a/"},
		{name: "unknown type", blob: buildTar(t, entry{hdr: tar.Header{Name: "v", Typeflag: 'Z'}}), want: ErrUnsafeEntry, entry: "v", text: "unsupported entry type"},
		{name: "gzip bomb", blob: gzipped(t, bomb), opts: []ApplyOption{WithMaxSize(1 << 20)}, want: ErrTooLarge, text: "1048576"},
		{name: "gzip bomb in padding", blob: gzipped(t, append(slices.Clone(good), make([]byte, 10<<20)...)), opts: []ApplyOption{WithMaxSize(1 << 20)}, want: ErrTooLarge, text: "uncompressed layer is larger"},
		{name: "zstd bomb", blob: zstded(t, bomb), opts: []ApplyOption{WithMaxSize(1 << 20)}, want: ErrTooLarge},
		{name: "plain over limit", blob: good, opts: []ApplyOption{WithMaxSize(int64(len(good)) - 1)}, want: ErrTooLarge},
		{name: "sparse bomb", blob: sparseLayer(10 << 20), opts: []ApplyOption{WithMaxSize(1 << 20)}, want: ErrTooLarge, entry: "big"},
		{name: "zstd huge window", blob: bigWindow, want: ErrUnsupportedCompression, text: "window"},
		{name: "truncated gzip", blob: gz[:len(gz)/2], want: ErrCorrupt, text: "gzip"},
		{name: "gzip bad checksum", blob: badCRC, want: ErrCorrupt, text: "gzip"},
		{name: "gzip trailing garbage", blob: append(slices.Clone(gz), "garbage!"...), want: ErrCorrupt},
		{name: "truncated zstd", blob: func() []byte { z := zstded(t, good); return z[:len(z)-10] }(), want: ErrCorrupt, text: "zstd"},
		{name: "truncated tar in data", blob: good[:512+100], want: ErrCorrupt, entry: "a", text: "truncated"},
		{name: "truncated tar in header", blob: good[:300], want: ErrCorrupt},
		{name: "truncated tar at block", blob: good[:len(good)-1024], want: ErrCorrupt, text: "end-of-archive"},
		{name: "empty stream", blob: nil, want: ErrCorrupt, text: "empty"},
		{name: "garbage", blob: bytes.Repeat([]byte("this is not a tar archive, honest. "), 100), want: ErrCorrupt, text: "not a tar archive"},
		{name: "bzip2", blob: append([]byte("BZh91AY&SY"), make([]byte, 100)...), want: ErrUnsupportedCompression, text: "bzip2"},
		{name: "xz", blob: append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, make([]byte, 100)...), want: ErrUnsupportedCompression, text: "xz"},
	}

	passwdBefore, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// top/parent/{diff,sentinel}: escapes by one or two levels
			// land in parent or top, which must not change.
			top := t.TempDir()
			parent := filepath.Join(top, "parent")
			dir := filepath.Join(parent, "diff")
			sentinel := filepath.Join(parent, "sentinel")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(sentinel, []byte("sentinel"), 0o600); err != nil {
				t.Fatal(err)
			}

			_, err := Apply(context.Background(), dir, bytes.NewReader(tc.blob), tc.opts...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Apply(%s) = %v, want %v", tc.name, err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("Apply(%s) error type = %T, want *Error", tc.name, err)
			}
			msg := err.Error()
			if tc.entry != "" && !strings.Contains(msg, fmt.Sprintf("layer entry %q", tc.entry)) {
				t.Errorf("Apply(%s) = %q, want it to name entry %q", tc.name, msg, tc.entry)
			}
			if tc.text != "" && !strings.Contains(msg, tc.text) {
				t.Errorf("Apply(%s) = %q, want it to mention %q", tc.name, msg, tc.text)
			}

			assertDir(t, top, "parent")
			assertDir(t, parent, "diff", "sentinel")
			if b, err := os.ReadFile(sentinel); string(b) != "sentinel" || err != nil {
				t.Errorf("ReadFile(sentinel) = %q, %v; want %q, nil", b, err, "sentinel")
			}
			var st unix.Stat_t
			if err := unix.Lstat(sentinel, &st); err != nil || st.Nlink != 1 || st.Mode&0o7777 != 0o600 || st.Uid != 0 {
				t.Errorf("Lstat(sentinel) = nlink %d mode %o uid %d, %v; want 1, 600, 0, nil", st.Nlink, st.Mode&0o7777, st.Uid, err)
			}
			for _, p := range []string{"/" + tok, "/tmp/" + tok, "/etc/" + tok} {
				if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
					os.RemoveAll(p)
					t.Errorf("Lstat(%s) = %v, want ErrNotExist (written outside the layer)", p, err)
				}
			}
			if b, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(b, passwdBefore) {
				t.Errorf("/etc/passwd changed")
			}
		})
	}
}

func assertDir(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("ReadDir(%s) = %q, want %q", dir, got, want)
	}
}

// Replacing an entry never writes through what was there: a symlink (even
// one pointing outside) is removed, not followed, and a hardlink to a
// symlink links the symlink itself.
func TestApplyReplaceSymlink(t *testing.T) {
	requireRoot(t)
	tok := fmt.Sprintf("/tmp/sigil-archive-replace-%d", os.Getpid())
	plain := buildTar(t,
		symlink("l", tok),
		file("l", 0o644, "replaced"),
		symlink("pw", "/etc/passwd"),
		hardlink("pw2", "pw"),
		file("shared", 0o644, "original"),
		hardlink("other", "shared"),
		file("other", 0o644, "new"),
	)
	dir := newLayerDir(t)
	if _, err := Apply(context.Background(), dir, bytes.NewReader(plain)); err != nil {
		t.Fatalf("Apply() = %v, want nil", err)
	}
	if _, err := os.Lstat(tok); !errors.Is(err, fs.ErrNotExist) {
		os.Remove(tok)
		t.Errorf("Lstat(%s) = %v, want ErrNotExist", tok, err)
	}
	checkTree(t, dir, map[string]want{
		".":      {mode: fs.ModeDir | 0o755},
		"l":      {mode: 0o644, content: "replaced"},
		"pw":     {mode: fs.ModeSymlink | 0o777, target: "/etc/passwd"},
		"pw2":    {mode: fs.ModeSymlink | 0o777, target: "/etc/passwd", sameAs: "pw"},
		"shared": {mode: 0o644, content: "original"},
		"other":  {mode: 0o644, content: "new"},
	})
}

func TestApplyMaxSizeBoundary(t *testing.T) {
	requireRoot(t)
	plain := buildTar(t, file("f", 0o644, "content"))
	dir := newLayerDir(t)
	res, err := Apply(context.Background(), dir, bytes.NewReader(gzipped(t, plain)), WithMaxSize(int64(len(plain))))
	if err != nil || res.Size != int64(len(plain)) {
		t.Errorf("Apply(WithMaxSize(len)) = %d, %v; want %d, nil", res.Size, err, len(plain))
	}
	if _, err := Apply(context.Background(), newLayerDir(t), bytes.NewReader(plain), WithMaxSize(math.MaxInt64)); err != nil {
		t.Errorf("Apply(WithMaxSize(MaxInt64)) = %v, want nil", err)
	}
	_, err = Apply(context.Background(), newLayerDir(t), bytes.NewReader(plain), WithMaxSize(0))
	if err == nil {
		t.Errorf("Apply(WithMaxSize(0)) = nil, want error")
	}
}

// The diff ID covers the whole stream, including the padding GNU tar adds
// after the end marker.
func TestApplyTrailingPadding(t *testing.T) {
	requireRoot(t)
	plain := append(buildTar(t, file("f", 0o644, "x")), make([]byte, 8192)...)
	for _, blob := range [][]byte{plain, gzipped(t, plain)} {
		res, err := Apply(context.Background(), newLayerDir(t), bytes.NewReader(blob))
		if err != nil || res.DiffID != sha(plain) || res.Size != int64(len(plain)) {
			t.Errorf("Apply(padded) = %s/%d, %v; want %s/%d, nil", res.DiffID, res.Size, err, sha(plain), len(plain))
		}
	}
}

// Docker's empty layer is 1024 zero bytes: just the end marker.
func TestApplyEmptyLayer(t *testing.T) {
	requireRoot(t)
	plain := make([]byte, 1024)
	dir := newLayerDir(t)
	res, err := Apply(context.Background(), dir, bytes.NewReader(gzipped(t, plain)))
	if err != nil || res.DiffID != sha(plain) {
		t.Fatalf("Apply(empty) = %s, %v; want %s, nil", res.DiffID, err, sha(plain))
	}
	assertDir(t, dir)
}

func TestApplyNonEmptyDir(t *testing.T) {
	dir := newLayerDir(t)
	if err := os.WriteFile(filepath.Join(dir, "leftover"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Apply(context.Background(), dir, bytes.NewReader(buildTar(t, file("f", 0o644, ""))))
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Apply(non-empty dir) = %v, want a \"not empty\" error", err)
	}
}

func TestApplyCanceled(t *testing.T) {
	requireRoot(t)
	plain := buildTar(t, file("a", 0o644, "a"), file("b", 0o644, "b"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, newLayerDir(t), bytes.NewReader(plain))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply(canceled) = %v, want context.Canceled", err)
	}

	// Cancelled halfway: the reader cancels after the first entry.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r := &cancelAfter{r: bytes.NewReader(plain), n: 1024, cancel: cancel}
	_, err = Apply(ctx, newLayerDir(t), r)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply(canceled midway) = %v, want context.Canceled", err)
	}
}

type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	if len(p) > c.n && c.n > 0 {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// A network failure is the caller's to report, not a corrupt layer.
func TestApplyReaderError(t *testing.T) {
	requireRoot(t)
	errNet := errors.New("connection reset")
	plain := buildTar(t, file("a", 0o644, strings.Repeat("a", 5000)))
	for _, blob := range [][]byte{plain[:2048], gzipped(t, plain)[:100]} {
		_, err := Apply(context.Background(), newLayerDir(t), &failingReader{r: bytes.NewReader(blob), err: errNet})
		if !errors.Is(err, errNet) || errors.Is(err, ErrCorrupt) {
			t.Errorf("Apply(failing reader) = %v, want %v and not ErrCorrupt", err, errNet)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	requireRoot(t)
	_, err := Apply(context.Background(), newLayerDir(t), bytes.NewReader(buildTar(t, file("../etc/passwd", 0o644, ""))))
	want := `layer entry "../etc/passwd": path escapes the layer root (hostile or corrupt layer; the image cannot be unpacked)`
	if err == nil || err.Error() != want {
		t.Errorf("Apply(../etc/passwd) = %v, want %s", err, want)
	}
}

func BenchmarkApply(b *testing.B) {
	requireRoot(b)
	const files, size = 1000, 64 << 10
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"layer", "image", "overlay", "sigil", "container", "runtime", "digest", "\n"}
	entries := make([]entry, 0, files+10)
	for i := range files {
		var sb strings.Builder
		for sb.Len() < size {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteByte(byte('a' + rng.IntN(26)))
		}
		entries = append(entries, file(fmt.Sprintf("usr/share/d%02d/f%04d", i/100, i), 0o644, sb.String()[:size]))
	}
	plain := buildTar(b, entries...)
	blob := gzipped(b, plain)
	base := b.TempDir()
	b.SetBytes(int64(len(plain)))
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := Apply(context.Background(), dir, bytes.NewReader(blob)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(len(blob))/float64(len(plain)), "gzip-ratio")
}

// Global PAX headers apply to nothing: a global xattr must not reach any
// file, and the header itself is not an entry.
func TestApplyGlobalHeaderIgnored(t *testing.T) {
	requireRoot(t)
	plain := buildTar(t,
		entry{hdr: tar.Header{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{
			"comment": "0123456789abcdef", "SCHILY.xattr.trusted.overlay.opaque": "y",
		}}},
		dirent("d/", 0o755),
	)
	dir := newLayerDir(t)
	if _, err := Apply(context.Background(), dir, bytes.NewReader(plain)); err != nil {
		t.Fatalf("Apply() = %v, want nil", err)
	}
	checkTree(t, dir, map[string]want{
		".": {mode: fs.ModeDir | 0o755},
		"d": {mode: fs.ModeDir | 0o755},
	})
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(ents)
}

// Apply opens a descriptor per directory level it walks; none may outlive it,
// whether it succeeds or fails halfway.
func TestApplyClosesFiles(t *testing.T) {
	requireRoot(t)
	blobs := [][]byte{
		goodLayer(t),
		buildTar(t, file("a/b/c", 0o644, "x"), hardlink("a/d", "a/b/c"), symlink("a/b/l", "/"), file("a/b/l/x", 0o644, "")),
		buildTar(t, file("a/b/c", 0o644, "x"), hardlink("a/d", "a/nope/c")),
	}
	before := openFDs(t)
	for _, b := range blobs {
		Apply(context.Background(), newLayerDir(t), bytes.NewReader(b))
	}
	if after := openFDs(t); after != before {
		t.Errorf("open descriptors after Apply = %d, want %d", after, before)
	}
}
