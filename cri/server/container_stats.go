package server

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/container"
)

// ContainerStats reports a container's CPU and memory use from its
// cgroup, and its writable layer's size. An unknown ID is NotFound.
func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	info, err := s.containers.Inspect(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	_, cfg, ok := metaOf(info)
	if !ok {
		return nil, fmt.Errorf("container %s is not a CRI container: %w", info.ID, errdefs.ErrNotFound)
	}
	st, err := s.containerStats(ctx, info, cfg)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: st}, nil
}

// containerStats is the stats of a CRI container; cfg is its config, as
// metaOf decodes it.
func (s *Server) containerStats(ctx context.Context, info container.Info, cfg *runtimeapi.ContainerConfig) (*runtimeapi.ContainerStats, error) {
	u, err := s.containers.Stats(ctx, info.ID)
	if err != nil {
		return nil, err
	}
	ts := u.Timestamp.UnixNano()
	bytes, inodes := diskUsage(ctx, s.stores.Snapshots.ActiveDir(info.ID))
	return &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id: info.ID, Metadata: cfg.GetMetadata(), Labels: info.Labels, Annotations: info.Annotations,
		},
		Cpu:    cpuUsage(u, ts),
		Memory: memoryUsage(u, ts),
		WritableLayer: &runtimeapi.FilesystemUsage{
			Timestamp:  ts,
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: s.cfg.Root},
			UsedBytes:  &runtimeapi.UInt64Value{Value: bytes},
			InodesUsed: &runtimeapi.UInt64Value{Value: inodes},
		},
	}, nil
}

func cpuUsage(u container.Stats, ts int64) *runtimeapi.CpuUsage {
	return &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: u.CPUUsageNanos}}
}

func memoryUsage(u container.Stats, ts int64) *runtimeapi.MemoryUsage {
	return &runtimeapi.MemoryUsage{
		Timestamp:       ts,
		WorkingSetBytes: &runtimeapi.UInt64Value{Value: u.MemoryWorkingSet},
		UsageBytes:      &runtimeapi.UInt64Value{Value: u.MemoryUsage},
		RssBytes:        &runtimeapi.UInt64Value{Value: u.MemoryRSS},
		PageFaults:      &runtimeapi.UInt64Value{Value: u.PageFaults},
		MajorPageFaults: &runtimeapi.UInt64Value{Value: u.MajorPageFaults},
	}
}
