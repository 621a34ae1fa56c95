package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/profiles/seccomp"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Seccomp profile choices for RunOptions.Seccomp, as the CRI names them.
const (
	SeccompUnconfined      = "unconfined"
	SeccompLocalhostPrefix = "localhost/"
)

// capabilities is the container's capability set: docker's default (or
// every capability this process holds, when privileged), minus CapDrop,
// plus CapAdd.
//
// Only capabilities in this process's own bounding set can be given: root
// on some hosts lacks CAP_SYS_RESOURCE, and asking for it would fail the
// start. Such a capability is left out rather than refused, as the CRI
// asks for "ALL" routinely.
func capabilities(run RunOptions) ([]string, error) {
	held := heldCapabilities()
	caps := defaultCapabilities()
	if run.Privileged {
		caps = slices.Clone(held)
	}
	for _, c := range run.CapDrop {
		name, err := capName(c)
		if err != nil {
			return nil, err
		}
		if name == "ALL" {
			caps = nil
			continue
		}
		caps = slices.DeleteFunc(caps, func(x string) bool { return x == name })
	}
	for _, c := range run.CapAdd {
		name, err := capName(c)
		if err != nil {
			return nil, err
		}
		add := []string{name}
		if name == "ALL" {
			add = held
		}
		for _, a := range add {
			if slices.Contains(held, a) && !slices.Contains(caps, a) {
				caps = append(caps, a)
			}
		}
	}
	if caps == nil {
		caps = []string{}
	}
	return caps, nil
}

// capName normalises "net_admin", "CAP_NET_ADMIN" and "ALL".
func capName(c string) (string, error) {
	name := strings.ToUpper(strings.TrimSpace(c))
	if name == "ALL" {
		return name, nil
	}
	if !strings.HasPrefix(name, "CAP_") {
		name = "CAP_" + name
	}
	for _, k := range capability.ListKnown() {
		if "CAP_"+strings.ToUpper(k.String()) == name {
			return name, nil
		}
	}
	return "", fmt.Errorf("capability %q is unknown: %w", c, errdefs.ErrInvalidArgument)
}

// heldCapabilities lists the capabilities in this process's bounding set.
func heldCapabilities() []string {
	var out []string
	c, err := capability.NewPid2(0)
	if err == nil {
		err = c.Load()
	}
	for _, k := range capability.ListKnown() {
		if err == nil && !c.Get(capability.BOUNDING, k) {
			continue
		}
		out = append(out, "CAP_"+strings.ToUpper(k.String()))
	}
	return out
}

// applySecurity sets the seccomp profile, the masked and read-only paths
// and, for a privileged container, host devices and a writable /sys.
func applySecurity(s *specs.Spec, run RunOptions) error {
	// A volume that propagates mounts needs the root mount to propagate
	// them too.
	for _, v := range run.Volumes {
		switch {
		case v.Propagation == "rshared":
			s.Linux.RootfsPropagation = "rshared"
		case v.Propagation == "rslave" && s.Linux.RootfsPropagation == "":
			s.Linux.RootfsPropagation = "rslave"
		}
	}
	if run.MaskedPaths != nil {
		s.Linux.MaskedPaths = slices.Clone(*run.MaskedPaths)
	}
	if run.ReadonlyPaths != nil {
		s.Linux.ReadonlyPaths = slices.Clone(*run.ReadonlyPaths)
	}
	for _, d := range run.Devices {
		if err := addDevice(s, d); err != nil {
			return err
		}
	}
	if run.Privileged {
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
		for i, m := range s.Mounts {
			if m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup" {
				s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
				s.Mounts[i].Options = append(s.Mounts[i].Options, "rw")
			}
		}
		for _, d := range hostDevices() {
			if slices.ContainsFunc(s.Linux.Devices, func(x specs.LinuxDevice) bool { return x.Path == d.Path }) {
				continue
			}
			s.Linux.Devices = append(s.Linux.Devices, d)
		}
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		// A privileged container is unconfined unless a profile is named.
		if run.Seccomp == "" || run.Seccomp == SeccompUnconfined {
			s.Linux.Seccomp = nil
			return nil
		}
	}
	switch {
	case run.Seccomp == "" || run.Seccomp == "runtime/default" || run.Seccomp == "docker/default":
		sc, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			return fmt.Errorf("default seccomp profile: %w", err)
		}
		s.Linux.Seccomp = sc
	case run.Seccomp == SeccompUnconfined:
		s.Linux.Seccomp = nil
	case strings.HasPrefix(run.Seccomp, SeccompLocalhostPrefix):
		p := strings.TrimPrefix(run.Seccomp, SeccompLocalhostPrefix)
		if !filepath.IsAbs(p) {
			return fmt.Errorf("seccomp profile %q: the path must be absolute: %w", p, errdefs.ErrInvalidArgument)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("seccomp profile %s: %w: %w", p, err, errdefs.ErrNotFound)
		}
		sc, err := seccomp.LoadProfile(string(b), s)
		if err != nil {
			return fmt.Errorf("seccomp profile %s: %w: %w", p, err, errdefs.ErrInvalidArgument)
		}
		s.Linux.Seccomp = sc
	default:
		return fmt.Errorf("seccomp %q: want runtime/default, unconfined or localhost/<path>: %w", run.Seccomp, errdefs.ErrInvalidArgument)
	}
	return nil
}

// addDevice gives the container the host device d.
func addDevice(s *specs.Spec, d Device) error {
	perms := d.Permissions
	if perms == "" {
		perms = "rwm"
	}
	dev, err := deviceFromPath(d.HostPath)
	if err != nil {
		return fmt.Errorf("device %s: %w: %w", d.HostPath, err, errdefs.ErrInvalidArgument)
	}
	if d.ContainerPath != "" {
		dev.Path = d.ContainerPath
	}
	s.Linux.Devices = append(s.Linux.Devices, dev)
	major, minor := dev.Major, dev.Minor
	s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
		Allow: true, Type: string(dev.Type), Major: &major, Minor: &minor, Access: perms,
	})
	return nil
}

// deviceFromPath describes the device node at p (following symlinks, as
// /dev/fd-style links are common in device paths).
func deviceFromPath(p string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return specs.LinuxDevice{}, err
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("%s is not a device node", p)
	}
	mode := os.FileMode(st.Mode &^ unix.S_IFMT)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path: p, Type: typ,
		Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
		FileMode: &mode, UID: &uid, GID: &gid,
	}, nil
}

// hostDevices lists the host's device nodes under /dev, as runc's
// HostDevices does: not the ones a container gets its own of (pts,
// shm, mqueue) and not /dev/console.
func hostDevices() []specs.LinuxDevice {
	var out []specs.LinuxDevice
	_ = filepath.WalkDir("/dev", func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.IsDir() {
			switch p {
			case "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/.lxc", "/dev/.udev":
				return filepath.SkipDir
			}
			return nil
		}
		if p == "/dev/console" || e.Type()&os.ModeDevice == 0 {
			return nil
		}
		if d, err := deviceFromPath(p); err == nil {
			out = append(out, d)
		}
		return nil
	})
	return out
}
