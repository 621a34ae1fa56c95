package server

import (
	"context"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/images"
)

// ListImages lists the node's images: the same store as `sigil images`.
func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	list, err := s.listImages(ctx, req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListImagesResponse{Images: list}, nil
}

// StreamImages is ListImages in one message.
func (s *Server) StreamImages(req *runtimeapi.StreamImagesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamImagesResponse]) error {
	list, err := s.listImages(stream.Context(), req.GetFilter())
	if err != nil {
		return err
	}
	return stream.Send(&runtimeapi.StreamImagesResponse{Images: list})
}

func (s *Server) listImages(ctx context.Context, f *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	var recs []*images.Image
	var err error
	if spec := f.GetImage().GetImage(); spec != "" {
		recs, err = s.findImage(ctx, spec)
		if err != nil {
			return []*runtimeapi.Image{}, nil
		}
	} else if recs, err = s.stores.Images.List(ctx); err != nil {
		return nil, err
	}
	return s.criImages(ctx, recs), nil
}
