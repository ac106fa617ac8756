package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Sourced is an image that knows the identity of what it was made from: the image ID a Docker
// daemon gave it, say, before it was exported and converted. A push of an image whose source
// was already pushed to the repository is answered from the push cache without reading the
// image at all (no export, no compression), once the registry confirms it still has the
// manifest.
type Sourced interface {
	v1.Image
	// Source identifies the content the image was made from; the same source always converts
	// to an equivalent image.
	Source() string
}

// PushImage pushes img (manifest, config and layers) to repo by digest, creating no tag, and
// returns its digest. Blobs the repository has are not uploaded again. With a push cache
// (WithPushCache), an image whose source (see Sourced) was pushed to repo before is not read at
// all once the registry confirms it still has the manifest, and the layers of an image built
// on ReuseLayers are not even compressed to learn their digests.
func (c *Client) PushImage(ctx context.Context, repo string, img v1.Image) (string, error) {
	r, err := c.parseRepo(repo)
	if err != nil {
		return "", c.fail(fmt.Errorf("pushing to %q: %w", repo, err))
	}
	var source string
	if s, ok := img.(Sourced); ok {
		source = s.Source()
	}
	if m := c.cache.image(r.Name(), source); m != "" {
		if _, err := c.resolve(ctx, r.Digest(m)); err == nil {
			return m, nil
		}
	}
	d, err := img.Digest()
	if err != nil {
		return "", c.fail(fmt.Errorf("pushing to %q: computing the manifest digest: %w", repo, err))
	}
	ref := r.Digest(d.String())
	if err := c.pusher.Push(ctx, ref, img); err != nil {
		return "", c.fail(fmt.Errorf("pushing %s: %w", ref, err))
	}
	c.cache.remember(r.Name(), source, d.String(), img)
	return d.String(), nil
}

// pushCache remembers, across runs on one machine, what was pushed where: the manifest each
// source became in a repository, and the compressed blob each layer (by diff ID) became. It is
// only ever a hint: every entry is checked against the registry before it is used, and a
// missing or broken cache file is the same as an empty one. Docker's own push keeps the same
// knowledge for the same reason: without it, every push of an unchanged image exports and
// recompresses every layer only to find the registry has it.
type pushCache struct {
	path string
	mu   sync.Mutex
	data pushCacheData
	new  pushCacheData // added by this process, merged into the file on save
}

type pushCacheData struct {
	// Images maps REPOSITORY@SOURCE to the manifest digest pushed for it.
	Images map[string]string `json:"images,omitempty"`
	// Layers maps a layer's diff ID to its compressed blob.
	Layers map[string]cachedLayer `json:"layers,omitempty"`
}

type cachedLayer struct {
	Digest    string          `json:"digest"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
}

// maxCacheEntries bounds each map of the cache file; beyond it, arbitrary entries go.
const maxCacheEntries = 4096

func loadPushCache(path string) *pushCache {
	pc := &pushCache{path: path}
	if data, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(data, &pc.data) // a broken file is an empty cache
	}
	return pc
}

// image is the manifest pushed for source to repo, "" when none is known (or source is "").
func (pc *pushCache) image(repo, source string) string {
	if pc == nil || source == "" {
		return ""
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.data.Images[repo+"@"+source]
}

func (pc *pushCache) layer(diffID string) (cachedLayer, bool) {
	if pc == nil {
		return cachedLayer{}, false
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	l, ok := pc.data.Layers[diffID]
	return l, ok
}

// remember records a push and saves the cache file (merged with what other processes wrote
// meanwhile; a lost race only loses hints). Errors are ignored: the cache is an optimization.
func (pc *pushCache) remember(repo, source, manifest string, img v1.Image) {
	if pc == nil {
		return
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	add := func(d *pushCacheData) {
		if source != "" && manifest != "" {
			if d.Images == nil {
				d.Images = map[string]string{}
			}
			d.Images[repo+"@"+source] = manifest
		}
		// The pushed manifest has each layer's blob as it went out; the config has the layers'
		// diff IDs, in the same order.
		m, err1 := img.Manifest()
		cfg, err2 := img.ConfigFile()
		if err1 != nil || err2 != nil || len(m.Layers) != len(cfg.RootFS.DiffIDs) {
			return
		}
		for i, l := range m.Layers {
			if d.Layers == nil {
				d.Layers = map[string]cachedLayer{}
			}
			d.Layers[cfg.RootFS.DiffIDs[i].String()] = cachedLayer{Digest: l.Digest.String(), Size: l.Size, MediaType: l.MediaType}
		}
	}
	add(&pc.new)
	add(&pc.data)
	_ = pc.save()
}

func (pc *pushCache) save() error {
	merged := loadPushCache(pc.path).data
	for k, v := range pc.new.Images {
		if merged.Images == nil {
			merged.Images = map[string]string{}
		}
		merged.Images[k] = v
	}
	for k, v := range pc.new.Layers {
		if merged.Layers == nil {
			merged.Layers = map[string]cachedLayer{}
		}
		merged.Layers[k] = v
	}
	trim(merged.Images)
	trim(merged.Layers)
	data, err := json.Marshal(merged)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(pc.path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(pc.path), ".push-cache-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), pc.path)
}

func trim[V any](m map[string]V) {
	for k := range m {
		if len(m) <= maxCacheEntries {
			return
		}
		delete(m, k)
	}
}

// knownLayer is a layer whose compressed blob the registry already has: its digest, size and
// media type come from the push cache, so nothing is compressed to find them. Its content is
// the underlying layer's, should anything read it.
type knownLayer struct {
	v1.Layer
	desc cachedLayer
}

func (l knownLayer) Digest() (v1.Hash, error)            { return v1.NewHash(l.desc.Digest) }
func (l knownLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l knownLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

// Compressed is never needed for a blob the registry has (it was checked before the layer was
// made). Recompressing might not reproduce the cached digest, so it is refused rather than
// risked.
func (l knownLayer) Compressed() (io.ReadCloser, error) {
	return nil, fmt.Errorf("layer %s: the registry was expected to have blob %s", l.desc.Digest, l.desc.Digest)
}

// ReuseLayers returns layers with every layer whose compressed blob (of media type mt) the
// push cache knows and repo holds replaced by one that reports that blob's digest, size and
// media type: an image built on them neither compresses nor uploads those layers when it is
// pushed. Give it the layers before building the image (building a manifest reads every
// layer's digest). Layers the cache does not know, or the registry lacks, come back as they
// are; without a push cache all of them do.
func (c *Client) ReuseLayers(ctx context.Context, repo string, mt types.MediaType, layers []v1.Layer) []v1.Layer {
	if c.cache == nil {
		return layers
	}
	r, err := c.parseRepo(repo)
	if err != nil {
		return layers
	}
	out := make([]v1.Layer, len(layers))
	for i, l := range layers {
		out[i] = l
		diffID, err := l.DiffID()
		if err != nil {
			continue
		}
		if desc, ok := c.cache.layer(diffID.String()); ok && desc.MediaType == mt && c.blobExists(ctx, r, desc.Digest) {
			out[i] = knownLayer{Layer: l, desc: desc}
		}
	}
	return out
}

// blobExists reports whether repo holds the blob (false on any error: the caller then does
// the work the blob would have spared).
func (c *Client) blobExists(ctx context.Context, repo name.Repository, digest string) bool {
	l, err := c.puller.Layer(ctx, repo.Digest(digest))
	if err != nil {
		return false
	}
	ok, err := partial.Exists(l)
	return err == nil && ok
}
