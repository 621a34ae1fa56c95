package server

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StopPodSandbox kills the pod's containers, then its infra container
// (when it has one: the pause exits 0), and detaches it from its network;
// its namespaces stay until RemovePodSandbox, so its status can still be
// read.
//
// Idempotent, as the CRI asks: stopping a stopped sandbox succeeds, and so
// does stopping one that does not exist (kubelet may retry after a
// removal it did not see complete).
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	sb, err := s.sandboxes.get(req.GetPodSandboxId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer s.locks.lock(sb.ID)()
	if err := s.stopSandbox(ctx, sb); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// stopSandbox stops every container of sb, then its infra container, then
// its network.
func (s *Server) stopSandbox(ctx context.Context, sb *sandbox) error {
	log := s.log.With("pod_id", sb.ID)
	list, err := s.containers.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		if c.PodID != sb.ID || !c.Running() || c.ID == sb.InfraID {
			continue
		}
		// The CRI asks to "forcibly terminate": kubelet has already given
		// each container its grace period.
		if err := s.containers.Stop(ctx, c.ID, 0); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Last: the pause's exit kills whatever is left in the pod's PID
	// namespace.
	if err := s.stopInfra(ctx, sb); err != nil {
		return err
	}
	if sb.Networked {
		if err := s.network.Teardown(ctx, s.podNetwork(sb)); err != nil {
			return err
		}
		sb.Networked = false
	}
	if sb.State != sandboxNotReady || len(sb.IPs) > 0 {
		log.InfoContext(ctx, "stopped pod sandbox")
	}
	sb.State = sandboxNotReady
	return s.sandboxes.put(sb)
}
