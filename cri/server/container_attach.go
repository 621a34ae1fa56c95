package server

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Attach checks the request and returns the streaming server's URL for it;
// the client is attached to the container's process by its monitor when
// it connects (streamRuntime.Attach).
func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if !req.GetStdout() && !req.GetStderr() && !req.GetStdin() {
		return nil, fmt.Errorf("attach: one of stdin, stdout and stderr must be set: %w", errdefs.ErrInvalidArgument)
	}
	info, err := s.containers.Inspect(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if !info.Running() {
		return nil, fmt.Errorf("container %s is not running: %w", info.ID, errdefs.ErrFailedPrecondition)
	}
	req.ContainerId = info.ID
	return s.stream.GetAttach(req)
}
