package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	libseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sigil-project/sigil/runtime/atomicfile"
	"github.com/sigil-project/sigil/runtime/mount"
	"github.com/sigil-project/sigil/runtime/pod"
	"github.com/sigil-project/sigil/runtime/spec"
)

// prepare checks opts, reserves the name and writes the record, in state
// created and owned by ownedBy (nobody: the zero owner).
func (m *Manager) prepare(ctx context.Context, opts CreateOptions, detached bool, ownedBy owner) (*record, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("running containers needs root (rootless containers are not supported): run sigil as root: %w", errdefs.ErrFailedPrecondition)
	}
	if !libseccomp.Enabled {
		return nil, fmt.Errorf("this sigil binary was built without seccomp support, and containers always get the default seccomp profile: rebuild with cgo, libseccomp-dev and -tags seccomp: %w", errdefs.ErrFailedPrecondition)
	}
	if opts.Rootfs.Type == "" || opts.Rootfs.Source == "" {
		return nil, fmt.Errorf("create container: no root filesystem mount given: %w", errdefs.ErrInvalidArgument)
	}
	if opts.ID != "" && !validName().MatchString(opts.ID) {
		return nil, fmt.Errorf("container ID %q: use letters, digits, '_', '.', '-' (at most 128), starting with a letter or digit: %w", opts.ID, errdefs.ErrInvalidArgument)
	}
	for _, d := range opts.OwnedDirs {
		if !path.IsAbs(d) || path.Clean(d) == "/" {
			return nil, fmt.Errorf("owned directory %q: must be absolute, and not /: %w", d, errdefs.ErrInvalidArgument)
		}
	}
	if opts.Name != "" && !validName().MatchString(opts.Name) {
		return nil, fmt.Errorf("container name %q: use letters, digits, '_', '.', '-' (at most 128), starting with a letter or digit: %w", opts.Name, errdefs.ErrInvalidArgument)
	}
	switch opts.Network {
	case "", pod.NetworkNone, pod.NetworkHost:
	default:
		return nil, fmt.Errorf("network %q is not supported: use %q or %q: %w", opts.Network, pod.NetworkNone, pod.NetworkHost, errdefs.ErrInvalidArgument)
	}
	if opts.PodID != "" && opts.Network != "" {
		return nil, fmt.Errorf("a container joining pod %s uses the pod's network: drop the network option: %w", opts.PodID, errdefs.ErrInvalidArgument)
	}
	for _, v := range opts.Run.Volumes {
		if _, err := os.Stat(v.Source); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("volume %s: host path %s does not exist: create it first: %w", v, v.Source, errdefs.ErrInvalidArgument)
			}
			return nil, fmt.Errorf("volume %s: %w", v, err)
		}
	}
	for _, v := range opts.ImageVolumes {
		if v.Mount.Type == "" || !path.IsAbs(v.Destination) || path.Clean(v.Destination) == "/" {
			return nil, fmt.Errorf("image volume at %q: needs a mount and an absolute container path other than /: %w", v.Destination, errdefs.ErrInvalidArgument)
		}
		if path.IsAbs(v.SubPath) {
			return nil, fmt.Errorf("image volume at %s: sub path %q must be relative to the image's root: %w", v.Destination, v.SubPath, errdefs.ErrInvalidArgument)
		}
	}
	if opts.LogPath != "" {
		if !path.IsAbs(opts.LogPath) {
			return nil, fmt.Errorf("log path %q: must be absolute: %w", opts.LogPath, errdefs.ErrInvalidArgument)
		}
		if err := os.MkdirAll(path.Dir(opts.LogPath), 0o755); err != nil {
			return nil, fmt.Errorf("log path %s: %w", opts.LogPath, err)
		}
	}
	if opts.PodID != "" {
		if _, err := pod.Load(ctx, m.state, opts.PodID); err != nil {
			return nil, fmt.Errorf("create container in pod %s: %w", opts.PodID, err)
		}
	}

	id := opts.ID
	if id == "" {
		id = NewID()
	}
	name := opts.Name
	if name == "" {
		name = id[:12]
	}
	r := &record{
		Info: Info{
			ID:          id,
			Name:        name,
			ImageRef:    opts.ImageRef,
			ImageDigest: opts.ImageDigest,
			PodID:       opts.PodID,
			Status:      StatusCreated,
			CreatedAt:   time.Now().UTC(),
			LogPath:     m.logPath(id),
			Options:     opts.Run,
			Stdin:       opts.Stdin,
			AutoRemove:  opts.AutoRemove,
			Detached:    detached,
			// A foreground Run is supervised by its caller.
			Unsupervised: detached && opts.Unsupervised,
			Labels:       opts.Labels,
			Annotations:  opts.Annotations,
			Extra:        opts.Extra,
		},
		Image:        opts.Image,
		Rootfs:       opts.Rootfs,
		Network:      string(opts.Network),
		OwnedDirs:    opts.OwnedDirs,
		Owner:        ownedBy,
		HostPID:      opts.HostPID,
		PIDNamespace: opts.PIDNamespace,
		ImageVolumes: opts.ImageVolumes,
	}
	if opts.LogPath != "" {
		r.LogPath = opts.LogPath
	}
	if r.PodID == "" {
		r.PodID, r.OwnsPod = id, true
	}

	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	all, err := m.allRecords()
	if err != nil {
		return nil, err
	}
	for _, o := range all {
		if o.ID == id {
			return nil, fmt.Errorf("container ID %s is already in use (by %q): %w", id, o.Name, errdefs.ErrAlreadyExists)
		}
		if o.Name == name {
			return nil, fmt.Errorf("container name %q is already in use by container %s: remove it with 'sigil rm %s' or choose another --name: %w", name, o.ID[:12], name, errdefs.ErrAlreadyExists)
		}
	}
	if err := os.Mkdir(m.recordDir(id), 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("container ID %s is already in use: %w", id, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("create container %s: %w", name, err)
	}
	if err := m.writeRecord(r); err != nil {
		_ = os.RemoveAll(m.recordDir(id))
		return nil, fmt.Errorf("create container %s: %w", name, err)
	}
	return r, nil
}

// setup makes the container ready to start: its pod, its rootfs mount,
// its spec and the libcontainer container. On failure, what was done is
// undone.
func (m *Manager) setup(ctx context.Context, r *record, log *slog.Logger) (_ *libcontainer.Container, _ *specs.Spec, retErr error) {
	defer func() {
		if retErr != nil {
			if err := m.teardown(context.WithoutCancel(ctx), r, log); err != nil {
				log.WarnContext(ctx, "cleaning up after a failed start", "error", err)
			}
		}
	}()
	var p *pod.Pod
	var err error
	if r.OwnsPod {
		p, err = pod.Create(ctx, m.state, pod.Config{
			ID:       r.PodID,
			Hostname: r.Options.Hostname,
			Network:  pod.Network(r.Network),
		}, pod.WithLogger(m.logger))
	} else {
		p, err = pod.Load(ctx, m.state, r.PodID, pod.WithLogger(m.logger))
	}
	if err != nil {
		return nil, nil, err
	}

	rootfs := m.rootfsDir(r.ID)
	if err := os.MkdirAll(rootfs, 0o700); err != nil {
		return nil, nil, err
	}
	if err := r.Rootfs.Mount(rootfs); err != nil {
		return nil, nil, fmt.Errorf("mount the image's root filesystem: %w", err)
	}

	run := r.Options
	if run.Hostname == "" {
		run.Hostname = p.Hostname
	}
	if len(r.ImageVolumes) > 0 {
		vols, err := m.mountImageVolumes(r)
		if err != nil {
			return nil, nil, err
		}
		run.Mounts = append(slices.Clone(run.Mounts), vols...)
	}
	s, err := spec.Generate(spec.Options{
		ID:          r.ID,
		Image:       r.Image,
		Rootfs:      rootfs,
		CgroupsPath: path.Join(p.CgroupParent, r.ID),
		Namespaces: spec.Namespaces{
			Network:     p.Namespaces.Network,
			HostNetwork: p.Network == pod.NetworkHost,
			IPC:         p.Namespaces.IPC,
			UTS:         p.Namespaces.UTS,
			HostIPC:     p.HostIPC,
			HostUTS:     p.HostUTS,
			HostPID:     r.HostPID,
			PID:         r.PIDNamespace,
		},
		Run:    run,
		Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	if err := atomicfile.WriteFile(m.specPath(r.ID), b, 0o600); err != nil {
		return nil, nil, fmt.Errorf("write the runtime spec: %w", err)
	}

	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: r.ID, Spec: s})
	if err != nil {
		return nil, nil, fmt.Errorf("convert the runtime spec: %w", err)
	}
	// specconv leaves the process's rlimits to the caller (runc sets them
	// on its Process); in the config they apply to exec'd processes too.
	for _, rl := range s.Process.Rlimits {
		res, ok := spec.RlimitResource(rl.Type)
		if !ok {
			return nil, nil, fmt.Errorf("rlimit %s: unknown: %w", rl.Type, errdefs.ErrInvalidArgument)
		}
		cfg.Rlimits = append(cfg.Rlimits, configs.Rlimit{Type: res, Hard: rl.Hard, Soft: rl.Soft})
	}
	// Whoever supervises the container (sigil run, or the monitor) is the
	// parent of its init: if it dies, the container dies too, rather than
	// run on unsupervised. An unsupervised container outlives its starter
	// on purpose.
	if !r.Unsupervised {
		cfg.ParentDeathSignal = int(unix.SIGKILL)
	}
	lc, err := libcontainer.Create(m.libcontainerRoot(), r.ID, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("create the container: %w", err)
	}
	return lc, s, nil
}

// mountImageVolumes mounts r's image volumes under its state directory
// and returns the bind mounts that put them in the container: read-only,
// nosuid and nodev (a bind mount does not inherit those from its source
// when the runtime remounts it read-only). What it mounted before a
// failure is unmounted by teardown.
func (m *Manager) mountImageVolumes(r *record) ([]specs.Mount, error) {
	var vols []specs.Mount
	for i, v := range r.ImageVolumes {
		dir := m.imageVolumeDir(r.ID, i)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("image volume at %s: %w", v.Destination, err)
		}
		if err := v.Mount.Mount(dir); err != nil {
			return nil, fmt.Errorf("image volume at %s: %w", v.Destination, err)
		}
		src, err := subPathIn(dir, v)
		if err != nil {
			return nil, err
		}
		vols = append(vols, specs.Mount{
			Destination: path.Clean(v.Destination), Type: "bind", Source: src,
			Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev"},
		})
	}
	return vols, nil
}

// subPathIn resolves v's sub path inside its view mounted on dir: a
// symlink may not lead out of it (os.Root refuses), and the view is
// read-only, so what is checked is what gets mounted.
func subPathIn(dir string, v ImageVolume) (string, error) {
	sub := path.Clean("/" + v.SubPath)[1:]
	if sub == "" {
		return dir, nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("image volume at %s: %w", v.Destination, err)
	}
	_, err = root.Stat(sub)
	root.Close()
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("image volume at %s: sub path %q does not exist in the image: %w", v.Destination, v.SubPath, errdefs.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("image volume at %s: sub path %q: %v: it must stay inside the image: %w", v.Destination, v.SubPath, err, errdefs.ErrInvalidArgument)
	}
	return path.Join(dir, sub), nil
}

// CheckImageVolume checks, before a container is created, what starting
// it would find out about v: that its sub path exists in the image and
// stays inside it. It mounts the view on a scratch directory under the
// state directory for the time of the check.
func (m *Manager) CheckImageVolume(v ImageVolume) error {
	if path.Clean("/"+v.SubPath) == "/" {
		return nil
	}
	scratch := filepath.Join(m.state, "tmp")
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return fmt.Errorf("image volume at %s: %w", v.Destination, err)
	}
	dir, err := os.MkdirTemp(scratch, "image-volume-check-")
	if err != nil {
		return fmt.Errorf("image volume at %s: %w", v.Destination, err)
	}
	defer os.Remove(dir)
	if err := v.Mount.Mount(dir); err != nil {
		return fmt.Errorf("image volume at %s: %w", v.Destination, err)
	}
	defer mount.Unmount(dir)
	_, err = subPathIn(dir, v)
	return err
}

// teardown releases what a container holds once its init has exited:
// the libcontainer container (its cgroup and state), the rootfs mount,
// and the pod when the container owns it. It is idempotent.
func (m *Manager) teardown(ctx context.Context, r *record, log *slog.Logger) error {
	var errs []error
	lc, err := libcontainer.Load(m.libcontainerRoot(), r.ID)
	switch {
	case err == nil:
		if st, _ := lc.Status(); st != libcontainer.Stopped {
			_ = lc.Signal(unix.SIGKILL)
			waitStopped(ctx, lc, 5*time.Second)
		}
		if err := lc.Destroy(); err != nil {
			errs = append(errs, err)
		}
	case errors.Is(err, libcontainer.ErrNotExist):
	default:
		errs = append(errs, fmt.Errorf("load the container: %w", err))
	}
	if err := mount.Unmount(m.rootfsDir(r.ID)); err != nil {
		errs = append(errs, err)
	}
	for i := range r.ImageVolumes {
		if err := mount.Unmount(m.imageVolumeDir(r.ID, i)); err != nil {
			errs = append(errs, err)
		}
	}
	if r.OwnsPod {
		p, err := pod.Load(ctx, m.state, r.PodID, pod.WithLogger(m.logger))
		switch {
		case err == nil:
			if err := p.Remove(ctx); err != nil {
				errs = append(errs, err)
			}
		case errors.Is(err, errdefs.ErrNotFound):
		default:
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up container %s: %w", r.Name, err)
	}
	log.DebugContext(ctx, "released the container's resources")
	return nil
}

// waitStopped polls until lc's init is gone, for at most d.
func waitStopped(ctx context.Context, lc *libcontainer.Container, d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		if st, err := lc.Status(); err != nil || st == libcontainer.Stopped {
			return
		}
		if time.Now().After(deadline) || sleepCtx(ctx, 20*time.Millisecond) != nil {
			return
		}
	}
}

// oomKilled reports whether the kernel OOM-killed a process in lc's
// cgroup (memory.oom_control's oom_kill on cgroup v1, memory.events on
// v2). It must be called before lc is destroyed.
func oomKilled(lc *libcontainer.Container) (bool, error) {
	st, err := lc.State()
	if err != nil {
		return false, err
	}
	cfg := lc.Config()
	mgr, err := manager.NewWithPaths(cfg.Cgroups, st.CgroupPaths)
	if err != nil {
		return false, err
	}
	n, err := mgr.OOMKillCount()
	if err != nil {
		return false, err
	}
	return n > 0, nil
}

// newProcess turns the spec's process into a libcontainer one.
// Capabilities, rlimits, seccomp and no_new_privs are the container
// config's: libcontainer applies them to every process, exec'd ones too,
// when the Process leaves them unset.
func newProcess(p *specs.Process, init bool) *libcontainer.Process {
	lp := &libcontainer.Process{
		Args: p.Args,
		Env:  p.Env,
		UID:  int(p.User.UID),
		GID:  int(p.User.GID),
		Cwd:  p.Cwd,
		Init: init,
	}
	for _, g := range p.User.AdditionalGids {
		lp.AdditionalGroups = append(lp.AdditionalGroups, int(g))
	}
	return lp
}
