package spec

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// RlimitResource maps a runtime-spec rlimit name ("RLIMIT_NOFILE") to
// its resource number, for runtimes that apply the spec's rlimits.
func RlimitResource(name string) (int, bool) {
	r, ok := map[string]int{
		"RLIMIT_AS":         unix.RLIMIT_AS,
		"RLIMIT_CORE":       unix.RLIMIT_CORE,
		"RLIMIT_CPU":        unix.RLIMIT_CPU,
		"RLIMIT_DATA":       unix.RLIMIT_DATA,
		"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
		"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
		"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
		"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
		"RLIMIT_NICE":       unix.RLIMIT_NICE,
		"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
		"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
		"RLIMIT_RSS":        unix.RLIMIT_RSS,
		"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
		"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
		"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
		"RLIMIT_STACK":      unix.RLIMIT_STACK,
	}[name]
	return r, ok
}

// defaultRlimits are podman's and docker's usual open-files limit: a low
// soft limit for programs that select(2), a high hard one for those that
// raise it.
func defaultRlimits() []specs.POSIXRlimit {
	return []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 1048576}}
}

// rlimits merges the defaults with the user's ulimits (a user entry
// replaces the default of the same type) and clamps each to the current
// hard limit of this process.
//
// Clamping is needed because the runtime may lack CAP_SYS_RESOURCE (as
// root does on some sandboxed hosts): setrlimit(2) cannot then raise a hard
// limit, and libcontainer's init would fail the whole start. A clamped
// limit is logged at debug level.
func rlimits(user []specs.POSIXRlimit, logger *slog.Logger) ([]specs.POSIXRlimit, error) {
	out := defaultRlimits()
	for _, u := range user {
		u.Type = strings.ToUpper(u.Type)
		if !strings.HasPrefix(u.Type, "RLIMIT_") {
			u.Type = "RLIMIT_" + u.Type
		}
		if _, ok := RlimitResource(u.Type); !ok {
			return nil, fmt.Errorf("ulimit %s: unknown resource: %w", u.Type, errdefs.ErrInvalidArgument)
		}
		if u.Soft > u.Hard {
			return nil, fmt.Errorf("ulimit %s: soft limit %d is above hard limit %d: %w", u.Type, u.Soft, u.Hard, errdefs.ErrInvalidArgument)
		}
		out = slices.DeleteFunc(out, func(r specs.POSIXRlimit) bool { return r.Type == u.Type })
		out = append(out, u)
	}
	for i, r := range out {
		res, _ := RlimitResource(r.Type)
		var cur unix.Rlimit
		if err := unix.Getrlimit(res, &cur); err != nil {
			return nil, fmt.Errorf("getrlimit %s: %w", r.Type, err)
		}
		if cur.Max != unix.RLIM_INFINITY && r.Hard > cur.Max {
			logger.Debug("clamping rlimit to the host's hard limit",
				"rlimit", r.Type, "requested_hard", r.Hard, "host_hard", cur.Max)
			out[i].Hard = cur.Max
			if out[i].Soft > out[i].Hard {
				out[i].Soft = out[i].Hard
			}
		}
	}
	return out, nil
}
