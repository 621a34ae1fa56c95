// Package network attaches pods to a CNI network with libcni, as
// containerd's and CRI-O's CRI do: the first network configuration in the
// configuration directory (sorted by file name; .conflist, .conf or
// .json) is run against the pod's pinned network namespace, with the
// pod's Kubernetes identity as CNI_ARGS and its port mappings as the
// portMappings capability (for the portmap plugin).
//
//	n := network.New("/etc/cni/net.d", []string{"/opt/cni/bin", "/usr/lib/cni"}, "/run/sigil/cni")
//	res, err := n.Setup(ctx, network.Pod{ID: id, NetNS: p.Namespaces.Network, Name: "web", Namespace: "default"})
//	// res.IPs[0] is the pod IP
//	err = n.Teardown(ctx, network.Pod{...}) // idempotent
//
// The configuration is read on every call, so a network installed after
// the server started (a CNI daemonset writing its file) is picked up.
package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// IfName is the pod's interface, as Kubernetes expects.
const IfName = "eth0"

// Manager runs CNI plugins for pods.
type Manager struct {
	confDir string
	binDirs []string
	cni     *libcni.CNIConfig
	logger  *slog.Logger
}

// New returns a Manager reading network configurations from confDir and
// plugins from binDirs; libcni keeps what it needs to tear a network down
// (the configuration and result of each attachment) in cacheDir.
func New(confDir string, binDirs []string, cacheDir string, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		confDir: confDir,
		binDirs: binDirs,
		cni:     libcni.NewCNIConfigWithCacheDir(binDirs, cacheDir, nil),
		logger:  logger,
	}
}

// PortMapping is a pod port published on the host (portmap plugin).
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"` // tcp, udp or sctp
	HostIP        string `json:"hostIP,omitempty"`
}

// Pod identifies the pod to attach or detach.
type Pod struct {
	ID        string
	NetNS     string // the pinned network namespace file
	Name      string
	Namespace string
	UID       string
	Ports     []PortMapping
}

// Result is what the network gave the pod.
type Result struct {
	// IPs are the pod's addresses, IPv4 first.
	IPs []net.IP
	// Network is the name of the CNI network.
	Network string
}

// Ready reports whether a usable network configuration exists; the error
// says why not (the CRI's NetworkReady condition).
func (m *Manager) Ready(ctx context.Context) error {
	list, err := m.load()
	if err != nil {
		return err
	}
	for _, p := range list.Plugins {
		if _, err := m.cni.GetVersionInfo(ctx, p.Network.Type); err != nil {
			return fmt.Errorf("network %s: plugin %q in %s: %w", list.Name, p.Network.Type, strings.Join(m.binDirs, ":"), err)
		}
	}
	return nil
}

// load reads the first network configuration of the directory.
func (m *Manager) load() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(m.confDir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, fmt.Errorf("read CNI configuration directory %s: %w", m.confDir, err)
	}
	slices.Sort(files)
	var errs []error
	for _, f := range files {
		var list *libcni.NetworkConfigList
		if strings.HasSuffix(f, ".conflist") {
			list, err = libcni.ConfListFromFile(f)
		} else {
			// Single-plugin .conf files are deprecated by libcni but still
			// what many nodes have; containerd and CRI-O read them too.
			var conf *libcni.NetworkConfig
			conf, err = libcni.ConfFromFile(f) //lint:ignore SA1019 see above
			if err == nil {
				list, err = libcni.ConfListFromConf(conf) //lint:ignore SA1019 see above
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		if len(list.Plugins) == 0 {
			errs = append(errs, fmt.Errorf("%s: no plugins", f))
			continue
		}
		return list, nil
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("no usable CNI network configuration in %s: %w: %w", m.confDir, errors.Join(errs...), errdefs.ErrFailedPrecondition)
	}
	return nil, fmt.Errorf("no CNI network configuration in %s: write one (a bridge + host-local + portmap .conflist; see Documentation/cri.md): %w", m.confDir, errdefs.ErrFailedPrecondition)
}

func (m *Manager) runtimeConf(p Pod) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: p.ID,
		NetNS:       p.NetNS,
		IfName:      IfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ID},
			{"K8S_POD_UID", p.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	if len(p.Ports) > 0 {
		rt.CapabilityArgs["portMappings"] = p.Ports
	}
	return rt
}

// Setup attaches the pod's network namespace to the network. On failure
// whatever the plugins did is undone.
func (m *Manager) Setup(ctx context.Context, p Pod) (*Result, error) {
	list, err := m.load()
	if err != nil {
		return nil, err
	}
	rt := m.runtimeConf(p)
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		if derr := m.cni.DelNetworkList(context.WithoutCancel(ctx), list, rt); derr != nil {
			m.logger.WarnContext(ctx, "undoing a failed CNI ADD", "pod_id", p.ID, "error", derr)
		}
		return nil, fmt.Errorf("attach pod %s to network %s: %w", p.ID, list.Name, err)
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("attach pod %s to network %s: result: %w", p.ID, list.Name, err)
	}
	out := &Result{Network: list.Name}
	for _, ip := range cur.IPs {
		if ip.Interface != nil && *ip.Interface >= 0 && *ip.Interface < len(cur.Interfaces) && cur.Interfaces[*ip.Interface].Name != IfName {
			continue
		}
		out.IPs = append(out.IPs, ip.Address.IP)
	}
	slices.SortStableFunc(out.IPs, func(a, b net.IP) int {
		av4, bv4 := a.To4() != nil, b.To4() != nil
		switch {
		case av4 && !bv4:
			return -1
		case !av4 && bv4:
			return 1
		}
		return 0
	})
	m.logger.InfoContext(ctx, "attached pod to network", "pod_id", p.ID, "network", list.Name, "ips", out.IPs)
	return out, nil
}

// Teardown detaches the pod from the network. It is idempotent: a pod
// never attached, or already detached, or whose namespace is gone, is
// detached with what libcni cached of the attachment.
func (m *Manager) Teardown(ctx context.Context, p Pod) error {
	rt := m.runtimeConf(p)
	if p.NetNS != "" {
		if _, err := os.Stat(p.NetNS); err != nil {
			rt.NetNS = "" // plugins then only release what they hold (IPs, rules)
		}
	}
	// The configuration the pod was attached with, as cached by libcni,
	// is the one to run DEL with, even if the directory changed since.
	list, err := m.cachedList(rt)
	if err != nil {
		return err
	}
	if list == nil {
		return nil
	}
	if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("detach pod %s from network %s: %w", p.ID, list.Name, err)
	}
	m.logger.InfoContext(ctx, "detached pod from network", "pod_id", p.ID, "network", list.Name)
	return nil
}

// cachedList returns the configuration the pod was attached with, or the
// current one when libcni has none cached; nil when there is neither.
func (m *Manager) cachedList(rt *libcni.RuntimeConf) (*libcni.NetworkConfigList, error) {
	current, loadErr := m.load()
	if current != nil {
		b, _, err := m.cni.GetNetworkListCachedConfig(current, rt)
		if err == nil && len(b) > 0 {
			if cached, err := libcni.ConfListFromBytes(b); err == nil {
				return cached, nil
			}
		}
		return current, nil
	}
	atts, err := m.cni.GetCachedAttachments(rt.ContainerID)
	if err == nil {
		for _, a := range atts {
			if a.IfName == IfName {
				if cached, err := libcni.ConfListFromBytes(a.Config); err == nil {
					return cached, nil
				}
			}
		}
	}
	m.logger.Debug("no CNI configuration to detach with", "pod_id", rt.ContainerID, "error", loadErr)
	return nil, nil
}
