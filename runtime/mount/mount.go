// Package mount describes a filesystem mount that a snapshot hands to a
// container: the container package mounts it as the root filesystem and
// unmounts it when the container is gone.
//
//	m := mount.Mount{Type: "overlay", Source: "overlay",
//		Options: []string{"lowerdir=/a:/b", "upperdir=/u", "workdir=/w"}}
//	if err := m.Mount(target); err != nil { ... }
package mount

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is one mount(2) call, in the shape of an OCI runtime-spec mount.
type Mount struct {
	Type    string   `json:"type"`
	Source  string   `json:"source"`
	Options []string `json:"options,omitempty"`
}

// Mount mounts m on target, which must exist.
func (m Mount) Mount(target string) error {
	var flags uintptr
	var data []string
	for _, o := range m.Options {
		switch o {
		case "ro":
			flags |= unix.MS_RDONLY
		case "bind":
			flags |= unix.MS_BIND
		case "rbind":
			flags |= unix.MS_BIND | unix.MS_REC
		case "nodev":
			flags |= unix.MS_NODEV
		case "nosuid":
			flags |= unix.MS_NOSUID
		default:
			data = append(data, o)
		}
	}
	if err := unix.Mount(m.Source, target, m.Type, flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount %s on %s (options %s): %w", m.Type, target, strings.Join(m.Options, ","), err)
	}
	// The kernel ignores the other flags of a bind mount (read-only,
	// nosuid, nodev): they take a second, remounting call.
	if perMount := flags &^ (unix.MS_BIND | unix.MS_REC); flags&unix.MS_BIND != 0 && perMount != 0 {
		if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|perMount, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("mount %s on %s: make the bind mount %s: %w", m.Source, target, strings.Join(m.Options, ","), err)
		}
	}
	return nil
}

// Unmount detaches whatever is mounted on target. An unmounted target is
// not an error, so cleanup paths can call it unconditionally.
func Unmount(target string) error {
	err := unix.Unmount(target, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("unmount %s: %w", target, err)
}
