package server

import (
	"context"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemoveImage removes every name of the image (as containerd's CRI does:
// kubelet removes images by ID). It is idempotent: an image that is not
// here is removed already. Layers go at the next `sigil gc`; running
// containers keep their snapshots.
func (s *Server) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	recs, err := s.findImage(ctx, req.GetImage().GetImage())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	all, err := s.findImage(ctx, recs[0].ID().String())
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	for _, img := range all {
		if err := s.stores.Images.Delete(ctx, img.Name); err != nil && !errdefs.IsNotFound(err) {
			return nil, err
		}
		s.log.InfoContext(ctx, "removed image", "ref", img.Name, "digest", img.Target.Digest)
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}
