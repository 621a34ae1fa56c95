package server

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateRuntimeConfig receives the node's pod CIDR. The CNI configuration
// carries the pod subnet here (host-local's range), so there is nothing to
// update; the CIDR is logged for whoever sets up the network.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	if cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr(); cidr != "" {
		s.log.InfoContext(ctx, "kubelet reports the node's pod CIDR; the CNI configuration decides the pod addresses", "pod_cidr", cidr)
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}
