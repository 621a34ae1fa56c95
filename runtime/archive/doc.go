// Package archive applies one OCI or Docker image layer to an empty
// directory that becomes that layer's overlayfs "diff" directory.
//
// A layer is attacker-controlled input until its diff ID has been checked
// against the signed image config, and that check needs the decompressed
// stream, so Apply has to unpack the layer before it can be trusted. Apply
// therefore treats every layer as hostile:
//
//   - Every write goes through an [os.Root] opened on the layer directory,
//     one directory level at a time, and never follows a symlink that is part
//     of the layer; an entry that would need to (for example "l/x" after
//     "l -> /") is refused rather than resolved.
//   - Absolute names and names with a ".." component are refused, as are
//     hardlinks that point outside the layer or at anything but an earlier
//     non-directory entry of the same layer.
//   - Character and block device nodes are refused: the runtime provides
//     /dev, and a device node in an image is a way to reach host hardware.
//   - Extended attributes are limited to user.* (except user.overlay.*),
//     security.capability and POSIX ACLs. trusted.* is refused because
//     overlayfs keeps its own whiteout, opaque, redirect and metacopy metadata
//     in trusted.overlay.*, and a layer that could set those could hide or
//     splice in files of other layers. security.selinux is dropped silently
//     because labels come from the runtime's policy, not from the image (and
//     images built on SELinux hosts often carry them); every other namespace
//     is refused.
//   - Decompression is bounded: the uncompressed stream, and the logical size
//     of all regular files (sparse entries can be far larger than the bytes
//     that encode them), may not exceed [DefaultMaxSize] unless
//     [WithMaxSize] says otherwise.
//
// OCI whiteouts are converted to the overlayfs format: ".wh.NAME" becomes a
// 0/0 character device NAME, and ".wh..wh..opq" becomes the
// trusted.overlay.opaque="y" xattr on its directory. AUFS metadata entries
// (".wh..wh.plnk" and friends) are skipped, as containerd and Docker do.
//
// Apply needs the privileges of a real root: CAP_CHOWN, CAP_FOWNER and
// CAP_FSETID for ownership and setuid bits, CAP_MKNOD for whiteouts and
// CAP_SYS_ADMIN for trusted.overlay.* xattrs.
//
// Typical use by an image store, which already checked the compressed blob
// against the manifest digest:
//
//	diff := filepath.Join(store, "layers", chainID, "diff")
//	if err := os.Mkdir(diff, 0o755); err != nil {
//		return err
//	}
//	res, err := archive.Apply(ctx, diff, blob)
//	if err == nil && res.DiffID != config.RootFS.DiffIDs[i] {
//		err = fmt.Errorf("layer %d: diff ID is %s, image config says %s", i, res.DiffID, config.RootFS.DiffIDs[i])
//	}
//	if err != nil {
//		// A failed or unverified layer must never be mounted.
//		os.RemoveAll(diff)
//		return err
//	}
//
// Errors are of type [*Error]; use [errors.Is] with [ErrUnsafeEntry],
// [ErrCorrupt], [ErrTooLarge] or [ErrUnsupportedCompression] to tell a
// hostile image from a damaged download.
package archive
