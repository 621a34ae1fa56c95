package server

import (
	"context"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemoveContainer removes a container, killing it first if it runs (as
// the CRI says), with its writable layer and record. The log at the
// kubelet's log path is kubelet's to delete.
//
// Idempotent, as the CRI asks: removing an unknown container succeeds.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	info, err := s.containers.Inspect(ctx, req.GetContainerId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer s.locks.lock(info.ID)()
	if err := s.removeContainer(ctx, info.ID); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (s *Server) removeContainer(ctx context.Context, id string) error {
	if err := s.containers.Remove(ctx, id, true); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}
