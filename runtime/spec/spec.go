package spec

import (
	"fmt"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultPath is the PATH a container gets when neither the image nor the
// options set one (docker's default).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// cfsPeriod is the CFS period, in microseconds, that --cpus is expressed
// against (docker uses the same 100ms).
const cfsPeriod = 100000

// minMemory is the smallest memory limit accepted, as docker's: below it
// the container cannot even start its init.
const minMemory = 6 << 20

// Options is everything Generate needs. ID, Rootfs, CgroupsPath and
// Namespaces are filled by the container manager; Image comes from the
// image store; Run carries the user's flags.
type Options struct {
	// ID is the container ID. Its first 12 characters are the default
	// hostname.
	ID string
	// Image is the image's config (Entrypoint, Cmd, Env, User, WorkingDir).
	Image ocispec.ImageConfig
	// Rootfs is the host path where the container's root filesystem is
	// mounted. Named users and groups are resolved inside it; when it is
	// empty only numeric ones can be used.
	Rootfs string
	// CgroupsPath is the container's cgroup, e.g. "/sigil/<pod>/<id>".
	CgroupsPath string
	// Namespaces says which namespaces to join instead of creating them.
	Namespaces Namespaces
	// Run holds the per-run options (flags of `sigil run`).
	Run RunOptions
	// Logger receives debug messages (clamped rlimits); nil discards them.
	Logger *slog.Logger
}

// Namespaces names the pinned namespaces of a pod (files under the pod's
// state directory) that a container joins. An empty path means a new
// namespace, except for the network when HostNetwork is set.
type Namespaces struct {
	Network     string `json:"network,omitempty"`
	HostNetwork bool   `json:"host_network,omitempty"`
	IPC         string `json:"ipc,omitempty"`
	UTS         string `json:"uts,omitempty"`
	// HostIPC, HostUTS and HostPID share the host's namespace instead.
	HostIPC bool `json:"host_ipc,omitempty"`
	HostUTS bool `json:"host_uts,omitempty"`
	HostPID bool `json:"host_pid,omitempty"`
	// PID is a PID namespace to join (another container's, for a pod
	// that shares one); empty means a new one.
	PID string `json:"pid,omitempty"`
}

// RunOptions are the user's choices for one container, as the flags of
// `sigil run` (or a CRI ContainerConfig) give them. The zero value runs the
// image as it is configured. RunOptions is persisted in the container
// record, so it is JSON-encodable.
type RunOptions struct {
	// OverrideEntrypoint replaces the image Entrypoint with Entrypoint (an
	// empty Entrypoint clears it) and drops the image Cmd, as docker's
	// --entrypoint does.
	OverrideEntrypoint bool     `json:"override_entrypoint,omitempty"`
	Entrypoint         []string `json:"entrypoint,omitempty"`
	// Args, when not empty, replace the image Cmd.
	Args []string `json:"args,omitempty"`
	// Env entries are KEY=VALUE, in the order -e and --env-file gave them;
	// they override the image Env. A bare KEY removes that variable.
	Env []string `json:"env,omitempty"`
	// Workdir overrides the image WorkingDir; it must be absolute.
	Workdir string `json:"workdir,omitempty"`
	// User overrides the image User: "uid[:gid]" or "name[:group]".
	User string `json:"user,omitempty"`
	// GroupAdd adds supplementary groups (names or gids), as --group-add.
	GroupAdd []string `json:"group_add,omitempty"`
	// Hostname defaults to the first 12 characters of the ID.
	Hostname string `json:"hostname,omitempty"`
	// Tty allocates a pseudo-terminal for the process and sets TERM=xterm.
	Tty bool `json:"tty,omitempty"`
	// Volumes are bind mounts from the host (-v HOST:CTR[:ro]).
	Volumes []Volume `json:"volumes,omitempty"`
	// Memory is the memory limit in bytes (0: none).
	Memory int64 `json:"memory,omitempty"`
	// CPUs is the number of CPUs' worth of time (0: no limit), turned into
	// a CFS quota over a 100ms period.
	CPUs float64 `json:"cpus,omitempty"`
	// PidsLimit caps the number of tasks (0: no limit).
	PidsLimit int64 `json:"pids_limit,omitempty"`
	// ReadOnly mounts the root filesystem read-only.
	ReadOnly bool `json:"read_only,omitempty"`
	// Ulimits override the default rlimits (RLIMIT_NOFILE 1024:1048576).
	// Each is clamped to the host's current hard limit.
	Ulimits []specs.POSIXRlimit `json:"ulimits,omitempty"`

	// The options below are what a CRI ContainerConfig adds; their zero
	// values keep the secure defaults above. See security.go.

	// Privileged gives every capability, every host device, no seccomp
	// profile, no masked or read-only paths and a writable /sys.
	Privileged bool `json:"privileged,omitempty"`
	// CapAdd and CapDrop change the default capability set: names with
	// or without the CAP_ prefix, any case, or "ALL". Drops apply first.
	CapAdd  []string `json:"cap_add,omitempty"`
	CapDrop []string `json:"cap_drop,omitempty"`
	// Seccomp is "" (the default profile), "unconfined", or
	// "localhost/<absolute path of a profile in the OCI or docker JSON format>".
	Seccomp string `json:"seccomp,omitempty"`
	// AllowPrivilegeEscalation clears no_new_privs (Kubernetes'
	// allowPrivilegeEscalation, the CRI's no_new_privs=false).
	AllowPrivilegeEscalation bool `json:"allow_privilege_escalation,omitempty"`
	// MaskedPaths and ReadonlyPaths, when not nil, replace the defaults
	// (the CRI sends Kubernetes' lists, or empty ones for an unmasked
	// /proc).
	MaskedPaths   *[]string `json:"masked_paths,omitempty"`
	ReadonlyPaths *[]string `json:"readonly_paths,omitempty"`
	// Sysctls are set in the container's namespaces (net.* in the pod's
	// network namespace, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*
	// in its IPC namespace).
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// CPUShares, CPUQuota and CPUPeriod set the CFS weight and bandwidth
	// directly (the CRI's LinuxContainerResources); CPUs, when set, wins
	// over CPUQuota/CPUPeriod.
	CPUShares  uint64 `json:"cpu_shares,omitempty"`
	CPUQuota   int64  `json:"cpu_quota,omitempty"`
	CPUPeriod  uint64 `json:"cpu_period,omitempty"`
	CpusetCPUs string `json:"cpuset_cpus,omitempty"`
	CpusetMems string `json:"cpuset_mems,omitempty"`
	// Devices are host devices made available in the container.
	Devices []Device `json:"devices,omitempty"`
	// Mounts are extra mounts added after the volumes (a tmpfs, or a bind
	// mount with options the Volume type does not express).
	Mounts []specs.Mount `json:"mounts,omitempty"`
	// Annotations are copied into the runtime spec.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Device is a host device node given to the container.
type Device struct {
	HostPath      string `json:"host_path"`
	ContainerPath string `json:"container_path"`
	// Permissions is a combination of r, w and m (default "rwm").
	Permissions string `json:"permissions,omitempty"`
}

// Volume is a bind mount of a host path into the container.
type Volume struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"read_only,omitempty"`
	// Propagation is "rprivate" (default), "rslave" or "rshared".
	Propagation string `json:"propagation,omitempty"`
}

// ParseVolume parses docker's -v syntax HOST:CTR[:ro|rw]. Both paths must
// be absolute. Errors wrap errdefs.ErrInvalidArgument.
func ParseVolume(s string) (Volume, error) {
	parts := strings.Split(s, ":")
	var v Volume
	switch len(parts) {
	case 2:
	case 3:
		switch parts[2] {
		case "ro":
			v.ReadOnly = true
		case "rw", "":
		default:
			return Volume{}, fmt.Errorf("volume %q: unknown mode %q: use ro or rw: %w", s, parts[2], errdefs.ErrInvalidArgument)
		}
	default:
		return Volume{}, fmt.Errorf("volume %q: want HOST:CONTAINER[:ro]: %w", s, errdefs.ErrInvalidArgument)
	}
	v.Source, v.Destination = parts[0], parts[1]
	if !path.IsAbs(v.Source) {
		return Volume{}, fmt.Errorf("volume %q: host path %q is not absolute (named volumes are not supported): %w", s, v.Source, errdefs.ErrInvalidArgument)
	}
	if !path.IsAbs(v.Destination) {
		return Volume{}, fmt.Errorf("volume %q: container path %q is not absolute: %w", s, v.Destination, errdefs.ErrInvalidArgument)
	}
	v.Source, v.Destination = path.Clean(v.Source), path.Clean(v.Destination)
	if v.Destination == "/" {
		return Volume{}, fmt.Errorf("volume %q: cannot mount over the container's root: %w", s, errdefs.ErrInvalidArgument)
	}
	return v, nil
}

// String gives the volume back in -v syntax.
func (v Volume) String() string {
	s := v.Source + ":" + v.Destination
	if v.ReadOnly {
		s += ":ro"
	}
	return s
}

// Generate builds the runtime spec for opts. Errors wrap
// errdefs.ErrInvalidArgument when an option is wrong, and
// errdefs.ErrNotFound when a named user or group does not exist in the
// image.
func Generate(opts Options) (*specs.Spec, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.ID == "" {
		return nil, fmt.Errorf("generate spec: container ID is empty: %w", errdefs.ErrInvalidArgument)
	}
	run := opts.Run
	if run.CPUs < 0 || run.PidsLimit < 0 || run.Memory < 0 {
		return nil, fmt.Errorf("resource limits must not be negative (memory %d, cpus %g, pids %d): %w", run.Memory, run.CPUs, run.PidsLimit, errdefs.ErrInvalidArgument)
	}
	if run.Memory != 0 && run.Memory < minMemory {
		return nil, fmt.Errorf("memory limit of %d bytes is below the minimum of 6MiB: raise --memory: %w", run.Memory, errdefs.ErrInvalidArgument)
	}

	args, err := command(opts.Image, run)
	if err != nil {
		return nil, err
	}
	cwd, err := workdir(opts.Image, run)
	if err != nil {
		return nil, err
	}
	hostname := run.Hostname
	if hostname == "" {
		hostname = opts.ID
		if len(hostname) > 12 {
			hostname = hostname[:12]
		}
	}
	if opts.Namespaces.HostUTS {
		// The host's UTS namespace: its hostname, which is not ours to set.
		hostname, _ = os.Hostname()
	}

	userSpec := run.User
	if userSpec == "" {
		userSpec = opts.Image.User
	}
	u, err := resolveUser(opts.Rootfs, userSpec, run.GroupAdd)
	if err != nil {
		return nil, err
	}

	env := mergeEnv(baseEnv(hostname, run.Tty), opts.Image.Env, run.Env)
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "HOME=") }) {
		env = append(env, "HOME="+u.home)
	}

	rlimits, err := rlimits(run.Ulimits, logger)
	if err != nil {
		return nil, err
	}

	caps, err := capabilities(run)
	if err != nil {
		return nil, err
	}
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: run.Tty,
			User: specs.User{
				UID:            u.uid,
				GID:            u.gid,
				AdditionalGids: u.additionalGids,
			},
			Args: args,
			Env:  env,
			Cwd:  cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: slices.Clone(caps),
				Permitted: slices.Clone(caps),
			},
			Rlimits:         rlimits,
			NoNewPrivileges: !run.AllowPrivilegeEscalation,
			// OOMScoreAdj is left unset on purpose: root on this kind of
			// host may lack CAP_SYS_RESOURCE, and then lowering
			// oom_score_adj (which inheriting a negative value amounts to)
			// fails the start. The container keeps the runtime's score.
		},
		Root: &specs.Root{
			Path:     opts.Rootfs,
			Readonly: run.ReadOnly,
		},
		Hostname: hostname,
		Mounts:   append(mounts(run.Volumes, run.ReadOnly), run.Mounts...),
		Linux: &specs.Linux{
			CgroupsPath: opts.CgroupsPath,
			Namespaces:  namespaces(opts.Namespaces),
			Resources:   resources(run),
			// Devices is empty: libcontainer creates its default minimal
			// set (null, zero, full, random, urandom, tty, ptmx) and
			// allows only those in the devices cgroup.
			MaskedPaths:   maskedPaths(),
			ReadonlyPaths: readonlyPaths(),
			Sysctl:        run.Sysctls,
		},
		Annotations: run.Annotations,
	}
	if opts.Namespaces.HostUTS {
		s.Hostname = ""
	}
	if err := applySecurity(s, run); err != nil {
		return nil, err
	}
	return s, nil
}

// command applies docker's rules: --entrypoint resets the image Cmd, and
// args replace Cmd.
func command(img ocispec.ImageConfig, run RunOptions) ([]string, error) {
	entrypoint, cmd := img.Entrypoint, img.Cmd
	if run.OverrideEntrypoint {
		entrypoint, cmd = run.Entrypoint, nil
	}
	if len(run.Args) > 0 {
		cmd = run.Args
	}
	args := append(slices.Clone(entrypoint), cmd...)
	if len(args) == 0 || args[0] == "" {
		return nil, fmt.Errorf("no command: the image has no Entrypoint or Cmd: give one after the image name or with --entrypoint: %w", errdefs.ErrInvalidArgument)
	}
	return args, nil
}

func workdir(img ocispec.ImageConfig, run RunOptions) (string, error) {
	wd := run.Workdir
	if wd == "" {
		wd = img.WorkingDir
	}
	if wd == "" {
		return "/", nil
	}
	if !path.IsAbs(wd) {
		return "", fmt.Errorf("working directory %q is not an absolute path: use e.g. -w /%s: %w", wd, wd, errdefs.ErrInvalidArgument)
	}
	return path.Clean(wd), nil
}

func baseEnv(hostname string, tty bool) []string {
	env := []string{"PATH=" + DefaultPath, "HOSTNAME=" + hostname}
	if tty {
		env = append(env, "TERM=xterm")
	}
	return env
}

// mergeEnv applies each layer on top of the previous one: an entry
// replaces the one with the same key in place, or is appended; a bare KEY
// removes the variable (docker's ReplaceOrAppendEnvValues).
func mergeEnv(layers ...[]string) []string {
	var env []string
	for _, layer := range layers {
		for _, kv := range layer {
			key, _, hasValue := strings.Cut(kv, "=")
			i := slices.IndexFunc(env, func(e string) bool {
				k, _, _ := strings.Cut(e, "=")
				return k == key
			})
			switch {
			case !hasValue && i >= 0:
				env = slices.Delete(env, i, i+1)
			case !hasValue:
			case i >= 0:
				env[i] = kv
			default:
				env = append(env, kv)
			}
		}
	}
	return env
}

func namespaces(ns Namespaces) []specs.LinuxNamespace {
	out := []specs.LinuxNamespace{
		{Type: specs.MountNamespace},
		{Type: specs.CgroupNamespace},
	}
	if !ns.HostPID {
		out = append(out, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: ns.PID})
	}
	if !ns.HostIPC {
		out = append(out, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: ns.IPC})
	}
	if !ns.HostUTS {
		out = append(out, specs.LinuxNamespace{Type: specs.UTSNamespace, Path: ns.UTS})
	}
	if !ns.HostNetwork {
		out = append(out, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: ns.Network})
	}
	return out
}

func resources(run RunOptions) *specs.LinuxResources {
	r := &specs.LinuxResources{
		// Deny every device, then libcontainer allows its default set.
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	if run.Memory > 0 {
		limit := run.Memory
		// Swap is left unset: the host may lack swap accounting
		// (memory.memsw), and where it has no swap at all the limit is
		// already the whole budget.
		r.Memory = &specs.LinuxMemory{Limit: &limit}
	}
	if run.CPUs > 0 {
		quota := int64(run.CPUs * cfsPeriod)
		period := uint64(cfsPeriod)
		r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	} else if run.CPUQuota != 0 || run.CPUPeriod != 0 {
		r.CPU = &specs.LinuxCPU{}
		if run.CPUQuota != 0 {
			quota := run.CPUQuota
			r.CPU.Quota = &quota
		}
		if run.CPUPeriod != 0 {
			period := run.CPUPeriod
			r.CPU.Period = &period
		}
	}
	if run.CPUShares != 0 || run.CpusetCPUs != "" || run.CpusetMems != "" {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		if run.CPUShares != 0 {
			shares := run.CPUShares
			r.CPU.Shares = &shares
		}
		r.CPU.Cpus, r.CPU.Mems = run.CpusetCPUs, run.CpusetMems
	}
	if run.PidsLimit > 0 {
		limit := run.PidsLimit
		r.Pids = &specs.LinuxPids{Limit: &limit}
	}
	return r
}

// scratchDirs get a tmpfs under a read-only root, as podman's
// --read-only-tmpfs does by default: programs expect to write there, and a
// read-only image should not need a volume for it.
func scratchDirs() []string { return []string{"/tmp", "/var/tmp", "/run"} }

// mounts returns docker's default mounts (plus tmpfs scratch dirs under a
// read-only root) followed by the volumes, parents before children. A
// volume on the destination of a default mount replaces it.
func mounts(volumes []Volume, readOnlyRoot bool) []specs.Mount {
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
	}
	if readOnlyRoot {
		for _, d := range scratchDirs() {
			ms = append(ms, specs.Mount{Destination: d, Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}})
		}
	}
	vols := slices.Clone(volumes)
	slices.SortStableFunc(vols, func(a, b Volume) int {
		return strings.Count(path.Clean(a.Destination), "/") - strings.Count(path.Clean(b.Destination), "/")
	})
	for _, v := range vols {
		dst := path.Clean(v.Destination)
		ms = slices.DeleteFunc(ms, func(m specs.Mount) bool { return m.Destination == dst })
		prop := v.Propagation
		if prop == "" {
			prop = "rprivate"
		}
		opts := []string{"rbind", prop}
		if v.ReadOnly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		ms = append(ms, specs.Mount{Destination: dst, Type: "bind", Source: path.Clean(v.Source), Options: opts})
	}
	return ms
}

// defaultCapabilities is docker's default set.
func defaultCapabilities() []string {
	return []string{
		"CAP_CHOWN",
		"CAP_DAC_OVERRIDE",
		"CAP_FSETID",
		"CAP_FOWNER",
		"CAP_MKNOD",
		"CAP_NET_RAW",
		"CAP_SETGID",
		"CAP_SETUID",
		"CAP_SETFCAP",
		"CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT",
		"CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

// maskedPaths is docker's list (moby oci/defaults.go): paths that leak
// host information or are dangerous, hidden from the container.
func maskedPaths() []string {
	return []string{
		"/proc/asound",
		"/proc/acpi",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
}

// readonlyPaths is docker's list of /proc paths made read-only.
func readonlyPaths() []string {
	return []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
}
