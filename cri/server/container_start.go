package server

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StartContainer starts a created container under its monitor and
// returns once it runs. A container that is not in state created is a
// FailedPrecondition (the CRI does not make start idempotent), and so is
// one that joins its pod's shared PID namespace once the pod's infra
// container (that namespace's PID 1) is gone.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	info, err := s.containers.Inspect(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	defer s.locks.lock(info.ID)()
	if meta, cfg, ok := metaOf(info); ok && cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtimeapi.NamespaceMode_POD {
		if sb, err := s.sandboxes.get(meta.SandboxID); err == nil && !s.infraRunning(ctx, sb) {
			return nil, fmt.Errorf("container %s: the infra container of pod sandbox %s (PID 1 of the PID namespace it would join) is not running: "+
				"remove the sandbox and run it again (kubelet does): %w", info.ID, sb.ID, errdefs.ErrFailedPrecondition)
		}
	}
	if err := s.containers.StartCreated(ctx, info.ID); err != nil {
		return nil, err
	}
	return &runtimeapi.StartContainerResponse{}, nil
}
