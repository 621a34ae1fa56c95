package server

import (
	"context"
	"encoding/json"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageStatus describes one image; an image that is not here is an empty
// response, not an error, as the CRI asks.
func (s *Server) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	all, recs, err := s.lookupImage(ctx, req.GetImage().GetImage())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	// Every name of the image, not only the one asked about, among the
	// records already read.
	names, err := findImageIn(all, recs[0].ID().String())
	if err != nil {
		return nil, err
	}
	imgs := s.criImages(ctx, names)
	resp := &runtimeapi.ImageStatusResponse{Image: imgs[0]}
	if req.GetVerbose() {
		if cfg, err := s.stores.ImageConfig(ctx, recs[0]); err == nil {
			b, _ := json.Marshal(map[string]any{"name": recs[0].Name, "target": recs[0].Target, "config": cfg})
			resp.Info = map[string]string{"info": string(b)}
		}
	}
	return resp, nil
}
