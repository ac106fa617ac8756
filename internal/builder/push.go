package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	dockerclient "github.com/moby/moby/client"
)

// pushFromDaemon hands image id, as built in the daemon, to pub, which pushes it to repository
// by digest (see [PushArchive]); the daemon exports it with ImageSave only when pub needs its
// content.
func pushFromDaemon(ctx context.Context, dc *dockerclient.Client, id, repository string, pub Publisher, tempDir string) (string, error) {
	return PushArchive(ctx, pub, repository, id, tempDir, func(ctx context.Context, path string) error {
		return saveFromDaemon(ctx, dc, id, path)
	})
}

// saveFromDaemon writes image id, exported from the daemon, to a new docker-archive at path.
func saveFromDaemon(ctx context.Context, dc *dockerclient.Client, id, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("staging the image: %w", err)
	}
	defer f.Close()
	rc, err := dc.ImageSave(ctx, []string{id})
	if err != nil {
		return fmt.Errorf("exporting image %s from the daemon: %w", id, err)
	}
	defer rc.Close()
	if _, err := io.Copy(f, rc); err != nil {
		return fmt.Errorf("exporting image %s from the daemon: %w", id, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("staging the image: %w", err)
	}
	return nil
}

// PushArchive hands pub an image known by source (an ID that identifies its content exactly,
// such as the image ID a Docker daemon or buildah gave it), which pub pushes to repository by
// digest, and returns the digest. The image reaches pub unread: only when pub needs its content
// (it has no record of having pushed this source there) does save write it, as an
// uncompressed docker-archive (docker save's format), to path, a file in a new temporary
// directory under tempDir (os.TempDir() when empty); it is then converted to OCI media types on
// the layers pub already holds. The staged archive is removed before returning.
func PushArchive(ctx context.Context, pub Publisher, repository, source, tempDir string, save func(ctx context.Context, path string) error) (string, error) {
	reuse := func(layers []v1.Layer) []v1.Layer {
		return pub.ReuseLayers(ctx, repository, types.OCILayer, layers)
	}
	img := &daemonImage{id: source, open: func() (v1.Image, func(), error) { return stageArchive(ctx, tempDir, save, reuse) }}
	defer img.close()
	return pub.PushImage(ctx, repository, img)
}

// stageArchive has save write an image to a docker-archive in a new temporary directory and
// opens it with OCI media types, on the layers reuse gives back for the saved ones; cleanup
// removes the directory.
func stageArchive(ctx context.Context, tempDir string, save func(ctx context.Context, path string) error, reuse func([]v1.Layer) []v1.Layer) (v1.Image, func(), error) {
	dir, err := os.MkdirTemp(tempDir, "imagebuilder-save-*")
	if err != nil {
		return nil, nil, fmt.Errorf("staging the image: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	fail := func(err error) (v1.Image, func(), error) { cleanup(); return nil, nil, err }
	path := filepath.Join(dir, "image.tar")
	if err := save(ctx, path); err != nil {
		return fail(err)
	}
	saved, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		return fail(fmt.Errorf("reading the saved image: %w", err))
	}
	img, err := toOCI(saved, reuse)
	if err != nil {
		return fail(fmt.Errorf("converting to OCI media types: %w", err))
	}
	return img, cleanup, nil
}

// daemonImage is an image in a Docker daemon (or buildah's storage), exported the first time
// its content is asked for. Its Source is the image ID, which identifies the content exactly.
type daemonImage struct {
	id   string
	open func() (v1.Image, func(), error)

	once    sync.Once
	img     v1.Image
	cleanup func()
	err     error
}

var _ interface {
	v1.Image
	Source() string
} = (*daemonImage)(nil)

func (d *daemonImage) load() (v1.Image, error) {
	d.once.Do(func() { d.img, d.cleanup, d.err = d.open() })
	return d.img, d.err
}

func (d *daemonImage) close() {
	if d.cleanup != nil {
		d.cleanup()
	}
}

// Source is the image ID.
func (d *daemonImage) Source() string { return d.id }

// MediaType is known without exporting: the image is converted to an OCI manifest.
func (d *daemonImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// with runs f on the exported image.
func with[T any](d *daemonImage, f func(v1.Image) (T, error)) (T, error) {
	img, err := d.load()
	if err != nil {
		var zero T
		return zero, err
	}
	return f(img)
}

func (d *daemonImage) Layers() ([]v1.Layer, error)         { return with(d, v1.Image.Layers) }
func (d *daemonImage) Size() (int64, error)                { return with(d, v1.Image.Size) }
func (d *daemonImage) ConfigName() (v1.Hash, error)        { return with(d, v1.Image.ConfigName) }
func (d *daemonImage) ConfigFile() (*v1.ConfigFile, error) { return with(d, v1.Image.ConfigFile) }
func (d *daemonImage) RawConfigFile() ([]byte, error)      { return with(d, v1.Image.RawConfigFile) }
func (d *daemonImage) Digest() (v1.Hash, error)            { return with(d, v1.Image.Digest) }
func (d *daemonImage) Manifest() (*v1.Manifest, error)     { return with(d, v1.Image.Manifest) }
func (d *daemonImage) RawManifest() ([]byte, error)        { return with(d, v1.Image.RawManifest) }
func (d *daemonImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	return with(d, func(img v1.Image) (v1.Layer, error) { return img.LayerByDigest(h) })
}
func (d *daemonImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	return with(d, func(img v1.Image) (v1.Layer, error) { return img.LayerByDiffID(h) })
}

// toOCI rewrites a Docker image (as exported by the daemon) with OCI media types, keeping its
// configuration and layers, so both drivers push the same kind of manifest. reuse (nil: none)
// may swap layers for ones whose compressed form is known.
func toOCI(img v1.Image, reuse func([]v1.Layer) []v1.Layer) (v1.Image, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if reuse != nil {
		layers = reuse(layers)
	}
	adds := make([]mutate.Addendum, 0, len(layers))
	for _, l := range layers {
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: types.OCILayer})
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	out, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, err
	}
	// Append recorded fresh history and diff IDs; the original configuration is the truth.
	return mutate.ConfigFile(out, cfg)
}
