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
	if req.GetTty() && req.GetStderr() {
		return nil, fmt.Errorf("exec: with a terminal, stderr is stdout: do not ask for both: %w", errdefs.ErrInvalidArgument)
	}
	id, err := s.streamTarget(ctx, "exec", req.GetContainerId(), req.GetStdin(), req.GetStdout(), req.GetStderr())
	if err != nil {
		return nil, err
	}
	req.ContainerId = id
	return s.stream.GetExec(req)
}
