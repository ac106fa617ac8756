package registry

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Labels returns the config labels of the image ref points at; for an index, those of its
// first image manifest (every platform of one build carries the same labels). The error wraps
// [ErrNotFound] when ref does not exist.
func (c *Client) Labels(ctx context.Context, ref string) (map[string]string, error) {
	return readDescriptor(c, ctx, ref, "reading labels of", descLabels)
}

// descLabels reads the config labels of a fetched manifest, or of an index's first image.
func descLabels(desc *remote.Descriptor) (map[string]string, error) {
	var img v1.Image
	var err error
	switch {
	case desc.MediaType.IsIndex():
		img, err = firstImage(desc)
	case desc.MediaType.IsImage():
		img, err = desc.Image()
	default:
		err = fmt.Errorf("unsupported media type %q", desc.MediaType)
	}
	if err == nil && img == nil {
		err = errors.New("the index holds no image")
	}
	var cf *v1.ConfigFile
	if err == nil {
		cf, err = img.ConfigFile()
	}
	if err != nil {
		return nil, err
	}
	return cf.Config.Labels, nil
}

type indexer interface {
	ImageIndex() (v1.ImageIndex, error)
}

func firstImage(d indexer) (v1.Image, error) {
	idx, err := d.ImageIndex()
	if err != nil {
		return nil, err
	}
	for depth := 0; depth <= maxIndexDepth; depth++ {
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		var next v1.ImageIndex
		for _, m := range im.Manifests {
			switch {
			case isAttestation(m):
			case m.MediaType.IsImage():
				return idx.Image(m.Digest)
			case m.MediaType.IsIndex() && next == nil:
				if next, err = idx.ImageIndex(m.Digest); err != nil {
					return nil, err
				}
			}
		}
		if next == nil {
			return nil, nil
		}
		idx = next
	}
	return nil, errors.New("indexes nested too deeply")
}
