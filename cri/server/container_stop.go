package server

import (
	"context"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StopContainer sends the stop signal, then SIGKILL after the timeout
// (0: at once), and returns once the exit is recorded.
//
// Idempotent, as the CRI asks: stopping a stopped container succeeds, and
// so does stopping an unknown one (kubelet retries stops of containers it
// may have removed).
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	info, err := s.containers.Inspect(ctx, req.GetContainerId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer s.locks.lock(info.ID)()
	if err := s.containers.Stop(ctx, info.ID, time.Duration(req.GetTimeout())*time.Second); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}
