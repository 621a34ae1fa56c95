// Package spec builds an OCI runtime spec (runtime-spec types) for a
// container from an image config and the options of `sigil run`, the way
// docker does, with secure defaults:
//
//   - the command is the image Entrypoint plus Cmd; RunOptions.Args replace
//     Cmd, and an overridden entrypoint (--entrypoint) also drops the image
//     Cmd;
//   - the environment is PATH (default), HOSTNAME and TERM=xterm (with a
//     terminal), then the image Env, then RunOptions.Env, each later entry
//     replacing an earlier one with the same key;
//   - users and groups named by RunOptions.User or the image are resolved
//     in the container's own /etc/passwd and /etc/group, opened inside the
//     rootfs (openat2 RESOLVE_IN_ROOT) so that a hostile symlink in the
//     image cannot make Sigil read a host file;
//   - docker's default capability set (bounding, effective, permitted;
//     never inheritable or ambient), docker's default seccomp profile,
//     masked and read-only /proc and /sys paths, no_new_privs, the minimal
//     /dev that libcontainer creates, and rlimits clamped to the host's hard
//     limits;
//   - new pid, mount and cgroup namespaces; network, IPC and UTS are joined
//     from the pod's pinned namespaces (Namespaces).
//
// Generate touches the host only to read the container's passwd and group
// files and the current rlimits; it needs no privilege.
//
// Example:
//
//	s, err := spec.Generate(spec.Options{
//		ID:          id,
//		Image:       imageConfig,
//		Rootfs:      "/run/sigil/containers/" + id + "/rootfs",
//		CgroupsPath: "/sigil/" + podID + "/" + id,
//		Namespaces:  spec.Namespaces{Network: p.NetNS, IPC: p.IPCNS, UTS: p.UTSNS},
//		Run: spec.RunOptions{
//			Args:   []string{"sh", "-c", "echo hi"},
//			Env:    []string{"GREETING=hello"},
//			User:   "app",
//			Memory: 32 << 20,
//		},
//	})
package spec
