package transfer

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func toV1Hash(d digest.Digest) v1.Hash {
	return v1.Hash{Algorithm: d.Algorithm().String(), Hex: d.Encoded()}
}

func toV1Descriptor(d ocispec.Descriptor) v1.Descriptor {
	out := v1.Descriptor{
		MediaType:   types.MediaType(d.MediaType),
		Size:        d.Size,
		Digest:      toV1Hash(d.Digest),
		Annotations: d.Annotations,
	}
	if d.Platform != nil {
		out.Platform = &v1.Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
	}
	return out
}
