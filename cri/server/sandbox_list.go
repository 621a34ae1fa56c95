package server

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandbox lists sandboxes, filtered by ID (or ID prefix), state and
// labels. A sandbox whose infra container has died is NOTREADY.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	items, err := s.listSandboxes(ctx, req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListPodSandboxResponse{Items: items}, nil
}

// StreamPodSandboxes is ListPodSandbox in one message.
func (s *Server) StreamPodSandboxes(req *runtimeapi.StreamPodSandboxesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxesResponse]) error {
	items, err := s.listSandboxes(stream.Context(), req.GetFilter())
	if err != nil {
		return err
	}
	return stream.Send(&runtimeapi.StreamPodSandboxesResponse{PodSandboxes: items})
}

func (s *Server) listSandboxes(ctx context.Context, f *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	all, err := s.sandboxes.list()
	if err != nil {
		return nil, err
	}
	items := []*runtimeapi.PodSandbox{}
	for _, sb := range all {
		cfg := sb.Cfg()
		if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) {
			continue
		}
		if !matchLabels(cfg.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		// The state asks about the infra container: only for the
		// sandboxes the other filters keep.
		state := s.sandboxState(ctx, sb)
		if f.GetState() != nil && f.GetState().GetState() != state {
			continue
		}
		items = append(items, &runtimeapi.PodSandbox{
			Id:             sb.ID,
			Metadata:       cfg.GetMetadata(),
			State:          state,
			CreatedAt:      sb.CreatedAt.UnixNano(),
			Labels:         cfg.GetLabels(),
			Annotations:    cfg.GetAnnotations(),
			RuntimeHandler: sb.RuntimeHandler,
		})
	}
	return items, nil
}

// matchLabels reports whether labels has every key=value of selector.
func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
