package server

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/reference"
)

// findImage returns the stored images (one per name) that spec names: an
// image ID (config digest, with or without "sha256:", or a prefix of at
// least 12 hex digits), a name with a tag, or a name with a digest (any
// stored name of that repository whose manifest or index has it). The
// first is the best match. None found wraps errdefs.ErrNotFound.
func (s *Server) findImage(ctx context.Context, spec string) ([]*images.Image, error) {
	_, found, err := s.lookupImage(ctx, spec)
	return found, err
}

// lookupImage is findImage that also returns all the store's image
// records, read once, for a caller that searches them again.
func (s *Server) lookupImage(ctx context.Context, spec string) (all, found []*images.Image, err error) {
	if spec == "" {
		return nil, nil, fmt.Errorf("no image given: %w", errdefs.ErrInvalidArgument)
	}
	all, err = s.stores.Images.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	found, err = findImageIn(all, spec)
	return all, found, err
}

// findImageIn is findImage among all, the store's image records.
func findImageIn(all []*images.Image, spec string) ([]*images.Image, error) {
	// An image ID: every name of that image.
	hex := strings.TrimPrefix(spec, "sha256:")
	if isHex(hex) && len(hex) >= 12 {
		var out []*images.Image
		for _, img := range all {
			if strings.HasPrefix(img.ID().Encoded(), hex) {
				out = append(out, img)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	ref, err := reference.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", spec, errdefs.ErrNotFound)
	}
	var out []*images.Image
	for _, img := range all {
		if img.Name == ref.String() {
			out = append(out, img)
		}
	}
	if d := ref.Digest(); d != "" {
		for _, img := range all {
			if img.Name == ref.String() {
				continue
			}
			if r2, err := reference.Parse(img.Name); err == nil && r2.Name() == ref.Name() &&
				(img.Target.Digest == d || img.Manifest.Digest == d) {
				out = append(out, img)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("image %q is not on this node: %w", spec, errdefs.ErrNotFound)
	}
	return out, nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// criImages groups image records by image ID into CRI images.
func (s *Server) criImages(ctx context.Context, recs []*images.Image) []*runtimeapi.Image {
	byID := map[string]*runtimeapi.Image{}
	var order []string
	for _, img := range recs {
		id := img.ID().String()
		ci, ok := byID[id]
		if !ok {
			ci = &runtimeapi.Image{Id: id, Size: uint64(img.Size()), Spec: &runtimeapi.ImageSpec{Image: id}}
			if cfg, err := s.stores.ImageConfig(ctx, img); err == nil {
				setImageUser(ci, cfg.Config.User)
			}
			byID[id] = ci
			order = append(order, id)
		}
		ref, err := reference.Parse(img.Name)
		if err != nil {
			continue
		}
		if ref.Digest() == "" {
			ci.RepoTags = appendUnique(ci.RepoTags, ref.String())
		}
		ci.RepoDigests = appendUnique(ci.RepoDigests, ref.Name()+"@"+img.Target.Digest.String())
	}
	out := make([]*runtimeapi.Image, 0, len(order))
	for _, id := range order {
		out = append(out, byID[id])
	}
	return out
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// setImageUser fills Uid or Username from the image's User ("uid[:gid]"
// or "name[:group]"), as kubelet's runAsNonRoot check reads them.
func setImageUser(ci *runtimeapi.Image, user string) {
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		return
	}
	if n, err := strconv.ParseInt(u, 10, 64); err == nil {
		ci.Uid = &runtimeapi.Int64Value{Value: n}
		return
	}
	ci.Username = u
}
