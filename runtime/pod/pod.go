// Package pod manages pods: a set of pinned namespaces (network, IPC, UTS)
// plus a cgroup parent, which one or more containers join. The CLI makes
// one pod per container; the CRI makes one per sandbox.
//
// Namespaces are pinned without any long-lived process, as CRI-O's pinns
// does: a goroutine locks itself to an OS thread, unshares the namespaces
// on that thread, sets the hostname, brings up "lo", and bind-mounts the
// thread's /proc/self/task/<tid>/ns/* files onto files in the pod's state
// directory. The thread is never unlocked, so the Go runtime discards it
// when the goroutine ends and no other goroutine runs in those namespaces.
// The bind mounts keep the namespaces alive until Remove.
//
// A PID namespace cannot be pinned that way: it lives only as long as its
// first process, its init. A pod whose containers share one (the CRI's
// PID namespace mode POD) has an infra process for that, started by its
// caller; PinPID then pins the infra's namespace like the others, so that
// a container joins it by a path that never names another process, even
// after the infra's PID is reused. Joining it once the infra is dead
// fails (the kernel refuses new processes in a PID namespace whose init
// has exited).
//
// Pod records are JSON files written to a temporary file and renamed, so
// any other sigil process (or the CRI server after a restart) can Load a
// pod. On disk, under the state directory (--state, /run/sigil):
//
//	<state>/
//	└── pods/
//	    └── <pod-id>/
//	        ├── pod.json      the Pod record
//	        └── ns/
//	            ├── net       bind mount of the pinned network namespace (absent with host network)
//	            ├── ipc       bind mount of the pinned IPC namespace
//	            ├── uts       bind mount of the pinned UTS namespace
//	            └── pid       bind mount of the PID namespace of the pod's infra
//	                          process (PinPID), when its containers share one
//
// Cgroups: a pod's cgroup parent is "<cgroup root>/<pod-id>" ("/sigil/<id>"
// by default) in every hierarchy; container cgroups nest under it
// ("/sigil/<pod-id>/<container-id>") and are created by libcontainer.
// Remove deletes the pod's cgroup directories in every cgroup v1 hierarchy
// and in the unified (v2) one.
//
// Example:
//
//	p, err := pod.Create(ctx, "/run/sigil", pod.Config{ID: id, Hostname: "web", Network: pod.NetworkNone})
//	if err != nil { ... }
//	defer p.Remove(ctx)
//	// containers join p.Namespaces.Network, p.Namespaces.IPC, p.Namespaces.UTS
//	// and use a cgroup under p.CgroupParent.
package pod

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sigil-project/sigil/runtime/atomicfile"
)

// Network is how a pod is networked.
type Network string

const (
	// NetworkNone gives the pod its own network namespace with only a
	// loopback interface, up.
	NetworkNone Network = "none"
	// NetworkHost shares the host's network namespace.
	NetworkHost Network = "host"
)

// DefaultCgroupRoot is the cgroup under which pod cgroups are created.
const DefaultCgroupRoot = "/sigil"

// Config describes a pod to create.
type Config struct {
	// ID names the pod; a random one is chosen when empty. It must match
	// [a-zA-Z0-9][a-zA-Z0-9_.-]* and be at most 128 characters.
	ID string `json:"id"`
	// Hostname is set in the pod's UTS namespace; it defaults to the first
	// 12 characters of the ID.
	Hostname string `json:"hostname"`
	// Network is NetworkNone (default) or NetworkHost.
	Network Network `json:"network"`
	// CgroupRoot is the parent of the pod cgroup (default "/sigil").
	CgroupRoot string `json:"cgroup_root,omitempty"`
	// Labels are free-form metadata (the CRI keeps its sandbox labels
	// here).
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are free-form metadata too (the CRI's sandbox
	// annotations).
	Annotations map[string]string `json:"annotations,omitempty"`
	// CgroupParent, when set, is the pod's exact cgroup path (kubelet's
	// cgroupfs parent, e.g. /kubepods/besteffort/pod<uid>) instead of
	// CgroupRoot/ID. Such a cgroup belongs to whoever named it: Remove
	// leaves it in place.
	CgroupParent string `json:"cgroup_parent_override,omitempty"`
	// HostIPC and HostUTS share the host's IPC and UTS namespaces instead
	// of pinning new ones (Kubernetes' hostIPC, and the UTS namespace of a
	// host-network pod). With HostUTS the hostname is not set.
	HostIPC bool `json:"host_ipc,omitempty"`
	HostUTS bool `json:"host_uts,omitempty"`
}

// Namespaces holds the paths of a pod's pinned namespace files. Network is
// empty when the pod uses the host network.
type Namespaces struct {
	Network string `json:"network,omitempty"`
	IPC     string `json:"ipc"`
	UTS     string `json:"uts"`
	// PID is the pinned PID namespace of the pod's infra process (see
	// PinPID); empty when the pod has none.
	PID string `json:"pid,omitempty"`
}

// Pod is a created pod, as recorded on disk.
type Pod struct {
	Config
	// CgroupParent is the pod's cgroup path, e.g. "/sigil/<id>".
	CgroupParent string `json:"cgroup_parent"`
	// Namespaces are the pinned namespace files to join.
	Namespaces Namespaces `json:"namespaces"`
	CreatedAt  time.Time  `json:"created_at"`

	dir    string
	logger *slog.Logger
}

// Option configures Create, Load and List.
type Option func(*options)

type options struct {
	logger *slog.Logger
}

// WithLogger sends the pod's lifecycle messages to l (default: discarded).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

func newOptions(opts []Option) options {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

var validID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`) })

const (
	recordName = "pod.json"
	nsDirName  = "ns"
)

// Dir returns the pod's state directory, <state>/pods/<id>.
func (p *Pod) Dir() string { return p.dir }

func podDir(stateDir, id string) string { return filepath.Join(stateDir, "pods", id) }

// Create pins the pod's namespaces and records it under stateDir. If a pod
// with that ID exists, errdefs.ErrAlreadyExists is returned. On failure
// nothing is left behind.
func Create(ctx context.Context, stateDir string, cfg Config, opts ...Option) (_ *Pod, retErr error) {
	o := newOptions(opts)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.ID == "" {
		cfg.ID = randomID()
	}
	if !validID().MatchString(cfg.ID) {
		return nil, fmt.Errorf("pod ID %q: use letters, digits, '_', '.', '-' (at most 128): %w", cfg.ID, errdefs.ErrInvalidArgument)
	}
	switch cfg.Network {
	case "":
		cfg.Network = NetworkNone
	case NetworkNone, NetworkHost:
	default:
		return nil, fmt.Errorf("pod %s: network %q is not supported: use %q or %q: %w", cfg.ID, cfg.Network, NetworkNone, NetworkHost, errdefs.ErrInvalidArgument)
	}
	if cfg.Hostname == "" {
		cfg.Hostname = cfg.ID
		if len(cfg.Hostname) > 12 {
			cfg.Hostname = cfg.Hostname[:12]
		}
	}
	if len(cfg.Hostname) > 64 {
		return nil, fmt.Errorf("pod %s: hostname %q is longer than 64 characters: %w", cfg.ID, cfg.Hostname, errdefs.ErrInvalidArgument)
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = DefaultCgroupRoot
	}
	if !path.IsAbs(cfg.CgroupRoot) {
		return nil, fmt.Errorf("pod %s: cgroup root %q is not absolute: %w", cfg.ID, cfg.CgroupRoot, errdefs.ErrInvalidArgument)
	}

	cgParent := path.Join(cfg.CgroupRoot, cfg.ID)
	if cfg.CgroupParent != "" {
		if !path.IsAbs(cfg.CgroupParent) {
			return nil, fmt.Errorf("pod %s: cgroup parent %q is not an absolute cgroupfs path (systemd slices are not supported: use kubelet's cgroupfs driver): %w", cfg.ID, cfg.CgroupParent, errdefs.ErrInvalidArgument)
		}
		cgParent = path.Clean(cfg.CgroupParent)
	}
	p := &Pod{
		Config:       cfg,
		CgroupParent: cgParent,
		CreatedAt:    time.Now().UTC(),
		dir:          podDir(stateDir, cfg.ID),
		logger:       o.logger.With("pod_id", cfg.ID),
	}
	p.logger.InfoContext(ctx, "creating pod", "network", cfg.Network, "hostname", cfg.Hostname)
	if err := os.MkdirAll(filepath.Dir(p.dir), 0o700); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", cfg.ID, err)
	}
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("pod %s: %w", cfg.ID, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("create pod %s: %w", cfg.ID, err)
	}
	defer func() {
		if retErr != nil {
			if err := p.Remove(context.WithoutCancel(ctx)); err != nil {
				p.logger.WarnContext(ctx, "cleaning up a pod that failed to start", "error", err)
			}
		}
	}()
	nsDir := filepath.Join(p.dir, nsDirName)
	if err := os.Mkdir(nsDir, 0o700); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", cfg.ID, err)
	}
	ns, err := pinNamespaces(nsDir, cfg.Hostname, pinWhich{net: cfg.Network != NetworkHost, ipc: !cfg.HostIPC, uts: !cfg.HostUTS})
	p.Namespaces = ns // set even on error, so the cleanup unmounts what was pinned
	if err != nil {
		return nil, fmt.Errorf("create pod %s: %w", cfg.ID, err)
	}
	if err := atomicfile.WriteJSON(filepath.Join(p.dir, recordName), p, 0o600); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", cfg.ID, err)
	}
	p.logger.InfoContext(ctx, "created pod", "cgroup_parent", p.CgroupParent)
	return p, nil
}

// Load reads the record of pod id. A pod that does not exist gives
// errdefs.ErrNotFound.
func Load(ctx context.Context, stateDir, id string, opts ...Option) (*Pod, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !validID().MatchString(id) {
		return nil, fmt.Errorf("pod %q: %w", id, errdefs.ErrNotFound)
	}
	o := newOptions(opts)
	dir := podDir(stateDir, id)
	b, err := os.ReadFile(filepath.Join(dir, recordName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pod %s: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load pod %s: %w", id, err)
	}
	p := &Pod{dir: dir, logger: o.logger.With("pod_id", id)}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("load pod %s: %s is corrupt: %w", id, filepath.Join(dir, recordName), err)
	}
	return p, nil
}

// List loads every pod recorded under stateDir. Pods whose record is
// being written or removed concurrently are skipped.
func List(ctx context.Context, stateDir string, opts ...Option) ([]*Pod, error) {
	entries, err := os.ReadDir(filepath.Join(stateDir, "pods"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var pods []*Pod
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p, err := Load(ctx, stateDir, e.Name(), opts...)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// Remove unpins the pod's namespaces, deletes its cgroup directories
// (which must hold no process) and its state directory. It is idempotent:
// removing a removed pod, or one half-created, succeeds.
//
// A namespace stays alive while a process is still in it; Remove only
// drops the pod's own reference.
func (p *Pod) Remove(ctx context.Context) error {
	p.logger.InfoContext(ctx, "removing pod")
	var errs []error
	for _, name := range []string{"net", "ipc", "uts", "pid"} {
		f := filepath.Join(p.dir, nsDirName, name)
		if err := unix.Unmount(f, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", f, err))
		}
	}
	// A cgroup parent named by the caller (kubelet's) is the caller's to
	// remove; the containers' own cgroups in it are gone with them.
	if p.CgroupParent != "" && p.Config.CgroupParent == "" {
		if err := removeCgroups(ctx, p.CgroupParent); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(p.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.ID, err)
	}
	p.logger.InfoContext(ctx, "removed pod")
	return nil
}

// PinPID pins the PID namespace of process pid, the pod's infra process
// (PID 1 of the namespace the pod's containers share), as <dir>/ns/pid,
// and records it in Namespaces.PID. The namespace must not be this
// process's own (the host's): that would be a container's PID namespace
// escaping into the host's, so it is refused with
// errdefs.ErrInvalidArgument. Pinning a pod twice is
// errdefs.ErrAlreadyExists.
func (p *Pod) PinPID(ctx context.Context, pid int) (retErr error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.Namespaces.PID != "" {
		return fmt.Errorf("pod %s: its PID namespace is pinned already: %w", p.ID, errdefs.ErrAlreadyExists)
	}
	src := fmt.Sprintf("/proc/%d/ns/pid", pid)
	nsIno := func(path string) (uint64, error) {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return 0, err
		}
		return st.Ino, nil
	}
	want, err := nsIno(src)
	if err != nil {
		return fmt.Errorf("pod %s: PID namespace of process %d: %w", p.ID, pid, err)
	}
	host, err := nsIno("/proc/self/ns/pid")
	if err != nil {
		return fmt.Errorf("pod %s: own PID namespace: %w", p.ID, err)
	}
	if want == host {
		return fmt.Errorf("pod %s: process %d is in the host's PID namespace, not in a pod's own: %w", p.ID, pid, errdefs.ErrInvalidArgument)
	}
	target := filepath.Join(p.dir, nsDirName, "pid")
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("pod %s: pin the PID namespace: %w", p.ID, err)
	}
	f.Close()
	defer func() {
		if retErr != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			_ = os.Remove(target)
		}
	}()
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("pod %s: pin the PID namespace: bind mount %s on %s: %w", p.ID, src, target, err)
	}
	// What was pinned is what was checked (the process did not exit and
	// have its PID reused in between).
	if got, err := nsIno(target); err != nil || got != want {
		return fmt.Errorf("pod %s: process %d exited while its PID namespace was being pinned: %w", p.ID, pid, errdefs.ErrFailedPrecondition)
	}
	p.Namespaces.PID = target
	if err := atomicfile.WriteJSON(filepath.Join(p.dir, recordName), p, 0o600); err != nil {
		p.Namespaces.PID = ""
		return fmt.Errorf("pod %s: %w", p.ID, err)
	}
	p.logger.InfoContext(ctx, "pinned the pod's PID namespace", "infra_pid", pid)
	return nil
}

// pinWhich says which namespaces a pod gets of its own.
type pinWhich struct{ net, ipc, uts bool }

// pinNamespaces creates new network, IPC and UTS namespaces (those which
// selects) on a dedicated OS thread and bind-mounts them into nsDir. The
// namespaces pinned before a failure are returned with the error, for
// cleanup.
func pinNamespaces(nsDir, hostname string, which pinWhich) (Namespaces, error) {
	var ns Namespaces
	if !which.net && !which.ipc && !which.uts {
		return ns, nil
	}
	err := onDiscardedThread(func() error {
		var err error
		ns, err = pinOnThisThread(nsDir, hostname, which)
		return err
	})
	return ns, err
}

// onDiscardedThread runs fn on an OS thread that is thrown away afterwards,
// for fn to change the thread's namespaces.
//
// The goroutine locks its thread and deliberately never unlocks it: a
// goroutine that exits while locked makes the Go runtime terminate its
// thread instead of reusing it. The main thread is the exception (the
// runtime cannot end it, and would park it forever while it is still in
// the pod's namespaces, where /proc/self/ns and /proc/self/net would see
// them); so when the goroutine finds itself on the main thread, it keeps
// that thread busy and runs fn on a nested goroutine, which therefore gets
// another thread.
func onDiscardedThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			done <- onDiscardedThread(fn)
			runtime.UnlockOSThread()
			return
		}
		done <- fn()
	}()
	return <-done
}

func pinOnThisThread(nsDir, hostname string, which pinWhich) (Namespaces, error) {
	var ns Namespaces
	newNet := which.net
	flags := 0
	if which.ipc {
		flags |= unix.CLONE_NEWIPC
	}
	if which.uts {
		flags |= unix.CLONE_NEWUTS
	}
	if newNet {
		flags |= unix.CLONE_NEWNET
	}
	if err := unix.Unshare(flags); err != nil {
		return ns, fmt.Errorf("unshare namespaces: %w", err)
	}
	if which.uts {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return ns, fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	if newNet {
		if err := loopbackUp(); err != nil {
			return ns, err
		}
	}
	tid := unix.Gettid()
	bind := func(name string) (string, error) {
		target := filepath.Join(nsDir, name)
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			return "", fmt.Errorf("pin %s namespace: %w", name, err)
		}
		f.Close()
		src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, name)
		if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
			return "", fmt.Errorf("pin %s namespace: bind mount %s on %s: %w", name, src, target, err)
		}
		return target, nil
	}
	var err error
	if which.ipc {
		if ns.IPC, err = bind("ipc"); err != nil {
			return ns, err
		}
	}
	if which.uts {
		if ns.UTS, err = bind("uts"); err != nil {
			return ns, err
		}
	}
	if newNet {
		if ns.Network, err = bind("net"); err != nil {
			return ns, err
		}
	}
	return ns, nil
}

// loopbackUp brings up "lo" in the calling thread's network namespace.
func loopbackUp() error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
