package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/container"
	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/pull"
	"github.com/sigil-project/sigil/runtime/spec"
)

// containerMeta is what the CRI keeps in a container's record
// (container.Info.Extra).
type containerMeta struct {
	Name      string `json:"name"`
	Attempt   uint32 `json:"attempt"`
	SandboxID string `json:"sandbox_id"`
	// Image is the image as the request named it; ImageID its config
	// digest.
	Image   string `json:"image"`
	ImageID string `json:"image_id"`
	// Config is the CreateContainer config, in protojson.
	Config json.RawMessage `json:"config"`
}

func metaOf(info container.Info) (*containerMeta, *runtimeapi.ContainerConfig, bool) {
	if len(info.Extra) == 0 {
		return nil, nil, false
	}
	var m containerMeta
	if err := json.Unmarshal(info.Extra, &m); err != nil || m.SandboxID == "" {
		return nil, nil, false
	}
	cfg := &runtimeapi.ContainerConfig{}
	_ = protojson.Unmarshal(m.Config, cfg)
	return &m, cfg, true
}

// CreateContainer records a container in a ready sandbox, from an image
// already on the node, which the trust policy of the pod's namespace
// judges again (a key withdrawn since the pull stops it here). The
// container is created, not started, and `sigil ps -a` shows it.
//
// Not idempotent: the same metadata (name, attempt) in the same sandbox
// is refused with AlreadyExists, as containerd does.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (_ *runtimeapi.CreateContainerResponse, retErr error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, fmt.Errorf("container config has no metadata name: %w", errdefs.ErrInvalidArgument)
	}
	sb, err := s.sandboxes.get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if s.sandboxState(ctx, sb) != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, fmt.Errorf("pod sandbox %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	sbCfg := sb.Cfg()
	ns := sbCfg.GetMetadata().GetNamespace()

	// A stored image's acceptance is usually in the verdict cache; on a
	// miss its signatures are read with the node's credentials.
	verifier, err := s.cfg.Verifier(ctx, ns, s.cfg.Keychain)
	if err != nil {
		return nil, fmt.Errorf("create container: trust policy: %w", err)
	}
	img, err := s.trustedImage(ctx, verifier, cfg.GetImage().GetImage())
	if err != nil {
		return nil, err
	}
	imgCfg, err := s.stores.ImageConfig(ctx, img)
	if err != nil {
		return nil, err
	}

	id := container.NewID()
	run, opts, err := s.runOptions(ctx, sb, cfg)
	if err != nil {
		return nil, err
	}
	// Until the container is recorded, its snapshots are ours to remove;
	// after, they go with it (OwnedDirs).
	var snapshotKeys []string
	defer func() {
		if retErr == nil {
			return
		}
		if _, err := s.containers.Inspect(ctx, id); errdefs.IsNotFound(err) {
			for _, key := range snapshotKeys {
				_ = s.stores.Snapshots.Remove(context.WithoutCancel(ctx), key)
			}
		}
	}()
	rootfs, err := s.stores.Snapshots.Prepare(ctx, id, img.ChainIDs())
	if err != nil {
		return nil, err
	}
	snapshotKeys = append(snapshotKeys, id)
	imageVolumes, err := s.imageVolumes(ctx, verifier, id, cfg.GetMounts(), &snapshotKeys)
	if err != nil {
		return nil, err
	}
	ownedDirs := make([]string, 0, len(snapshotKeys))
	for _, key := range snapshotKeys {
		ownedDirs = append(ownedDirs, s.stores.Snapshots.ActiveDir(key))
	}
	cfgJSON, err := protojson.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	extra, err := json.Marshal(containerMeta{
		Name: cfg.GetMetadata().GetName(), Attempt: cfg.GetMetadata().GetAttempt(),
		SandboxID: sb.ID, Image: cfg.GetImage().GetImage(), ImageID: img.ID().String(),
		Config: cfgJSON,
	})
	if err != nil {
		return nil, err
	}
	imageConfig := imgCfg.Config
	if sig := cfg.GetStopSignal(); sig != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		imageConfig.StopSignal = strings.TrimPrefix(sig.String(), "SIGNAL_")
	}
	co := container.CreateOptions{
		ID:           id,
		Name:         containerName(cfg.GetMetadata(), sbCfg.GetMetadata()),
		ImageRef:     img.Name,
		ImageDigest:  img.Target.Digest,
		Image:        imageConfig,
		Rootfs:       rootfs,
		Run:          run,
		Stdin:        cfg.GetStdin(),
		PodID:        sb.ID,
		OwnedDirs:    ownedDirs,
		Labels:       cfg.GetLabels(),
		Annotations:  cfg.GetAnnotations(),
		Extra:        extra,
		HostPID:      opts.hostPID,
		PIDNamespace: opts.pidNS,
		ImageVolumes: imageVolumes,
	}
	if dir, p := sbCfg.GetLogDirectory(), cfg.GetLogPath(); dir != "" && p != "" {
		co.LogPath = filepath.Join(dir, p)
	}
	if _, err := s.containers.Create(ctx, co); err != nil {
		return nil, err
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

// nsChoice is how a container's PID namespace is chosen.
type nsChoice struct {
	hostPID bool
	pidNS   string
}

// runOptions turns a CRI container config (in its sandbox) into the spec
// package's options.
func (s *Server) runOptions(ctx context.Context, sb *sandbox, cfg *runtimeapi.ContainerConfig) (spec.RunOptions, nsChoice, error) {
	var ch nsChoice
	sbCfg := sb.Cfg()
	lin := cfg.GetLinux()
	sc := lin.GetSecurityContext()
	run := spec.RunOptions{
		Args:       cfg.GetArgs(),
		Workdir:    cfg.GetWorkingDir(),
		Tty:        cfg.GetTty(),
		Hostname:   "", // the pod's
		ReadOnly:   sc.GetReadonlyRootfs(),
		Privileged: sc.GetPrivileged(),
		// Kubernetes' allowPrivilegeEscalation defaults to true, and
		// kubelet sends no_new_privs=false then: setuid programs must
		// work in such a container.
		AllowPrivilegeEscalation: !sc.GetNoNewPrivs(),
		Annotations:              cfg.GetAnnotations(),
	}
	if len(cfg.GetCommand()) > 0 {
		run.OverrideEntrypoint = true
		run.Entrypoint = cfg.GetCommand()
	}
	for _, kv := range cfg.GetEnvs() {
		run.Env = append(run.Env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	// User: run_as_username, else run_as_user[:run_as_group].
	switch {
	case sc.GetRunAsUsername() != "":
		run.User = sc.GetRunAsUsername()
	case sc.GetRunAsUser() != nil:
		run.User = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
	}
	if g := sc.GetRunAsGroup(); g != nil {
		if run.User == "" {
			return run, ch, fmt.Errorf("run_as_group without run_as_user or run_as_username: %w", errdefs.ErrInvalidArgument)
		}
		run.User += ":" + strconv.FormatInt(g.GetValue(), 10)
	}
	for _, g := range sc.GetSupplementalGroups() {
		run.GroupAdd = append(run.GroupAdd, strconv.FormatInt(g, 10))
	}
	if caps := sc.GetCapabilities(); caps != nil {
		run.CapAdd = caps.GetAddCapabilities()
		run.CapDrop = caps.GetDropCapabilities()
	}
	// Seccomp, as the CRI defines it: no profile means unconfined (kubelet
	// sends RuntimeDefault when the pod or the node asks for it), and a
	// privileged container ignores any profile, as in containerd and
	// CRI-O.
	run.Seccomp = spec.SeccompUnconfined
	if !run.Privileged {
		run.Seccomp = seccompProfile(sc.GetSeccomp())
		if mp := sc.GetMaskedPaths(); mp != nil {
			run.MaskedPaths = &mp
		}
		if rp := sc.GetReadonlyPaths(); rp != nil {
			run.ReadonlyPaths = &rp
		}
	}
	// Sysctls are the pod's, applied in every container (they act on the
	// shared namespaces).
	run.Sysctls = sbCfg.GetLinux().GetSysctls()

	if res := lin.GetResources(); res != nil {
		run.Memory = res.GetMemoryLimitInBytes()
		run.CPUShares = uint64(res.GetCpuShares())
		run.CPUQuota = res.GetCpuQuota()
		run.CPUPeriod = uint64(res.GetCpuPeriod())
		run.CpusetCPUs = res.GetCpusetCpus()
		run.CpusetMems = res.GetCpusetMems()
		// oom_score_adj is not applied: lowering it needs
		// CAP_SYS_RESOURCE, which root may lack on this kind of host.
	}

	// PID namespace: the container's own, the host's, or the pod's.
	switch sc.GetNamespaceOptions().GetPid() {
	case runtimeapi.NamespaceMode_NODE:
		ch.hostPID = true
	case runtimeapi.NamespaceMode_POD:
		ns, err := s.podPIDNamespace(ctx, sb)
		if err != nil {
			return run, ch, err
		}
		ch.pidNS = ns
	case runtimeapi.NamespaceMode_TARGET:
		target := sc.GetNamespaceOptions().GetTargetId()
		info, err := s.containers.Inspect(ctx, target)
		if err != nil {
			return run, ch, fmt.Errorf("target container %s for the PID namespace: %w", target, err)
		}
		if !info.Running() {
			return run, ch, fmt.Errorf("target container %s for the PID namespace is not running: %w", target, errdefs.ErrFailedPrecondition)
		}
		ch.pidNS = fmt.Sprintf("/proc/%d/ns/pid", info.Pid)
	}

	// The pod's files, then the config's mounts (which may replace them).
	run.Volumes = append(run.Volumes,
		spec.Volume{Source: s.resolvConfPath(sb.ID), Destination: "/etc/resolv.conf", ReadOnly: sc.GetReadonlyRootfs()},
		spec.Volume{Source: s.hostnamePath(sb.ID), Destination: "/etc/hostname", ReadOnly: sc.GetReadonlyRootfs()},
		spec.Volume{Source: s.hostsPath(sb.ID), Destination: "/etc/hosts", ReadOnly: sc.GetReadonlyRootfs()},
	)
	for _, m := range cfg.GetMounts() {
		src, dst := m.GetHostPath(), m.GetContainerPath()
		if isImageMount(m) {
			continue // see imageVolumes
		}
		if src == "" || dst == "" || !filepath.IsAbs(dst) {
			return run, ch, fmt.Errorf("mount %q -> %q: both paths must be given, the container path absolute: %w", src, dst, errdefs.ErrInvalidArgument)
		}
		// A host path that does not exist is created as a directory, as
		// containerd and docker do for bind mounts.
		if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(src, 0o755); err != nil {
				return run, ch, fmt.Errorf("mount %s: create the host directory: %w", src, err)
			}
		}
		if resolved, err := filepath.EvalSymlinks(src); err == nil {
			src = resolved
		}
		v := spec.Volume{Source: src, Destination: filepath.Clean(dst), ReadOnly: m.GetReadonly()}
		switch m.GetPropagation() {
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			v.Propagation = "rslave"
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			v.Propagation = "rshared"
		}
		run.Volumes = append(run.Volumes, v)
	}
	for _, d := range cfg.GetDevices() {
		run.Devices = append(run.Devices, spec.Device{HostPath: d.GetHostPath(), ContainerPath: d.GetContainerPath(), Permissions: d.GetPermissions()})
	}
	return run, ch, nil
}

var invalidNameChars = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^a-zA-Z0-9_.-]`) })

// isImageMount reports whether m mounts an image (an image volume).
func isImageMount(m *runtimeapi.Mount) bool { return m.GetImage().GetImage() != "" }

// trustedImage returns the stored image that spec names, once verifier
// (the trust policy of the pod's namespace) has judged it again: a key
// withdrawn since the pull stops it here. A container's image and its
// image volumes go through it alike.
func (s *Server) trustedImage(ctx context.Context, verifier pull.Verifier, spec string) (*images.Image, error) {
	recs, err := s.findImage(ctx, spec)
	if err != nil {
		return nil, err
	}
	img := recs[0]
	if err := verifier.VerifyImage(ctx, img.Name, img.Target); err != nil {
		return nil, err
	}
	return img, nil
}

// imageVolumes turns the config's image mounts (KEP-4639) into the
// container's image volumes: each image, already on the node, is judged
// by the trust policy as the container's own image is, and gets a view
// snapshot (a read-only overlay of its layers, keyed <id>-iv<n>, which
// keeps them from gc), mounted read-only, nosuid and nodev at the
// container path. A mount that asks to be writable, or a sub path the
// image lacks, is refused here, at create, as the KEP asks. The image's
// ID is recorded in the mount (ImageSpec.image_ref, which ContainerStatus
// reports). The view keys are appended to keys as they are made.
func (s *Server) imageVolumes(ctx context.Context, verifier pull.Verifier, id string, mounts []*runtimeapi.Mount, keys *[]string) ([]container.ImageVolume, error) {
	var out []container.ImageVolume
	for i, m := range mounts {
		if !isImageMount(m) {
			continue
		}
		ref, dst := m.GetImage().GetImage(), m.GetContainerPath()
		if !filepath.IsAbs(dst) || filepath.Clean(dst) == "/" {
			return nil, fmt.Errorf("image volume %s: container path %q must be absolute, and not /: %w", ref, dst, errdefs.ErrInvalidArgument)
		}
		if m.GetHostPath() != "" {
			return nil, fmt.Errorf("image volume %s at %s: a mount has an image or a host path, not both: %w", ref, dst, errdefs.ErrInvalidArgument)
		}
		if sub := m.GetImageSubPath(); filepath.IsAbs(sub) {
			return nil, fmt.Errorf("image volume %s at %s: sub path %q must be relative to the image's root: %w", ref, dst, sub, errdefs.ErrInvalidArgument)
		}
		if !m.GetReadonly() {
			return nil, fmt.Errorf("image volume %s at %s: image volumes are read-only; set readonly: true (kubelet does): %w", ref, dst, errdefs.ErrInvalidArgument)
		}
		img, err := s.trustedImage(ctx, verifier, ref)
		if err != nil {
			return nil, fmt.Errorf("image volume at %s: %w", dst, err)
		}
		key := fmt.Sprintf("%s-iv%d", id, i)
		view, err := s.stores.Snapshots.View(ctx, key, img.ChainIDs())
		if err != nil {
			return nil, fmt.Errorf("image volume %s at %s: %w", img.Name, dst, err)
		}
		*keys = append(*keys, key)
		vol := container.ImageVolume{Mount: view, Destination: filepath.Clean(dst), SubPath: m.GetImageSubPath()}
		if err := s.containers.CheckImageVolume(vol); err != nil {
			return nil, fmt.Errorf("image volume %s: %w", img.Name, err)
		}
		m.Image.ImageRef = img.ID().String()
		out = append(out, vol)
	}
	return out, nil
}

// containerName is the container's name in the store, as kubelet's
// docker-era names read: k8s_<container>_<pod>_<namespace>_<uid>_<attempt>.
// The store keeps names unique, which is the CRI's "same metadata in the
// same sandbox is refused". A name longer than the store allows keeps
// its head and a hash of the whole.
func containerName(c *runtimeapi.ContainerMetadata, p *runtimeapi.PodSandboxMetadata) string {
	name := fmt.Sprintf("k8s_%s_%s_%s_%s_%d", c.GetName(), p.GetName(), p.GetNamespace(), p.GetUid(), c.GetAttempt())
	name = invalidNameChars().ReplaceAllString(name, "-")
	if len(name) > 128 {
		sum := sha256.Sum256([]byte(name))
		name = name[:128-17] + "-" + hex.EncodeToString(sum[:8])
	}
	return strings.TrimLeft(name, "_.-")
}

// seccompProfile is the spec.RunOptions.Seccomp of a CRI security
// profile: unconfined when nil (kubelet sends RuntimeDefault when the pod
// or the node asks for it) or Unconfined.
func seccompProfile(prof *runtimeapi.SecurityProfile) string {
	if prof == nil {
		// Not RuntimeDefault, the profile type's zero value.
		return spec.SeccompUnconfined
	}
	switch prof.GetProfileType() {
	case runtimeapi.SecurityProfile_RuntimeDefault:
		return "runtime/default"
	case runtimeapi.SecurityProfile_Localhost:
		return spec.SeccompLocalhostPrefix + prof.GetLocalhostRef()
	}
	return spec.SeccompUnconfined
}
