package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/container"
)

// Reasons of an exited container, as kubelet knows them.
const (
	reasonCompleted  = "Completed"
	reasonError      = "Error"
	reasonOOMKilled  = "OOMKilled"
	reasonStartError = "StartError"
	// exitCodeStartError is what a container that never started reports.
	exitCodeStartError = 128
)

// ContainerStatus reports state, exit code and reason (OOMKilled when the
// kernel killed it for its memory limit), timestamps, image, mounts and
// log path. An unknown ID is NotFound, and so is a container of the store
// that is not a CRI workload (a pod's infra container, or one `sigil run`
// made): ListContainers does not list them either.
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	info, err := s.containers.Inspect(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	meta, cfg, ok := metaOf(info)
	if !ok {
		return nil, fmt.Errorf("container %s is not a CRI container (a pod's infra container or one made by sigil run): %w", req.GetContainerId(), errdefs.ErrNotFound)
	}
	st := containerStatus(info, meta, cfg)
	resp := &runtimeapi.ContainerStatusResponse{Status: st}
	if req.GetVerbose() {
		b, _ := json.Marshal(map[string]any{"pid": info.Pid, "name": info.Name, "command": info.Command, "error": info.Error})
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// containerStatus is the status of a CRI container; meta and cfg are what
// metaOf decodes from its record.
func containerStatus(info container.Info, meta *containerMeta, cfg *runtimeapi.ContainerConfig) *runtimeapi.ContainerStatus {
	st := &runtimeapi.ContainerStatus{
		Id:          info.ID,
		Metadata:    cfg.GetMetadata(),
		State:       criContainerState(info),
		CreatedAt:   info.CreatedAt.UnixNano(),
		StartedAt:   unixNanos(info.StartedAt),
		FinishedAt:  unixNanos(info.FinishedAt),
		Image:       &runtimeapi.ImageSpec{Image: meta.Image, UserSpecifiedImage: meta.Image},
		ImageRef:    meta.ImageID,
		ImageId:     meta.ImageID,
		Labels:      info.Labels,
		Annotations: info.Annotations,
		Mounts:      cfg.GetMounts(),
		LogPath:     info.LogPath,
		Resources: &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{
			MemoryLimitInBytes: info.Options.Memory,
			CpuShares:          int64(info.Options.CPUShares),
			CpuQuota:           info.Options.CPUQuota,
			CpuPeriod:          int64(info.Options.CPUPeriod),
			CpusetCpus:         info.Options.CpusetCPUs,
			CpusetMems:         info.Options.CpusetMems,
		}},
	}
	switch {
	case info.Status == container.StatusExited:
		st.ExitCode = int32(info.ExitCode)
		switch {
		case info.OOMKilled:
			st.Reason = reasonOOMKilled
		case info.ExitCode == 0:
			st.Reason = reasonCompleted
		default:
			st.Reason = reasonError
		}
		st.Message = info.Error
	case info.Status == container.StatusCreated && info.Error != "":
		st.ExitCode = exitCodeStartError
		st.Reason = reasonStartError
		st.Message = info.Error
		st.FinishedAt = unixNanos(info.CreatedAt)
	}
	return st
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nowNanos() int64 { return time.Now().UnixNano() }
