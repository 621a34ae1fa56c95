package container

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"

	"github.com/sigil-project/sigil/runtime/spec"
)

// Stats are a container's (or a pod's) resource usage, from its cgroup.
type Stats struct {
	Timestamp time.Time
	// CPUUsageNanos is the cumulative CPU time.
	CPUUsageNanos uint64
	// MemoryUsage is the cgroup's memory usage; MemoryWorkingSet is that
	// less the inactive file cache (what kubelet evicts on);
	// MemoryRSS is anonymous memory.
	MemoryUsage      uint64
	MemoryWorkingSet uint64
	MemoryRSS        uint64
	PageFaults       uint64
	MajorPageFaults  uint64
	Pids             uint64
}

// Stats returns a running container's usage. A container that is not
// running has none: its Stats are zero, with the current time.
func (m *Manager) Stats(ctx context.Context, ref string) (Stats, error) {
	r, err := m.resolve(ctx, ref)
	if err != nil {
		return Stats{}, err
	}
	now := time.Now()
	if r.Status != StatusRunning {
		return Stats{Timestamp: now}, nil
	}
	lc, err := libcontainer.Load(m.libcontainerRoot(), r.ID)
	if errors.Is(err, libcontainer.ErrNotExist) {
		return Stats{Timestamp: now}, nil
	}
	if err != nil {
		return Stats{}, fmt.Errorf("stats of container %s: %w", r.Name, err)
	}
	st, err := lc.Stats()
	if err != nil {
		return Stats{}, fmt.Errorf("stats of container %s: %w", r.Name, err)
	}
	return fromCgroupStats(st.CgroupStats, now), nil
}

// CgroupStats returns the usage of any cgroup, by its path in every
// hierarchy ("/sigil/<pod-id>"): a pod's, summing its containers'.
func CgroupStats(cgPath string) (Stats, error) {
	mgr, err := manager.New(&cgroups.Cgroup{Path: cgPath, Resources: &cgroups.Resources{}})
	if err != nil {
		return Stats{}, err
	}
	st, err := mgr.GetStats()
	if err != nil {
		return Stats{}, fmt.Errorf("stats of cgroup %s: %w", cgPath, err)
	}
	return fromCgroupStats(st, time.Now()), nil
}

func fromCgroupStats(cs *cgroups.Stats, now time.Time) Stats {
	s := Stats{Timestamp: now}
	if cs == nil {
		return s
	}
	s.CPUUsageNanos = cs.CpuStats.CpuUsage.TotalUsage
	mem := cs.MemoryStats
	s.MemoryUsage = mem.Usage.Usage
	// cgroup v1 names the hierarchical counters total_*; v2 has no prefix.
	get := func(names ...string) uint64 {
		for _, n := range names {
			if v, ok := mem.Stats[n]; ok {
				return v
			}
		}
		return 0
	}
	inactive := get("total_inactive_file", "inactive_file")
	s.MemoryWorkingSet = s.MemoryUsage
	if inactive < s.MemoryWorkingSet {
		s.MemoryWorkingSet -= inactive
	} else {
		s.MemoryWorkingSet = 0
	}
	s.MemoryRSS = get("total_rss", "anon")
	s.PageFaults = get("total_pgfault", "pgfault")
	s.MajorPageFaults = get("total_pgmajfault", "pgmajfault")
	s.Pids = cs.PidsStats.Current
	return s
}

// Resources are the limits UpdateResources changes. A zero field is left
// as it is, except Memory, whose 0 is left alone too (limits are only
// raised or lowered, never removed, as with docker update).
type Resources struct {
	Memory     int64
	CPUShares  uint64
	CPUQuota   int64
	CPUPeriod  uint64
	CpusetCPUs string
	CpusetMems string
	PidsLimit  int64
}

// UpdateResources changes a container's cgroup limits and records them
// (the CRI's UpdateContainerResources). A created container gets them
// when it starts; an exited one gives errdefs.ErrFailedPrecondition.
func (m *Manager) UpdateResources(ctx context.Context, ref string, res Resources) error {
	r, err := m.resolve(ctx, ref)
	if err != nil {
		return err
	}
	if r.Status == StatusExited {
		return fmt.Errorf("container %s has exited: its resources cannot change: %w", r.Name, errdefs.ErrFailedPrecondition)
	}
	apply := func(o *spec.RunOptions) {
		if res.Memory != 0 {
			o.Memory = res.Memory
		}
		if res.CPUShares != 0 {
			o.CPUShares = res.CPUShares
		}
		if res.CPUQuota != 0 {
			o.CPUQuota, o.CPUs = res.CPUQuota, 0
		}
		if res.CPUPeriod != 0 {
			o.CPUPeriod = res.CPUPeriod
		}
		if res.CpusetCPUs != "" {
			o.CpusetCPUs = res.CpusetCPUs
		}
		if res.CpusetMems != "" {
			o.CpusetMems = res.CpusetMems
		}
		if res.PidsLimit != 0 {
			o.PidsLimit = res.PidsLimit
		}
	}
	if r.Status == StatusRunning {
		lc, err := libcontainer.Load(m.libcontainerRoot(), r.ID)
		if err != nil {
			return fmt.Errorf("update container %s: %w", r.Name, err)
		}
		cfg := lc.Config()
		setResources(cfg.Cgroups.Resources, res)
		if err := lc.Set(cfg); err != nil {
			return fmt.Errorf("update container %s: %w", r.Name, err)
		}
	}
	_, err = m.update(ctx, r.ID, func(cur *record) { apply(&cur.Options) })
	return err
}

func setResources(c *cgroups.Resources, res Resources) {
	if res.Memory != 0 {
		c.Memory = res.Memory
	}
	if res.CPUShares != 0 {
		c.CpuShares = res.CPUShares
	}
	if res.CPUQuota != 0 {
		c.CpuQuota = res.CPUQuota
	}
	if res.CPUPeriod != 0 {
		c.CpuPeriod = res.CPUPeriod
	}
	if res.CpusetCPUs != "" {
		c.CpusetCpus = res.CpusetCPUs
	}
	if res.CpusetMems != "" {
		c.CpusetMems = res.CpusetMems
	}
	if res.PidsLimit != 0 {
		limit := res.PidsLimit
		c.PidsLimit = &limit
	}
}
