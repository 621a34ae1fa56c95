package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/cri/network"
	"github.com/sigil-project/sigil/runtime/atomicfile"
	"github.com/sigil-project/sigil/runtime/container"
	"github.com/sigil-project/sigil/runtime/pod"
)

// RunPodSandbox creates a pod: pinned namespaces and a cgroup parent
// (runtime/pod), attached to the CNI network unless it uses the host's,
// with its resolv.conf, hostname and hosts files ready for its containers.
// The network, IPC and UTS namespaces are held by bind mounts, with no
// process; a sandbox whose containers share a PID namespace also gets an
// infra container, the pause, as that namespace's PID 1 (see
// sandbox_infra.go), started while the network is set up.
//
// Not idempotent, as the CRI says: a second sandbox with the same
// metadata (name, namespace, uid, attempt) is refused with AlreadyExists.
// A failure leaves nothing behind.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (_ *runtimeapi.RunPodSandboxResponse, retErr error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md == nil || md.GetName() == "" {
		return nil, fmt.Errorf("pod sandbox config has no metadata name: %w", errdefs.ErrInvalidArgument)
	}
	if h := req.GetRuntimeHandler(); h != "" {
		return nil, fmt.Errorf("runtime handler %q: only the default handler exists: %w", h, errdefs.ErrNotFound)
	}
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	hostNet := nsOpts.GetNetwork() == runtimeapi.NamespaceMode_NODE
	if sharesPID(cfg) && s.pauseRootfs == "" {
		return nil, errNoPause(md)
	}
	sb := &sandbox{ID: container.NewID(), State: sandboxNotReady, CreatedAt: time.Now().UTC()}
	if err := sb.setConfig(cfg); err != nil {
		return nil, err
	}
	log := s.log.With("pod_id", sb.ID, "pod", md.GetNamespace()+"/"+md.GetName())

	// Reserve the metadata: the record is written under the lock, in
	// state notReady, before anything slow happens.
	s.reserve.Lock()
	existing, err := s.sandboxes.list()
	if err == nil {
		for _, o := range existing {
			om := o.Cfg().GetMetadata()
			if om.GetName() == md.GetName() && om.GetNamespace() == md.GetNamespace() && om.GetUid() == md.GetUid() && om.GetAttempt() == md.GetAttempt() {
				err = fmt.Errorf("pod sandbox %s/%s (uid %s, attempt %d) exists already as %s: %w", md.GetNamespace(), md.GetName(), md.GetUid(), md.GetAttempt(), o.ID, errdefs.ErrAlreadyExists)
				break
			}
		}
	}
	if err == nil {
		err = s.sandboxes.put(sb)
	}
	s.reserve.Unlock()
	if err != nil {
		return nil, err
	}
	defer s.locks.lock(sb.ID)()
	log.InfoContext(ctx, "running pod sandbox", "host_network", hostNet, "shared_pid", sharesPID(cfg))

	var p *pod.Pod
	defer func() {
		if retErr == nil {
			return
		}
		cctx := context.WithoutCancel(ctx)
		if sb.InfraID != "" {
			if err := s.removeContainer(cctx, sb.InfraID); err != nil {
				log.WarnContext(ctx, "removing the infra container of a pod that failed to start", "error", err)
			}
		}
		if sb.Networked {
			if err := s.network.Teardown(cctx, s.podNetwork(sb)); err != nil {
				log.WarnContext(ctx, "undoing the network of a pod that failed to start", "error", err)
			}
		}
		if p != nil {
			if err := p.Remove(cctx); err != nil {
				log.WarnContext(ctx, "removing a pod that failed to start", "error", err)
			}
		}
		_ = s.sandboxes.remove(sb.ID)
	}()

	hostname := cfg.GetHostname()
	if hostNet {
		hostname, _ = os.Hostname()
	}
	pcfg := pod.Config{
		ID:           sb.ID,
		Hostname:     hostname,
		Network:      pod.NetworkNone,
		CgroupParent: cfg.GetLinux().GetCgroupParent(),
		Labels:       cfg.GetLabels(),
		Annotations:  cfg.GetAnnotations(),
		HostIPC:      nsOpts.GetIpc() == runtimeapi.NamespaceMode_NODE,
		// A pod on the host network has the host's hostname too, as
		// kubelet expects.
		HostUTS: hostNet,
	}
	if hostNet {
		pcfg.Network = pod.NetworkHost
	}
	if len(pcfg.Hostname) > 64 {
		pcfg.Hostname = pcfg.Hostname[:64]
	}
	p, err = pod.Create(ctx, s.cfg.State, pcfg, pod.WithLogger(s.log))
	if err != nil {
		return nil, err
	}
	sb.NetNS = p.Namespaces.Network
	if err := s.writePodFiles(sb, hostname); err != nil {
		return nil, err
	}
	// Recorded before they are made, so that a crash in between still
	// gets the infra container removed and a CNI DEL at removal.
	if sharesPID(cfg) {
		sb.InfraID = container.NewID()
	}
	sb.Networked = !hostNet
	if err := s.sandboxes.put(sb); err != nil {
		return nil, err
	}
	// The infra container starts while the network is set up: neither
	// needs the other (the pause joins the pod's network namespace,
	// pinned already, and never uses it).
	var infraDone chan error
	if sb.InfraID != "" {
		infraDone = make(chan error, 1)
		go func() { infraDone <- s.startInfra(ctx, sb, p) }()
	}
	netErr := s.setupNetwork(ctx, sb, hostname)
	if infraDone != nil {
		// Waited for even when the network failed: the cleanup above
		// removes the infra container, which must not be starting then.
		if err := <-infraDone; err != nil {
			if netErr == nil {
				return nil, err
			}
			log.WarnContext(ctx, "starting the infra container of a pod whose network failed", "error", err)
		}
	}
	if netErr != nil {
		return nil, netErr
	}
	sb.State = sandboxReady
	if err := s.sandboxes.put(sb); err != nil {
		return nil, err
	}
	log.InfoContext(ctx, "pod sandbox ready", "ips", sb.IPs, "infra_id", sb.InfraID)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: sb.ID}, nil
}

// setupNetwork attaches sb to the CNI network unless it uses the host's
// (sb.Networked is already recorded), and writes its /etc/hosts with its
// addresses.
func (s *Server) setupNetwork(ctx context.Context, sb *sandbox, hostname string) error {
	if !sb.Networked {
		return nil
	}
	res, err := s.network.Setup(ctx, s.podNetwork(sb))
	if err != nil {
		sb.Networked = false
		return err
	}
	for _, ip := range res.IPs {
		sb.IPs = append(sb.IPs, ip.String())
	}
	// /etc/hosts names the pod by its own address.
	return s.writeHosts(sb, hostname)
}

// podNetwork is what CNI is told about the sandbox.
func (s *Server) podNetwork(sb *sandbox) network.Pod {
	md := sb.Cfg().GetMetadata()
	pn := network.Pod{ID: sb.ID, NetNS: sb.NetNS, Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid()}
	for _, pm := range sb.Cfg().GetPortMappings() {
		if pm.GetHostPort() <= 0 {
			continue
		}
		pn.Ports = append(pn.Ports, network.PortMapping{
			HostPort:      pm.GetHostPort(),
			ContainerPort: pm.GetContainerPort(),
			Protocol:      strings.ToLower(pm.GetProtocol().String()),
			HostIP:        pm.GetHostIp(),
		})
	}
	return pn
}

// Paths of the files every container of the pod gets.
func (s *Server) resolvConfPath(id string) string {
	return filepath.Join(s.sandboxes.path(id), "resolv.conf")
}
func (s *Server) hostnamePath(id string) string {
	return filepath.Join(s.sandboxes.path(id), "hostname")
}
func (s *Server) hostsPath(id string) string { return filepath.Join(s.sandboxes.path(id), "hosts") }

// writePodFiles writes the pod's resolv.conf (from its DNS config, or the
// host's), hostname and hosts files.
func (s *Server) writePodFiles(sb *sandbox, hostname string) error {
	cfg := sb.Cfg()
	var resolv []byte
	if dns := cfg.GetDnsConfig(); dns != nil && (len(dns.GetServers()) > 0 || len(dns.GetSearches()) > 0 || len(dns.GetOptions()) > 0) {
		var b strings.Builder
		if len(dns.GetSearches()) > 0 {
			fmt.Fprintf(&b, "search %s\n", strings.Join(dns.GetSearches(), " "))
		}
		for _, srv := range dns.GetServers() {
			fmt.Fprintf(&b, "nameserver %s\n", srv)
		}
		if len(dns.GetOptions()) > 0 {
			fmt.Fprintf(&b, "options %s\n", strings.Join(dns.GetOptions(), " "))
		}
		resolv = []byte(b.String())
	} else {
		resolv, _ = os.ReadFile("/etc/resolv.conf")
	}
	if err := atomicfile.WriteFile(s.resolvConfPath(sb.ID), resolv, 0o644); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.hostnamePath(sb.ID), []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	return s.writeHosts(sb, hostname)
}

// writeHosts writes the pod's hosts file: the host's with the host
// network, else localhost and the pod's addresses (sb.IPs, none until
// the network is set up) named hostname.
func (s *Server) writeHosts(sb *sandbox, hostname string) error {
	var hosts []byte
	if sb.hostNetwork() {
		hosts, _ = os.ReadFile("/etc/hosts")
	} else {
		var b strings.Builder
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
		for _, ip := range sb.IPs {
			fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
		}
		hosts = []byte(b.String())
	}
	return atomicfile.WriteFile(s.hostsPath(sb.ID), hosts, 0o644)
}
