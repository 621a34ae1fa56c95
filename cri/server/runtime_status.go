package server

import (
	"context"
	"encoding/json"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Status reports RuntimeReady (always: the runtime is the binary itself,
// and a container's supervision needs no daemon) and NetworkReady (a CNI
// configuration whose plugins exist).
func (s *Server) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	netCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if err := s.network.Ready(ctx); err != nil {
		netCond.Status = false
		netCond.Reason = "NetworkPluginNotReady"
		netCond.Message = err.Error()
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			netCond,
		}},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{
			Name:     "",
			Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: false, UserNamespaces: false},
		}},
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: false},
	}
	if req.GetVerbose() {
		b, _ := json.Marshal(map[string]any{
			"root": s.cfg.Root, "state": s.cfg.State, "streamAddress": s.stream.Addr(),
			"cniConfDir": s.cfg.CNIConfDir, "cniBinDirs": s.cfg.CNIBinDirs,
		})
		resp.Info = map[string]string{"config": string(b)}
	}
	return resp, nil
}
