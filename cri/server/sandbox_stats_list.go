package server

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandboxStats reports the stats of the sandboxes, filtered by ID
// and labels.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	st, err := s.listSandboxStats(ctx, req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: st}, nil
}

// StreamPodSandboxStats is ListPodSandboxStats in one message.
func (s *Server) StreamPodSandboxStats(req *runtimeapi.StreamPodSandboxStatsRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxStatsResponse]) error {
	st, err := s.listSandboxStats(stream.Context(), req.GetFilter())
	if err != nil {
		return err
	}
	return stream.Send(&runtimeapi.StreamPodSandboxStatsResponse{PodSandboxStats: st})
}

func (s *Server) listSandboxStats(ctx context.Context, f *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	all, err := s.sandboxes.list()
	if err != nil {
		return nil, err
	}
	var keep []*sandbox
	for _, sb := range all {
		if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) {
			continue
		}
		if !matchLabels(sb.Cfg().GetLabels(), f.GetLabelSelector()) {
			continue
		}
		keep = append(keep, sb)
	}
	out := []*runtimeapi.PodSandboxStats{}
	if len(keep) == 0 {
		return out, nil
	}
	// The containers are listed once for all the sandboxes; when they
	// cannot be, no sandbox is reported (their containers' stats are
	// unknown).
	containers, err := s.containers.List(ctx)
	if err != nil {
		return out, nil
	}
	for _, sb := range keep {
		out = append(out, s.sandboxStats(ctx, sb, containers))
	}
	return out, nil
}
