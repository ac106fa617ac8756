package registry_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagebuilder/imagebuilder/internal/registry"
)

// countingLayers builds an OCI image from uncompressed layer contents (as a daemon export
// gives them) and counts how often any layer is compressed (to learn its digest, or to upload
// it): the work a push cache spares.
func countingLayers(t *testing.T, compressions *atomic.Int32, reuse func([]v1.Layer) []v1.Layer, contents ...[]byte) v1.Image {
	t.Helper()
	layers := rawLayers(t, compressions, contents...)
	if reuse != nil {
		layers = reuse(layers)
	}
	var adds []mutate.Addendum
	for _, l := range layers {
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: types.OCILayer})
	}
	img, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), adds...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// rawLayers are layers of uncompressed contents, counting their compressions.
func rawLayers(t *testing.T, compressions *atomic.Int32, contents ...[]byte) []v1.Layer {
	t.Helper()
	var layers []v1.Layer
	for _, c := range contents {
		tarData := c
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(tarData)), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, counted{Layer: l, n: compressions})
	}
	return layers
}

// counted counts the calls that compress a layer.
type counted struct {
	v1.Layer
	n *atomic.Int32
}

func (c counted) Digest() (v1.Hash, error) {
	c.n.Add(1)

	return c.Layer.Digest()
}

func (c counted) Compressed() (io.ReadCloser, error) {
	c.n.Add(1)
	return c.Layer.Compressed()
}

type sourced struct {
	v1.Image
	src   string
	loads *atomic.Int32
}

func (s sourced) Source() string { return s.src }
func (s sourced) Layers() ([]v1.Layer, error) {
	s.loads.Add(1)
	return s.Image.Layers()
}
func (s sourced) Digest() (v1.Hash, error) {
	s.loads.Add(1)
	return s.Image.Digest()
}

// TestPushCache: a layer pushed before is not read (compressed) again to learn its digest, and
// an image whose source was pushed before is not read at all; every hint is checked against
// the registry, so a registry that lost the manifest gets a full push.
func TestPushCache(t *testing.T) {
	ctx := context.Background()
	host := serve(t, memRegistry())
	repo := host + "/cache/app"
	cache := filepath.Join(t.TempDir(), "push-cache.json")
	base, top := randomTar(t, 1), randomTar(t, 2)

	var reads atomic.Int32
	first := newClient(t, noKeychain, registry.WithPushCache(cache))
	want, err := first.PushImage(ctx, repo, countingLayers(t, &reads, nil, base, top))
	if err != nil || reads.Load() == 0 {
		t.Fatalf("first push: %v (%d compressions)", err, reads.Load())
	}

	// A new process (a new client on the same file) builds on the same layers: none of them is
	// compressed again, and the image is the same.
	reads.Store(0)
	second := newClient(t, noKeychain, registry.WithPushCache(cache))
	reuse := func(ls []v1.Layer) []v1.Layer { return second.ReuseLayers(ctx, repo, types.OCILayer, ls) }
	got, err := second.PushImage(ctx, repo, countingLayers(t, &reads, reuse, base, top))
	if err != nil || got != want {
		t.Fatalf("second push: %s, %v; want %s", got, err, want)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("layers the registry has were compressed %d times", n)
	}
	// One new layer on a known one: only the new one is compressed.
	var baseReads, newReads atomic.Int32
	layers := second.ReuseLayers(ctx, repo, types.OCILayer, append(rawLayers(t, &baseReads, base), rawLayers(t, &newReads, randomTar(t, 3))...))
	img, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON),
		mutate.Addendum{Layer: layers[0], MediaType: types.OCILayer}, mutate.Addendum{Layer: layers[1], MediaType: types.OCILayer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.PushImage(ctx, repo, img); err != nil {
		t.Fatal(err)
	}
	if baseReads.Load() != 0 || newReads.Load() == 0 {
		t.Errorf("one new layer on a known one: known compressed %d times, new %d times", baseReads.Load(), newReads.Load())
	}
	ls := rawLayers(t, &reads, base)
	if got := second.ReuseLayers(ctx, repo, types.DockerLayer, ls); got[0] != ls[0] {
		t.Error("a cached blob of another media type was reused")
	}
	if got := second.ReuseLayers(ctx, repo, types.OCILayer, ls); got[0] == ls[0] {
		t.Error("the cached blob was not reused")
	}

	// A sourced image: the second push of the same source reads nothing.
	var loads atomic.Int32
	simg := sourced{Image: countingLayers(t, &reads, nil, top), src: "sha256:daemon-image-1", loads: &loads}
	d1, err := second.PushImage(ctx, repo, simg)
	if err != nil {
		t.Fatal(err)
	}
	loads.Store(0)
	d2, err := newClient(t, noKeychain, registry.WithPushCache(cache)).PushImage(ctx, repo, simg)
	if err != nil || d2 != d1 || loads.Load() != 0 {
		t.Fatalf("same source again: %s (want %s), %v, %d loads", d2, d1, err, loads.Load())
	}
	// The registry lost it: the hint is checked, and the image is pushed in full.
	if err := second.Delete(ctx, repo+"@"+d1); err != nil {
		t.Fatal(err)
	}
	d3, err := newClient(t, noKeychain, registry.WithPushCache(cache)).PushImage(ctx, repo, simg)
	if err != nil || d3 != d1 || loads.Load() == 0 {
		t.Fatalf("after the manifest was deleted: %s, %v, %d loads", d3, err, loads.Load())
	}
	if ok, err := second.Exists(ctx, repo+"@"+d1); err != nil || !ok {
		t.Fatalf("the manifest is not back: %v %v", ok, err)
	}
}

// randomTar is the uncompressed content of a random layer.
func randomTar(t *testing.T, seed int64) []byte {
	t.Helper()
	l, err := random.Layer(2048+seed, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
