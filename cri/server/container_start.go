package server

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StartContainer starts a created container under its monitor and
// returns once it runs. A container that is not in state created is a
// FailedPrecondition (the CRI does not make start idempotent).
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	info, err := s.containers.Inspect(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	defer s.locks.lock(info.ID)()
	if err := s.containers.StartCreated(ctx, info.ID); err != nil {
		return nil, err
	}
	return &runtimeapi.StartContainerResponse{}, nil
}
