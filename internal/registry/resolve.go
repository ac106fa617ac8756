package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Descriptor describes the manifest or index a reference points at.
type Descriptor struct {
	// Repository is the normalized repository name ("index.docker.io/library/alpine",
	// "127.0.0.1:5000/team/app").
	Repository string `json:"repository"`
	// Digest is the manifest's digest ("sha256:…"), what the registry serves for the ref.
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
}

// Ref returns the digest reference REPOSITORY@DIGEST.
func (d Descriptor) Ref() string { return d.Repository + "@" + d.Digest }

// IsIndex reports whether the descriptor is an OCI index or a Docker manifest list.
func (d Descriptor) IsIndex() bool { return types.MediaType(d.MediaType).IsIndex() }

// Resolve returns the descriptor of the manifest or index ref points at, with a HEAD request
// (falling back to GET where the registry's HEAD answer is incomplete). The error wraps
// [ErrNotFound] when the registry has no such tag, digest or repository.
func (c *Client) Resolve(ctx context.Context, ref string) (Descriptor, error) {
	r, err := c.parseRef(ref)
	if err != nil {
		return Descriptor{}, c.fail(err)
	}
	d, err := c.resolve(ctx, r)
	if err != nil {
		return Descriptor{}, c.fail(fmt.Errorf("resolving %q: %w", ref, err))
	}
	return d, nil
}

func (c *Client) resolve(ctx context.Context, r name.Reference) (Descriptor, error) {
	desc, err := c.puller.Head(ctx, r)
	if err != nil && headUnsupported(ctx, err) {
		c.log.Debug("HEAD incomplete, falling back to GET", "ref", r.String(), "error", c.scrub(err.Error()))
		var got *remote.Descriptor
		got, err = c.puller.Get(ctx, r)
		if err == nil {
			desc = &got.Descriptor
		}
	}
	if err != nil {
		return Descriptor{}, err
	}
	return Descriptor{
		Repository: r.Context().Name(),
		Digest:     desc.Digest.String(),
		MediaType:  string(desc.MediaType),
		Size:       desc.Size,
	}, nil
}

// headUnsupported reports whether a failed HEAD is worth a GET: the registry refused the
// method, or answered without the headers go-containerregistry needs. Not for registry
// errors (404, 401, 5xx after retries) nor network errors, which a GET would only repeat.
func headUnsupported(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode == http.StatusMethodNotAllowed
	}
	var uerr *url.Error
	return !errors.As(err, &uerr)
}

// Exists reports whether ref (a tag or a digest reference) exists in its registry.
func (c *Client) Exists(ctx context.Context, ref string) (bool, error) {
	_, err := c.Resolve(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// Platforms returns the platforms ref provides, as "os/arch[/variant]" ("linux/arm64/v8"):
// for an index those of its image manifests, in index order, leaving out attestation
// manifests (BuildKit's provenance and SBOMs) and entries for unknown platforms; for a single
// manifest the os and architecture of its config.
func (c *Client) Platforms(ctx context.Context, ref string) ([]string, error) {
	ms, err := c.Manifests(ctx, ref)
	if err != nil {
		return nil, err
	}
	ps := make([]string, len(ms))
	for i, m := range ms {
		ps[i] = m.Platform
	}
	return ps, nil
}

// Manifest is one platform's image of a reference.
type Manifest struct {
	Platform string `json:"platform"` // os/arch[/variant]
	Digest   string `json:"digest"`   // the image manifest's digest
}

// Manifests returns the platform images ref provides, as Platforms orders them, each with its
// manifest digest: for a single manifest, the one entry is the manifest itself.
func (c *Client) Manifests(ctx context.Context, ref string) ([]Manifest, error) {
	return readDescriptor(c, ctx, ref, "reading platforms of", manifests)
}

// readDescriptor fetches the manifest or index ref points at and reads it with read; errors
// say what was being done (doing) to which ref.
func readDescriptor[T any](c *Client, ctx context.Context, ref, doing string, read func(*remote.Descriptor) (T, error)) (T, error) {
	var zero T
	r, err := c.parseRef(ref)
	if err != nil {
		return zero, c.fail(err)
	}
	desc, err := c.puller.Get(ctx, r)
	if err == nil {
		var v T
		if v, err = read(desc); err == nil {
			return v, nil
		}
	}
	return zero, c.fail(fmt.Errorf("%s %q: %w", doing, ref, err))
}

// Image is what a reference serves, read with one manifest fetch and one config fetch.
type Image struct {
	// Digest is the manifest's (or index's) digest.
	Digest string
	// Labels are the config labels (of the first platform image, for an index).
	Labels map[string]string
	// Manifests are its platform images, as Manifests returns them.
	Manifests []Manifest
}

// Inspect returns the labels and the platform images of what ref points at: Labels and
// Manifests in one manifest fetch. The error wraps [ErrNotFound] when ref does not exist.
func (c *Client) Inspect(ctx context.Context, ref string) (*Image, error) {
	return readDescriptor(c, ctx, ref, "inspecting", func(desc *remote.Descriptor) (*Image, error) {
		labels, err := descLabels(desc)
		if err != nil {
			return nil, err
		}
		ms, err := manifests(desc)
		if err != nil {
			return nil, err
		}
		return &Image{Digest: desc.Digest.String(), Labels: labels, Manifests: ms}, nil
	})
}

// manifests lists the platform images of a fetched manifest or index.
func manifests(desc *remote.Descriptor) ([]Manifest, error) {
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		return indexPlatforms(idx, 0)
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		p, err := imagePlatform(img)
		if err != nil {
			return nil, err
		}
		return []Manifest{{Platform: p, Digest: desc.Digest.String()}}, nil
	}
	return nil, fmt.Errorf("unsupported media type %q", desc.MediaType)
}

// maxIndexDepth bounds the recursion through nested indexes.
const maxIndexDepth = 4

func indexPlatforms(idx v1.ImageIndex, depth int) ([]Manifest, error) {
	if depth > maxIndexDepth {
		return nil, errors.New("indexes nested too deeply")
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var ps []Manifest
	for _, m := range im.Manifests {
		switch {
		case isAttestation(m):
		case m.MediaType.IsIndex():
			child, err := idx.ImageIndex(m.Digest)
			if err != nil {
				return nil, fmt.Errorf("reading nested index %s: %w", m.Digest, err)
			}
			sub, err := indexPlatforms(child, depth+1)
			if err != nil {
				return nil, err
			}
			ps = append(ps, sub...)
		case m.Platform != nil && m.Platform.OS != "":
			ps = append(ps, Manifest{Platform: formatPlatform(*m.Platform), Digest: m.Digest.String()})
		case m.MediaType.IsImage():
			// An index entry without a platform: the image's config has it.
			img, err := idx.Image(m.Digest)
			if err != nil {
				return nil, fmt.Errorf("reading manifest %s: %w", m.Digest, err)
			}
			p, err := imagePlatform(img)
			if err != nil {
				return nil, fmt.Errorf("reading manifest %s: %w", m.Digest, err)
			}
			ps = append(ps, Manifest{Platform: p, Digest: m.Digest.String()})
		}
	}
	return ps, nil
}

// isAttestation reports whether an index entry is an attestation manifest rather than an
// image for some platform (BuildKit marks them so and gives them platform unknown/unknown).
func isAttestation(d v1.Descriptor) bool {
	if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
		return true
	}
	return d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}

func imagePlatform(img v1.Image) (string, error) {
	p, err := configPlatform(img)
	if err != nil {
		return "", err
	}
	return formatPlatform(p), nil
}

func configPlatform(img v1.Image) (v1.Platform, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Platform{}, fmt.Errorf("reading image config: %w", err)
	}
	p := cf.Platform()
	if p == nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, errors.New("image config names no os and architecture")
	}
	return *p, nil
}

// formatPlatform gives os/arch[/variant], as BuildKit and Docker write platforms.
func formatPlatform(p v1.Platform) string {
	parts := []string{p.OS, p.Architecture}
	if p.Variant != "" {
		parts = append(parts, p.Variant)
	}
	return strings.Join(parts, "/")
}
