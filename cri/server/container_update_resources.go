package server

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/container"
)

// UpdateContainerResources changes a container's CPU and memory limits in
// its cgroup (and in its record, so a later status shows them).
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	lin := req.GetLinux()
	if lin == nil {
		return nil, fmt.Errorf("no Linux resources given: %w", errdefs.ErrInvalidArgument)
	}
	info, err := s.containers.Inspect(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	defer s.locks.lock(info.ID)()
	err = s.containers.UpdateResources(ctx, info.ID, container.Resources{
		Memory:     lin.GetMemoryLimitInBytes(),
		CPUShares:  uint64(lin.GetCpuShares()),
		CPUQuota:   lin.GetCpuQuota(),
		CPUPeriod:  uint64(lin.GetCpuPeriod()),
		CpusetCPUs: lin.GetCpusetCpus(),
		CpusetMems: lin.GetCpusetMems(),
	})
	if err != nil {
		return nil, err
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}
