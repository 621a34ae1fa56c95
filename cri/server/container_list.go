package server

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/container"
)

// ListContainers lists the CRI's containers (those of sandboxes; `sigil
// run` containers are not shown to kubelet), filtered by ID or ID prefix,
// state, sandbox and labels.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	list, err := s.listContainers(ctx, req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListContainersResponse{Containers: list}, nil
}

// StreamContainers is ListContainers in one message.
func (s *Server) StreamContainers(req *runtimeapi.StreamContainersRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamContainersResponse]) error {
	list, err := s.listContainers(stream.Context(), req.GetFilter())
	if err != nil {
		return err
	}
	return stream.Send(&runtimeapi.StreamContainersResponse{Containers: list})
}

func (s *Server) listContainers(ctx context.Context, f *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	all, err := s.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []*runtimeapi.Container{}
	for _, info := range all {
		meta, cfg, ok := metaOf(info)
		if !ok {
			continue
		}
		state := criContainerState(info)
		if f != nil {
			if f.GetId() != "" && !strings.HasPrefix(info.ID, f.GetId()) {
				continue
			}
			if f.GetPodSandboxId() != "" && !strings.HasPrefix(meta.SandboxID, f.GetPodSandboxId()) {
				continue
			}
			if f.GetState() != nil && f.GetState().GetState() != state {
				continue
			}
			if !matchLabels(info.Labels, f.GetLabelSelector()) {
				continue
			}
		}
		out = append(out, &runtimeapi.Container{
			Id:           info.ID,
			PodSandboxId: meta.SandboxID,
			Metadata:     cfg.GetMetadata(),
			Image:        &runtimeapi.ImageSpec{Image: meta.Image, UserSpecifiedImage: meta.Image},
			ImageRef:     meta.ImageID,
			ImageId:      meta.ImageID,
			State:        state,
			CreatedAt:    info.CreatedAt.UnixNano(),
			Labels:       info.Labels,
			Annotations:  info.Annotations,
		})
	}
	return out, nil
}

// criContainerState maps the store's status. A container whose start
// failed is reported exited (with reason StartError in its status), as
// containerd does, so kubelet replaces it.
func criContainerState(info container.Info) runtimeapi.ContainerState {
	switch {
	case info.Status == container.StatusRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case info.Status == container.StatusExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	case info.Error != "":
		return runtimeapi.ContainerState_CONTAINER_EXITED
	default:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	}
}
