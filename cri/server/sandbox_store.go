package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/sigil-project/sigil/runtime/atomicfile"
	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// sandboxState is the CRI's view of a pod. A sandbox is written in state
// notReady before anything is set up, and becomes ready once its pod and
// network are; StopPodSandbox makes it notReady again, for good.
//
//	RunPodSandbox ──▶ notReady ──(pod + CNI done)──▶ ready ──StopPodSandbox──▶ notReady ──RemovePodSandbox──▶ (gone)
type sandboxState string

const (
	sandboxReady    sandboxState = "ready"
	sandboxNotReady sandboxState = "notready"
)

// sandbox is the record of <state>/cri/sandboxes/<id>/sandbox.json.
type sandbox struct {
	ID        string       `json:"id"`
	State     sandboxState `json:"state"`
	CreatedAt time.Time    `json:"created_at"`
	// Config is the RunPodSandbox config, in protojson.
	Config json.RawMessage `json:"config"`
	// IPs are the pod's addresses (IPv4 first); empty with host network.
	IPs []string `json:"ips,omitempty"`
	// NetNS is the pod's pinned network namespace ("" for host network).
	NetNS string `json:"netns,omitempty"`
	// Networked says the CNI ADD succeeded and a DEL is owed.
	Networked bool `json:"networked,omitempty"`
	// InfraID is the sandbox's infra container (the pause, PID 1 of the
	// PID namespace its containers share); empty when it has none.
	InfraID        string `json:"infra_id,omitempty"`
	RuntimeHandler string `json:"runtime_handler,omitempty"`

	config *runtimeapi.PodSandboxConfig
}

// Cfg is the sandbox's config (decoded once).
func (sb *sandbox) Cfg() *runtimeapi.PodSandboxConfig {
	if sb.config == nil {
		sb.config = &runtimeapi.PodSandboxConfig{}
		_ = protojson.Unmarshal(sb.Config, sb.config)
	}
	return sb.config
}

func (sb *sandbox) setConfig(c *runtimeapi.PodSandboxConfig) error {
	b, err := protojson.Marshal(c)
	if err != nil {
		return err
	}
	sb.Config, sb.config = b, c
	return nil
}

func (sb *sandbox) hostNetwork() bool {
	return sb.Cfg().GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
}

// sandboxStore keeps sandbox records in dir, one directory per sandbox.
// Records are written to a temporary file and renamed.
type sandboxStore struct{ dir string }

// isSandboxID reports whether s is a whole sandbox ID (64 hex digits, as
// container.NewID makes), not a prefix.
func isSandboxID(s string) bool { return len(s) == 64 && isHex(s) }

func (st *sandboxStore) path(id string) string { return filepath.Join(st.dir, id) }

func (st *sandboxStore) put(sb *sandbox) error {
	if err := os.MkdirAll(st.path(sb.ID), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(sb, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(st.path(sb.ID), "sandbox.json"), b, 0o600)
}

// get loads a sandbox by full ID or unique prefix (crictl accepts
// prefixes). An unknown ID wraps errdefs.ErrNotFound.
func (st *sandboxStore) get(id string) (*sandbox, error) {
	if id == "" {
		return nil, fmt.Errorf("no pod sandbox ID given: %w", errdefs.ErrInvalidArgument)
	}
	if !isSandboxID(id) {
		all, err := st.list()
		if err != nil {
			return nil, err
		}
		var match []*sandbox
		for _, sb := range all {
			if strings.HasPrefix(sb.ID, id) {
				match = append(match, sb)
			}
		}
		switch len(match) {
		case 1:
			return match[0], nil
		case 0:
			return nil, fmt.Errorf("pod sandbox %q: %w", id, errdefs.ErrNotFound)
		default:
			return nil, fmt.Errorf("pod sandbox ID prefix %q matches %d sandboxes: %w", id, len(match), errdefs.ErrInvalidArgument)
		}
	}
	b, err := os.ReadFile(filepath.Join(st.path(id), "sandbox.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pod sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var sb sandbox
	if err := json.Unmarshal(b, &sb); err != nil {
		return nil, fmt.Errorf("pod sandbox %s: corrupt record: %w", id, err)
	}
	return &sb, nil
}

func (st *sandboxStore) list() ([]*sandbox, error) {
	entries, err := os.ReadDir(st.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*sandbox
	for _, e := range entries {
		if !e.IsDir() || !isSandboxID(e.Name()) {
			continue
		}
		sb, err := st.get(e.Name())
		if errdefs.IsNotFound(err) {
			continue // being created or removed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sb)
	}
	return out, nil
}

func (st *sandboxStore) remove(id string) error { return os.RemoveAll(st.path(id)) }
