package archive

import (
	"archive/tar"
	"maps"
	"slices"
	"strings"
)

// paxXattrPrefix is how GNU tar, star, Docker and containerd record xattrs.
// (libarchive's base64 "LIBARCHIVE.xattr." records are not read: bsdtar
// writes SCHILY records as well.)
const paxXattrPrefix = "SCHILY.xattr."

type xattr struct {
	name  string
	value []byte
}

type xattrVerdict int

const (
	xattrKeep xattrVerdict = iota
	xattrDrop
	xattrRefuse
)

// xattrPolicy decides what to do with an xattr found in a layer. The rule is
// an allowlist: a namespace the kernel gives a meaning to is only accepted
// once we know the meaning is harmless inside a container image.
func xattrPolicy(name string) (xattrVerdict, string) {
	switch {
	case strings.HasPrefix(name, "trusted.overlay."):
		return xattrRefuse, "overlayfs metadata (whiteouts, opaque directories, redirects) cannot come from a layer"
	case strings.HasPrefix(name, "trusted."):
		// Only CAP_SYS_ADMIN may set trusted.*; it holds host-side
		// metadata (overlayfs, and other tools') that an image must not
		// be able to forge.
		return xattrRefuse, "the trusted.* namespace is reserved for the host"
	case strings.HasPrefix(name, "user.overlay."):
		// overlayfs mounted with "userxattr" keeps its metadata here.
		return xattrRefuse, "overlayfs metadata (user.overlay.*) cannot come from a layer"
	case strings.HasPrefix(name, "user.") && len(name) > len("user."):
		return xattrKeep, ""
	case name == "security.capability":
		// File capabilities (ping's cap_net_raw) are part of what an
		// image means; they are bounded by the container's own
		// capability set at exec time.
		return xattrKeep, ""
	case name == "security.selinux":
		// Labels come from the runtime's SELinux policy, not from the
		// image; images built on SELinux hosts carry them harmlessly.
		return xattrDrop, ""
	case name == "system.posix_acl_access", name == "system.posix_acl_default":
		return xattrKeep, ""
	case strings.HasPrefix(name, "security."):
		// security.ima, security.evm, SMACK and AppArmor labels feed host
		// security policy (integrity appraisal, MAC decisions).
		return xattrRefuse, "security xattrs other than security.capability feed host security policy"
	}
	return xattrRefuse, "unknown xattr namespace"
}

// layerXattrs returns the xattrs of hdr to apply, in a stable order so that
// errors are reproducible.
func layerXattrs(entry string, hdr *tar.Header) ([]xattr, error) {
	var out []xattr
	for _, k := range slices.Sorted(maps.Keys(hdr.PAXRecords)) {
		name, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok {
			continue
		}
		switch verdict, why := xattrPolicy(name); verdict {
		case xattrKeep:
			out = append(out, xattr{name: name, value: []byte(hdr.PAXRecords[k])})
		case xattrRefuse:
			return nil, unsafeEntry(entry, "xattr %q refused: %s", name, why)
		}
	}
	return out, nil
}
