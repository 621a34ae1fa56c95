package server

import (
	"context"
	"encoding/json"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSandboxStatus reports the sandbox's state, IPs and namespace options.
// A sandbox whose infra container has died is NOTREADY.
// An unknown ID is NotFound. With verbose, Info carries the network
// namespace, state directory and infra container (the containers'
// statuses, which evented PLEG may read there, are not included).
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.sandboxes.get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st := s.sandboxStatus(ctx, sb)
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st, Timestamp: nowNanos()}
	if req.GetVerbose() {
		b, _ := json.Marshal(map[string]any{"netns": sb.NetNS, "stateDir": s.sandboxes.path(sb.ID), "networked": sb.Networked, "infraID": sb.InfraID})
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

func (s *Server) sandboxStatus(ctx context.Context, sb *sandbox) *runtimeapi.PodSandboxStatus {
	cfg := sb.Cfg()
	state := s.sandboxState(ctx, sb)
	st := &runtimeapi.PodSandboxStatus{
		Id:             sb.ID,
		Metadata:       cfg.GetMetadata(),
		State:          state,
		CreatedAt:      sb.CreatedAt.UnixNano(),
		Labels:         cfg.GetLabels(),
		Annotations:    cfg.GetAnnotations(),
		RuntimeHandler: sb.RuntimeHandler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
		Network: &runtimeapi.PodSandboxNetworkStatus{},
	}
	if st.Linux.Namespaces.Options == nil {
		st.Linux.Namespaces.Options = &runtimeapi.NamespaceOption{}
	}
	// The IP is reported while the pod has one (not after a stop).
	if state == runtimeapi.PodSandboxState_SANDBOX_READY && len(sb.IPs) > 0 {
		st.Network.Ip = sb.IPs[0]
		for _, ip := range sb.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return st
}
