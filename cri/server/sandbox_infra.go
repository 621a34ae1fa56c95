package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/atomicfile"
	"github.com/sigil-project/sigil/runtime/container"
	"github.com/sigil-project/sigil/runtime/mount"
	"github.com/sigil-project/sigil/runtime/pod"
	"github.com/sigil-project/sigil/runtime/spec"
)

// A pod sandbox whose containers share a PID namespace (NamespaceOptions.Pid
// POD, Kubernetes' shareProcessNamespace) gets an infra container, as CRI-O
// gives one to the pods that need it: a container of the pod whose process
// is the pause program (cmd/sigil/pause/pause.c), PID 1 of a new PID
// namespace. The pod pins that namespace (pod.PinPID) and every container
// of the pod joins it, so PID 1 is the pause, which reaps the pod's
// orphans and keeps the namespace alive while containers come and go.
//
// The infra container is a runtime/container container (record, cgroup
// under the pod's, libcontainer state), started unsupervised
// (container.CreateOptions.Unsupervised), as `runc run -d` starts one: no
// monitor stays with it, so a pod costs the pause's few pages and
// nothing else. The record, which the sandbox record names (InfraID),
// holds the pause's PID and start time: that is what makes it survive a
// restart (or a kill -9) of the server, and what says it is alive. It is
// not one of the CRI's containers: ListContainers does not show it.
//
//	RunPodSandbox:    pod ─▶ CNI ADD, and meanwhile: infra started ─▶ its PID namespace pinned ─▶ ready
//	StopPodSandbox:   containers stopped ─▶ infra stopped (SIGTERM: the pause exits 0; SIGKILL after 2s) ─▶ CNI DEL
//	RemovePodSandbox: containers and infra removed ─▶ pod (and the pin) removed
//
// A sandbox whose infra is not running is reported NOTREADY: its PID
// namespace is gone (the kernel kills every process in a PID namespace
// whose init exits), and kubelet makes a new sandbox. Running means: the
// recorded PID is a live process with the recorded start time (not a
// reused PID, not a zombie), and its PID namespace is the one the pod
// pinned.
//
// The pause runs with no capabilities, no_new_privs, as uid/gid 65535,
// stdio on /dev/null, on a read-only root filesystem that holds the
// pause program and empty mount points only:
// <state>/shim/pause-<digest>/, written once by New. Its seccomp profile
// is the sandbox's (LinuxSandboxSecurityContext.Seccomp), as containerd
// gives its sandbox container: none when unset or Unconfined (and for a
// privileged sandbox), the default profile for RuntimeDefault, the file
// for Localhost.

// The infra container's user (the k8s pause image's) and stop timeout.
const (
	pauseUser = "65535:65535"
	// pauseStopTimeout is how long StopPodSandbox waits for the pause to
	// exit on SIGTERM (it does at once) before SIGKILL.
	pauseStopTimeout = 2 * time.Second
)

// pauseMountPoints are the directories of the pause's root filesystem:
// mount points of the runtime's default mounts (and the tmpfs scratch
// directories of a read-only root), so that nothing is ever created in it.
func pauseMountPoints() []string {
	return []string{"proc", "dev", "sys", "tmp", "var", "var/tmp", "run"}
}

// infraMeta is what the infra container's record carries (Info.Extra):
// the sandbox it belongs to. It has no sandbox_id, so metaOf does not
// take it for one of the CRI's containers.
type infraMeta struct {
	InfraFor string `json:"infra_for"`
}

// writePauseRootfs writes the pause's root filesystem under
// <state>/shim/pause-<first 16 hex digits of its sha256>/, unless it is
// there already with the same program, and removes those of other
// builds (an infra container already running keeps the directory it
// mounted). It returns the directory.
func writePauseRootfs(state string, bin []byte) (string, error) {
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])
	dir := filepath.Join(state, "shim")
	final := filepath.Join(dir, "pause-"+digest[:16])
	if pauseRootfsOK(final, bin) {
		return final, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("pause program: %w (choose another --state)", err)
	}
	tmp, err := os.MkdirTemp(dir, ".pause-")
	if err != nil {
		return "", fmt.Errorf("pause program: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("pause program: %w", err)
	}
	for _, d := range pauseMountPoints() {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			return "", fmt.Errorf("pause program: %w", err)
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, "pause"), bin, 0o555); err != nil {
		return "", fmt.Errorf("pause program: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another server wrote it meanwhile (fine, same content), or a
		// damaged copy is in the way.
		if !pauseRootfsOK(final, bin) {
			if err := os.RemoveAll(final); err != nil {
				return "", fmt.Errorf("pause program: replace %s: %w", final, err)
			}
			if err := os.Rename(tmp, final); err != nil {
				return "", fmt.Errorf("pause program: %w", err)
			}
		}
	}
	if old, err := filepath.Glob(filepath.Join(dir, "pause-*")); err == nil {
		for _, o := range old {
			if o != final {
				_ = os.RemoveAll(o)
			}
		}
	}
	return final, nil
}

// pauseRootfsOK reports whether dir is a complete pause root filesystem
// for bin.
func pauseRootfsOK(dir string, bin []byte) bool {
	b, err := os.ReadFile(filepath.Join(dir, "pause"))
	if err != nil || !bytes.Equal(b, bin) {
		return false
	}
	for _, d := range pauseMountPoints() {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// sharesPID reports whether the sandbox's containers share one PID
// namespace.
func sharesPID(cfg *runtimeapi.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtimeapi.NamespaceMode_POD
}

// errNoPause is why a sandbox that shares its PID namespace is refused by
// a sigil built without the pause program.
func errNoPause(md *runtimeapi.PodSandboxMetadata) error {
	return fmt.Errorf("pod sandbox %s/%s shares one PID namespace among its containers (shareProcessNamespace), "+
		"which needs sigil's pause program as its PID 1, and this sigil was built without it (plain go build): "+
		"build sigil with 'make build': %w", md.GetNamespace(), md.GetName(), errdefs.ErrFailedPrecondition)
}

// startInfra starts the infra container sb.InfraID of sb in pod p and
// pins its PID namespace as the pod's. sb.InfraID is recorded before, so
// that a server killed meanwhile leaves a sandbox whose removal finds it.
// It runs while RunPodSandbox sets the pod's network up (the pause needs
// none of it, and each takes tens of milliseconds), so it reads sb and
// writes nothing of it.
func (s *Server) startInfra(ctx context.Context, sb *sandbox, p *pod.Pod) error {
	md := sb.Cfg().GetMetadata()
	if s.pauseRootfs == "" {
		return errNoPause(md)
	}
	extra, err := json.Marshal(infraMeta{InfraFor: sb.ID})
	if err != nil {
		return err
	}
	_, err = s.containers.Start(ctx, container.CreateOptions{
		ID:       sb.InfraID,
		Name:     containerName(&runtimeapi.ContainerMetadata{Name: "POD", Attempt: md.GetAttempt()}, md),
		ImageRef: "sigil/pause:" + filepath.Base(s.pauseRootfs)[len("pause-"):],
		Image:    ocispec.ImageConfig{Entrypoint: []string{"/pause"}, User: pauseUser},
		Rootfs:   mount.Mount{Type: "bind", Source: s.pauseRootfs, Options: []string{"bind", "ro", "nosuid", "nodev"}},
		Run: spec.RunOptions{
			ReadOnly: true,
			CapDrop:  []string{"ALL"},
			Seccomp:  sandboxSeccomp(sb.Cfg().GetLinux().GetSecurityContext()),
			// no_new_privs is set unless AllowPrivilegeEscalation.
		},
		PodID:        sb.ID,
		Extra:        extra,
		Unsupervised: true,
	})
	if err != nil {
		return fmt.Errorf("pod sandbox %s: start its infra container (the pause, PID 1 of the pod's PID namespace): %w", sb.ID, err)
	}
	info, err := s.containers.Inspect(ctx, sb.InfraID)
	if err != nil {
		return fmt.Errorf("pod sandbox %s: infra container: %w", sb.ID, err)
	}
	if !info.Running() || info.Pid <= 0 {
		return fmt.Errorf("pod sandbox %s: the infra container (the pause) exited at once (%s): see the start log %s: %w",
			sb.ID, info.Error, filepath.Join(s.cfg.State, "containers", sb.InfraID, "monitor.log"), errdefs.ErrFailedPrecondition)
	}
	return p.PinPID(ctx, info.Pid)
}

// stopInfra stops sb's infra container, if it has one: the pause exits 0
// on SIGTERM. Stopping it kills whatever is left in the pod's PID
// namespace, so it comes after the containers.
func (s *Server) stopInfra(ctx context.Context, sb *sandbox) error {
	if sb.InfraID == "" {
		return nil
	}
	if err := s.containers.Stop(ctx, sb.InfraID, pauseStopTimeout); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("pod sandbox %s: stop its infra container: %w", sb.ID, err)
	}
	return nil
}

// infraRunning reports whether sb's infra container runs (true for a
// sandbox without one): its record says so, which Inspect checks against
// the pause's PID and start time, and that process's PID namespace is the
// one the pod pinned.
func (s *Server) infraRunning(ctx context.Context, sb *sandbox) bool {
	if sb.InfraID == "" {
		return true
	}
	info, err := s.containers.Inspect(ctx, sb.InfraID)
	if err != nil || !info.Running() || info.Pid <= 0 {
		return false
	}
	p, err := pod.Load(ctx, s.cfg.State, sb.ID)
	if err != nil || p.Namespaces.PID == "" {
		// Still starting: the namespace is pinned right after the start.
		return err == nil
	}
	return sameFile(fmt.Sprintf("/proc/%d/ns/pid", info.Pid), p.Namespaces.PID)
}

// sameFile reports whether a and b name the same file (for namespace
// files: the same namespace).
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// sandboxSeccomp is the seccomp profile of the sandbox's infra container,
// as containerd chooses its sandbox container's: the sandbox security
// context's Seccomp (or the deprecated SeccompProfilePath), unconfined
// when unset or privileged.
func sandboxSeccomp(sc *runtimeapi.LinuxSandboxSecurityContext) string {
	if sc.GetPrivileged() {
		return spec.SeccompUnconfined
	}
	prof := sc.GetSeccomp()
	//lint:ignore SA1019 older kubelets send the path ("runtime/default", "unconfined", "localhost/<path>") instead
	if path := sc.GetSeccompProfilePath(); prof == nil && path != "" {
		return path
	}
	return seccompProfile(prof)
}

// sandboxState is the sandbox's state as the CRI sees it: ready only if
// its record says so and its infra container (if it has one) runs.
func (s *Server) sandboxState(ctx context.Context, sb *sandbox) runtimeapi.PodSandboxState {
	if sb.State == sandboxReady && s.infraRunning(ctx, sb) {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

// podPIDNamespace returns the PID namespace that sb's containers share:
// the one its infra container pinned. A sandbox recorded by an earlier
// sigil, which has no infra container, shares the first running
// POD-mode container's (or this container's own becomes it: "" is
// returned).
func (s *Server) podPIDNamespace(ctx context.Context, sb *sandbox) (string, error) {
	if sb.InfraID != "" {
		if !s.infraRunning(ctx, sb) {
			return "", fmt.Errorf("pod sandbox %s: its infra container (PID 1 of the pod's shared PID namespace) is not running, so that namespace is gone: "+
				"remove the sandbox and run it again (kubelet does): %w", sb.ID, errdefs.ErrFailedPrecondition)
		}
		p, err := pod.Load(ctx, s.cfg.State, sb.ID)
		if err != nil {
			return "", err
		}
		if p.Namespaces.PID == "" {
			return "", fmt.Errorf("pod sandbox %s: the pod's PID namespace was never pinned (the sandbox did not finish starting): remove it and run it again: %w", sb.ID, errdefs.ErrFailedPrecondition)
		}
		return p.Namespaces.PID, nil
	}
	list, err := s.containers.List(ctx)
	if err != nil {
		return "", err
	}
	// List is newest first: the oldest running one started the namespace.
	for i := len(list) - 1; i >= 0; i-- {
		c := list[i]
		if c.PodID != sb.ID || !c.Running() || c.Pid == 0 {
			continue
		}
		if _, cfg, ok := metaOf(c); ok && cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtimeapi.NamespaceMode_POD {
			return fmt.Sprintf("/proc/%d/ns/pid", c.Pid), nil
		}
	}
	return "", nil
}
