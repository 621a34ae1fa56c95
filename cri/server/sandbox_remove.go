package server

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/pod"
)

// RemovePodSandbox stops the sandbox if needed, removes its containers
// and its infra container, unpins its namespaces and deletes its record.
//
// Idempotent, as the CRI asks: removing a sandbox that does not exist
// succeeds.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	sb, err := s.sandboxes.get(req.GetPodSandboxId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer s.locks.lock(sb.ID)()
	if err := s.stopSandbox(ctx, sb); err != nil {
		return nil, err
	}
	list, err := s.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	// Every container of the pod, the infra container among them (it is
	// the pod's too, and last in the list, which is newest first).
	for _, c := range list {
		if c.PodID == sb.ID {
			if err := s.removeContainer(ctx, c.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p, err := pod.Load(ctx, s.cfg.State, sb.ID, pod.WithLogger(s.log))
	switch {
	case err == nil:
		if err := p.Remove(ctx); err != nil {
			return nil, err
		}
	case !errdefs.IsNotFound(err):
		return nil, err
	}
	if err := s.sandboxes.remove(sb.ID); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "removed pod sandbox", "pod_id", sb.ID)
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}
