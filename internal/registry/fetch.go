package registry

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// manifestCache remembers manifests the client fetched, by REPOSITORY@DIGEST: a digest names
// its content, so what was fetched once is what the registry serves for as long as it exists.
// Tag uses it to copy a manifest within its repository with a single PUT.
type manifestCache struct {
	mu sync.Mutex
	m  map[string]rawManifest
}

// maxCachedManifests bounds the cache; when full it starts over.
const maxCachedManifests = 256

func (mc *manifestCache) get(d name.Digest) (rawManifest, bool) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	m, ok := mc.m[d.Name()]
	return m, ok
}

func (mc *manifestCache) put(d name.Digest, m rawManifest) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.m == nil || len(mc.m) >= maxCachedManifests {
		mc.m = map[string]rawManifest{}
	}
	mc.m[d.Name()] = m
}

// Fetch returns the descriptor of the manifest or index ref points at, with one GET (Resolve
// uses a HEAD), and remembers the manifest: tagging that digest within its repository then
// costs only the PUT. The error wraps [ErrNotFound] when ref does not exist.
func (c *Client) Fetch(ctx context.Context, ref string) (Descriptor, error) {
	return readDescriptor(c, ctx, ref, "fetching", func(desc *remote.Descriptor) (Descriptor, error) {
		r, err := c.parseRef(ref)
		if err != nil {
			return Descriptor{}, err
		}
		if err := c.remember(r, desc); err != nil {
			return Descriptor{}, err
		}
		return describe(r, desc.Descriptor), nil
	})
}

// get fetches what r names and caches it by digest.
func (c *Client) get(ctx context.Context, r name.Reference) (*remote.Descriptor, error) {
	desc, err := c.puller.Get(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := c.remember(r, desc); err != nil {
		return nil, err
	}
	return desc, nil
}

// remember caches a fetched manifest or index by digest.
func (c *Client) remember(r name.Reference, desc *remote.Descriptor) error {
	if !desc.MediaType.IsImage() && !desc.MediaType.IsIndex() {
		return fmt.Errorf("unsupported media type %q", desc.MediaType)
	}
	c.manifests.put(r.Context().Digest(desc.Digest.String()), rawManifest{raw: desc.Manifest, mediaType: desc.MediaType})
	return nil
}

// manifest returns the manifest d names, from the cache or with one GET.
func (c *Client) manifest(ctx context.Context, d name.Digest) (rawManifest, error) {
	if m, ok := c.manifests.get(d); ok {
		return m, nil
	}
	desc, err := c.get(ctx, d)
	if err != nil {
		return rawManifest{}, err
	}
	return rawManifest{raw: desc.Manifest, mediaType: desc.MediaType}, nil
}
