package server

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Exec checks the request and returns the streaming server's URL for it;
// the command runs when the client connects (streamRuntime.Exec).
func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec: no command given: %w", errdefs.ErrInvalidArgument)
	}
	if !req.GetStdout() && !req.GetStderr() && !req.GetStdin() {
		return nil, fmt.Errorf("exec: one of stdin, stdout and stderr must be set: %w", errdefs.ErrInvalidArgument)
	}
	if req.GetTty() && req.GetStderr() {
		return nil, fmt.Errorf("exec: with a terminal, stderr is stdout: do not ask for both: %w", errdefs.ErrInvalidArgument)
	}
	info, err := s.containers.Inspect(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if !info.Running() {
		return nil, fmt.Errorf("container %s is not running: %w", info.ID, errdefs.ErrFailedPrecondition)
	}
	req.ContainerId = info.ID
	return s.stream.GetExec(req)
}
