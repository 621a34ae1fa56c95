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
	all, err := s.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: s.sandboxStats(ctx, sb, all)}, nil
}

// sandboxStats is the stats of sb's cgroup parent and of its containers
// among all (the store's, listed once by the caller).
func (s *Server) sandboxStats(ctx context.Context, sb *sandbox, all []container.Info) *runtimeapi.PodSandboxStats {
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
	out.Linux.Containers = s.containerStatsOf(ctx, all, &runtimeapi.ContainerStatsFilter{PodSandboxId: sb.ID})
	return out
}
