package builder

import (
	"context"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	dockerclient "github.com/moby/moby/client"
)

// pushFromDaemon exports image id from the daemon (docker-archive), converts it to OCI media
// types and hands it to pub, which pushes it to repository by digest. The archive is staged
// in a temporary file under tempDir (os.TempDir() when empty) that is removed before
// returning.
func pushFromDaemon(ctx context.Context, dc *dockerclient.Client, id, repository string, pub Publisher, tempDir string) (string, error) {
	f, err := os.CreateTemp(tempDir, "imagebuilder-save-*.tar")
	if err != nil {
		return "", fmt.Errorf("staging the image: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()

	rc, err := dc.ImageSave(ctx, []string{id})
	if err != nil {
		return "", fmt.Errorf("exporting image %s from the daemon: %w", id, err)
	}
	_, err = io.Copy(f, rc)
	rc.Close()
	if err != nil {
		return "", fmt.Errorf("exporting image %s from the daemon: %w", id, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("staging the image: %w", err)
	}

	saved, err := tarball.ImageFromPath(f.Name(), nil)
	if err != nil {
		return "", fmt.Errorf("reading the image exported from the daemon: %w", err)
	}
	img, err := toOCI(saved)
	if err != nil {
		return "", fmt.Errorf("converting to OCI media types: %w", err)
	}
	return pub.PushImage(ctx, repository, img)
}

// toOCI rewrites a Docker image (as exported by the daemon) with OCI media types, keeping its
// configuration and layers, so both drivers push the same kind of manifest.
func toOCI(img v1.Image) (v1.Image, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
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
