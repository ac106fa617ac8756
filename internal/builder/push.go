package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	dockerclient "github.com/moby/moby/client"
)

// pushedImage is one platform's manifest as pushed.
type pushedImage struct {
	desc v1.Descriptor // media type, size, digest and platform of the manifest
}

// pushFromDaemon exports image id from the daemon (docker-archive), converts it to OCI media
// types and pushes it to repo by digest. The archive is staged in a temporary file under
// tempDir (os.TempDir() when empty) that is removed before returning.
func pushFromDaemon(ctx context.Context, dc *dockerclient.Client, id string, repo name.Repository, platform string, creds *credentials, tempDir string) (pushedImage, error) {
	f, err := os.CreateTemp(tempDir, "imagebuilder-save-*.tar")
	if err != nil {
		return pushedImage{}, fmt.Errorf("staging the image: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()

	rc, err := dc.ImageSave(ctx, []string{id})
	if err != nil {
		return pushedImage{}, fmt.Errorf("exporting image %s from the daemon: %w", id, err)
	}
	_, err = io.Copy(f, rc)
	rc.Close()
	if err != nil {
		return pushedImage{}, fmt.Errorf("exporting image %s from the daemon: %w", id, err)
	}
	if err := f.Close(); err != nil {
		return pushedImage{}, fmt.Errorf("staging the image: %w", err)
	}

	saved, err := tarball.ImageFromPath(f.Name(), nil)
	if err != nil {
		return pushedImage{}, fmt.Errorf("reading the image exported from the daemon: %w", err)
	}
	img, err := toOCI(saved)
	if err != nil {
		return pushedImage{}, fmt.Errorf("converting to OCI media types: %w", err)
	}
	desc, err := describe(img, platform)
	if err != nil {
		return pushedImage{}, err
	}
	ref := repo.Digest(desc.Digest.String())
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(creds)); err != nil {
		return pushedImage{}, fmt.Errorf("uploading %s: %w", ref, err)
	}
	return pushedImage{desc: desc}, nil
}

// describe returns the index descriptor of img for platform.
func describe(img v1.Image, platform string) (v1.Descriptor, error) {
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("reading the manifest: %w", err)
	}
	size, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("reading the manifest: %w", err)
	}
	dgst, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("computing the manifest digest: %w", err)
	}
	p, err := platforms.Parse(platform)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("platform %q: %w", platform, err)
	}
	p = platforms.Normalize(p)
	return v1.Descriptor{
		MediaType: mt,
		Size:      size,
		Digest:    dgst,
		Platform:  &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures},
	}, nil
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

// rawIndex is an index manifest pushed as given.
type rawIndex struct{ data []byte }

func (r rawIndex) RawManifest() ([]byte, error)        { return r.data, nil }
func (r rawIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }

// pushIndex pushes an OCI index of the pushed manifests to repo by digest.
func pushIndex(ctx context.Context, repo name.Repository, images []pushedImage, creds *credentials) (v1.Hash, error) {
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, img := range images {
		idx.Manifests = append(idx.Manifests, img.desc)
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return v1.Hash{}, err
	}
	dgst, _, err := v1.SHA256(strings.NewReader(string(data)))
	if err != nil {
		return v1.Hash{}, err
	}
	ref := repo.Digest(dgst.String())
	if err := remote.Put(ref, rawIndex{data: data}, remote.WithContext(ctx), remote.WithAuthFromKeychain(creds)); err != nil {
		return v1.Hash{}, fmt.Errorf("uploading %s: %w", ref, err)
	}
	return dgst, nil
}

// isLoopback reports whether a registry host (host[:port]) is on the loopback interface.
func isLoopback(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = strings.Trim(host, "[]")
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
