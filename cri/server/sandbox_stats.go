package server

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/container"
	"github.com/sigil-project/sigil/runtime/pod"
)

// PodSandboxStats reports the pod's CPU and memory use from its cgroup
// parent (all its containers), and each container's. An unknown ID is
// NotFound.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	sb, err := s.sandboxes.get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st, err := s.sandboxStats(ctx, sb)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: st}, nil
}

func (s *Server) sandboxStats(ctx context.Context, sb *sandbox) (*runtimeapi.PodSandboxStats, error) {
	cfg := sb.Cfg()
	out := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: sb.ID, Metadata: cfg.GetMetadata(), Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations()},
		Linux:      &runtimeapi.LinuxPodSandboxStats{},
	}
	u := container.Stats{Timestamp: time.Now()}
	if p, err := pod.Load(ctx, s.cfg.State, sb.ID); err == nil {
		if cu, err := container.CgroupStats(p.CgroupParent); err == nil {
			u = cu
		}
	}
	ts := u.Timestamp.UnixNano()
	out.Linux.Cpu = cpuUsage(u, ts)
	out.Linux.Memory = memoryUsage(u, ts)
	out.Linux.Process = &runtimeapi.ProcessUsage{Timestamp: ts, ProcessCount: &runtimeapi.UInt64Value{Value: u.Pids}}
	cs, err := s.listContainerStats(ctx, &runtimeapi.ContainerStatsFilter{PodSandboxId: sb.ID})
	if err != nil {
		return nil, err
	}
	out.Linux.Containers = cs
	return out, nil
}
