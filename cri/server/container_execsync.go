package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/container"
)

// maxExecSyncOutput caps each of stdout and stderr of ExecSync, as
// kubelet's probes expect (16 MiB, the CRI's limit).
const maxExecSyncOutput = 16 << 20

// ExecSync runs a command in a running container and returns its output
// and exit code. A timeout kills the command and is a DeadlineExceeded.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if t := req.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	var stdout, stderr capped
	stdout.max, stderr.max = maxExecSyncOutput, maxExecSyncOutput
	code, err := s.containers.Exec(ctx, req.GetContainerId(), container.ExecOptions{
		Args: req.GetCmd(), IgnoreSignals: true,
	}, container.IO{Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		return nil, err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("command %q timed out after %ds: %w", req.GetCmd(), req.GetTimeout(), context.DeadlineExceeded)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
}

// capped keeps the first max bytes written and drops the rest.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		if len(p) > room {
			c.Buffer.Write(p[:room])
		} else {
			c.Buffer.Write(p)
		}
	}
	return len(p), nil
}
