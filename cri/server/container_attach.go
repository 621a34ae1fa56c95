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
	id, err := s.streamTarget(ctx, "attach", req.GetContainerId(), req.GetStdin(), req.GetStdout(), req.GetStderr())
	if err != nil {
		return nil, err
	}
	req.ContainerId = id
	return s.stream.GetAttach(req)
}

// streamTarget checks what Exec and Attach share: at least one stream is
// asked for, and the container (ID, name or ID prefix) is running. It
// returns the container's full ID.
func (s *Server) streamTarget(ctx context.Context, verb, ref string, stdin, stdout, stderr bool) (string, error) {
	if !stdout && !stderr && !stdin {
		return "", fmt.Errorf("%s: one of stdin, stdout and stderr must be set: %w", verb, errdefs.ErrInvalidArgument)
	}
	info, err := s.containers.Inspect(ctx, ref)
	if err != nil {
		return "", err
	}
	if !info.Running() {
		return "", fmt.Errorf("container %s is not running: %w", info.ID, errdefs.ErrFailedPrecondition)
	}
	return info.ID, nil
}
