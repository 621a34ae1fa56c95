package spec

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ProcessOptions describe an extra process in a running container, as
// `sigil exec` gives them. Empty fields keep the container's own values.
type ProcessOptions struct {
	Args []string
	// Env entries (KEY=VALUE) are merged over the container's environment.
	Env []string
	// Tty allocates a terminal and sets TERM=xterm unless TERM is set.
	Tty bool
	// User is "uid[:gid]" or "name[:group]", resolved in the container's
	// /etc/passwd and /etc/group.
	User string
	// Cwd must be absolute.
	Cwd string
}

// ExecProcess derives the process of `sigil exec` from the container's
// own (base): same capabilities, rlimits and no_new_privs, same user and
// working directory unless o overrides them. rootfs is where the
// container's root filesystem is mounted on the host, for user lookups.
func ExecProcess(base *specs.Process, rootfs string, o ProcessOptions) (*specs.Process, error) {
	if base == nil {
		return nil, fmt.Errorf("exec: the container has no process spec: %w", errdefs.ErrInvalidArgument)
	}
	if len(o.Args) == 0 || o.Args[0] == "" {
		return nil, fmt.Errorf("exec: no command given: %w", errdefs.ErrInvalidArgument)
	}
	p := *base
	p.Args = slices.Clone(o.Args)
	p.Terminal = o.Tty
	p.ConsoleSize = nil
	p.Env = mergeEnv(base.Env, o.Env)
	if o.Tty && !slices.ContainsFunc(p.Env, func(e string) bool { return strings.HasPrefix(e, "TERM=") }) {
		p.Env = append(p.Env, "TERM=xterm")
	}
	if o.Cwd != "" {
		if !path.IsAbs(o.Cwd) {
			return nil, fmt.Errorf("exec: working directory %q is not an absolute path: %w", o.Cwd, errdefs.ErrInvalidArgument)
		}
		p.Cwd = path.Clean(o.Cwd)
	}
	if o.User != "" {
		u, err := resolveUser(rootfs, o.User, nil)
		if err != nil {
			return nil, fmt.Errorf("exec: %w", err)
		}
		p.User = specs.User{UID: u.uid, GID: u.gid, AdditionalGids: u.additionalGids}
		p.Env = mergeEnv(p.Env, []string{"HOME=" + u.home})
	}
	return &p, nil
}
