package server

import (
	"context"
	"strings"

	"github.com/sigil-project/sigil/runtime/container"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainerStats reports the stats of the CRI's containers, filtered
// by ID, sandbox and labels.
func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	st, err := s.listContainerStats(ctx, req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: st}, nil
}

// StreamContainerStats is ListContainerStats in one message.
func (s *Server) StreamContainerStats(req *runtimeapi.StreamContainerStatsRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamContainerStatsResponse]) error {
	st, err := s.listContainerStats(stream.Context(), req.GetFilter())
	if err != nil {
		return err
	}
	return stream.Send(&runtimeapi.StreamContainerStatsResponse{ContainerStats: st})
}

func (s *Server) listContainerStats(ctx context.Context, f *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	all, err := s.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	return s.containerStatsOf(ctx, all, f), nil
}

// containerStatsOf is the stats of the CRI containers among all that f
// keeps.
func (s *Server) containerStatsOf(ctx context.Context, all []container.Info, f *runtimeapi.ContainerStatsFilter) []*runtimeapi.ContainerStats {
	out := []*runtimeapi.ContainerStats{}
	for _, info := range all {
		meta, cfg, ok := metaOf(info)
		if !ok {
			continue
		}
		if f.GetId() != "" && !strings.HasPrefix(info.ID, f.GetId()) {
			continue
		}
		if f.GetPodSandboxId() != "" && !strings.HasPrefix(meta.SandboxID, f.GetPodSandboxId()) {
			continue
		}
		if !matchLabels(info.Labels, f.GetLabelSelector()) {
			continue
		}
		st, err := s.containerStats(ctx, info, cfg)
		if err != nil {
			continue // exited or removed meanwhile
		}
		out = append(out, st)
	}
	return out
}
