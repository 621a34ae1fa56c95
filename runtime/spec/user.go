package spec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/user"
	"golang.org/x/sys/unix"
)

// maxUserDBSize bounds how much of an image's passwd or group file is read.
const maxUserDBSize = 32 << 20

// execUser is the resolved identity of the container process.
type execUser struct {
	uid, gid       uint32
	additionalGids []uint32
	home           string
}

// resolveUser resolves userSpec ("uid[:gid]", "name[:group]", or "" for
// root) and groupAdd against the container's /etc/passwd and /etc/group.
// Supplementary groups are those /etc/group lists the user in, plus
// groupAdd.
func resolveUser(rootfs, userSpec string, groupAdd []string) (execUser, error) {
	passwd, err := openInRoot(rootfs, "etc/passwd")
	if err != nil {
		return execUser{}, err
	}
	if passwd != nil {
		defer passwd.Close()
	}
	group, err := openInRoot(rootfs, "etc/group")
	if err != nil {
		return execUser{}, err
	}
	if group != nil {
		defer group.Close()
	}
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	eu, err := user.GetExecUser(userSpec, defaults, limited(passwd), limited(group))
	if err != nil {
		var class error = errdefs.ErrNotFound
		if errors.Is(err, user.ErrRange) {
			class = errdefs.ErrInvalidArgument
		}
		return execUser{}, fmt.Errorf("user %q: %v: check the image's /etc/passwd and /etc/group, or give a numeric uid:gid: %w", userSpec, err, class)
	}
	u := execUser{uid: uint32(eu.Uid), gid: uint32(eu.Gid), home: eu.Home}
	if u.home == "" {
		u.home = "/"
	}
	gids := eu.Sgids
	if len(groupAdd) > 0 {
		group2, err := openInRoot(rootfs, "etc/group")
		if err != nil {
			return execUser{}, err
		}
		if group2 != nil {
			defer group2.Close()
		}
		added, err := user.GetAdditionalGroups(groupAdd, limited(group2))
		if err != nil {
			return execUser{}, fmt.Errorf("additional groups %s: %v: check the image's /etc/group, or give numeric gids: %w", strings.Join(groupAdd, ","), err, errdefs.ErrNotFound)
		}
		gids = append(gids, added...)
	}
	seen := map[uint32]bool{u.gid: true}
	for _, g := range gids {
		if g < 0 || seen[uint32(g)] {
			continue
		}
		seen[uint32(g)] = true
		u.additionalGids = append(u.additionalGids, uint32(g))
	}
	return u, nil
}

// limited returns nil for a nil file (so GetExecUser sees "no file"), and
// otherwise a reader capped at maxUserDBSize.
func limited(f *os.File) io.Reader {
	if f == nil {
		return nil
	}
	return io.LimitReader(f, maxUserDBSize)
}

// openInRoot opens name inside rootfs with every path component, symlinks
// included, resolved as if rootfs were "/" (openat2 RESOLVE_IN_ROOT), so a
// symlink such as etc/passwd -> /etc/shadow or ../../etc/shadow stays in
// the image. Only a regular file is accepted (a FIFO or device would block
// or never end). A missing file, or an empty rootfs, gives nil and no
// error.
func openInRoot(rootfs, name string) (*os.File, error) {
	if rootfs == "" {
		return nil, nil
	}
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs %s: %w", rootfs, err)
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("/%s in the image is a symlink loop (rootfs %s): fix the image: %w", name, rootfs, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, fmt.Errorf("open /%s in the image (rootfs %s): %w", name, rootfs, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(rootfs, name))
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("/%s in the image is not a regular file (%s): %w", name, st.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	return f, nil
}
