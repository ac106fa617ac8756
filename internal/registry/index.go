package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AssembleIndex builds a multi-platform index from manifests already in repo, pushes it by
// digest (no tag) and returns its digest. Each element of manifests is a digest
// ("sha256:…") or a digest reference in repo ("REPO@sha256:…"), one per platform; the
// platform of each comes from its config. An element that is itself an index (a
// single-platform BuildKit result with attestations) contributes its entries, attestation
// manifests included.
//
// The index keeps the children's media types consistent: a Docker manifest list when every
// child is a Docker v2 manifest, an OCI index when every child is an OCI manifest; mixed
// children, duplicate platforms and children without a platform are errors. The index
// depends only on the children and their order, so assembling the same build twice gives
// the same digest.
func (c *Client) AssembleIndex(ctx context.Context, repo string, manifests []string) (string, error) {
	r, err := c.parseRepo(repo)
	if err != nil {
		return "", c.fail(fmt.Errorf("assembling an index in %q: %w", repo, err))
	}
	if len(manifests) == 0 {
		return "", c.fail(fmt.Errorf("assembling an index in %q: no manifests", repo))
	}
	refs := make([]name.Digest, len(manifests))
	for i, m := range manifests {
		if refs[i], err = c.childRef(r, m); err != nil {
			return "", c.fail(fmt.Errorf("assembling an index in %q: %w", repo, err))
		}
	}

	var entries []v1.Descriptor
	for i, d := range refs {
		es, err := c.indexEntries(ctx, d)
		if err != nil {
			return "", c.fail(fmt.Errorf("assembling an index in %q: reading %q: %w", repo, manifests[i], err))
		}
		entries = append(entries, es...)
	}
	mediaType, err := indexMediaType(entries)
	if err != nil {
		return "", c.fail(fmt.Errorf("assembling an index in %q: %w", repo, err))
	}

	raw, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: mediaType, Manifests: entries})
	if err != nil {
		return "", c.fail(fmt.Errorf("assembling an index in %q: %w", repo, err))
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return "", c.fail(fmt.Errorf("assembling an index in %q: %w", repo, err))
	}
	if err := c.pusher.Put(ctx, r.Digest(h.String()), rawManifest{raw: raw, mediaType: mediaType}); err != nil {
		return "", c.fail(fmt.Errorf("assembling an index in %q: pushing it: %w", repo, err))
	}
	return h.String(), nil
}

// childRef turns a digest or a digest reference into a digest reference in repo.
func (c *Client) childRef(repo name.Repository, s string) (name.Digest, error) {
	if _, err := v1.NewHash(s); err == nil {
		return name.NewDigest(repo.Name()+"@"+s, c.nameOpts(repo.RegistryStr())...)
	}
	d, err := c.parseDigest(s)
	if err != nil {
		return name.Digest{}, err
	}
	if d.Context().Name() != repo.Name() {
		return name.Digest{}, fmt.Errorf("manifest %q is not in repository %q", s, repo.Name())
	}
	return d, nil
}

// indexEntries returns the index entries one child contributes.
func (c *Client) indexEntries(ctx context.Context, d name.Digest) ([]v1.Descriptor, error) {
	desc, err := c.puller.Get(ctx, d)
	if err != nil {
		return nil, err
	}
	switch {
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		p, err := configPlatform(img)
		if err != nil {
			return nil, err
		}
		return []v1.Descriptor{{MediaType: desc.MediaType, Size: desc.Size, Digest: desc.Digest, Platform: &p}}, nil
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		var es []v1.Descriptor
		for _, m := range im.Manifests {
			switch {
			case m.MediaType.IsIndex():
				return nil, fmt.Errorf("nested index %s is not supported", m.Digest)
			case isAttestation(m):
			case m.Platform == nil || m.Platform.OS == "":
				img, err := idx.Image(m.Digest)
				if err != nil {
					return nil, fmt.Errorf("reading manifest %s: %w", m.Digest, err)
				}
				p, err := configPlatform(img)
				if err != nil {
					return nil, fmt.Errorf("reading manifest %s: %w", m.Digest, err)
				}
				m.Platform = &p
			}
			es = append(es, m)
		}
		return es, nil
	default:
		return nil, fmt.Errorf("unsupported media type %q", desc.MediaType)
	}
}

// indexMediaType checks the entries and picks the index media type matching them.
func indexMediaType(entries []v1.Descriptor) (types.MediaType, error) {
	seen := map[string]v1.Hash{}
	docker, oci := 0, 0
	for _, e := range entries {
		switch e.MediaType {
		case types.DockerManifestSchema2:
			docker++
		case types.OCIManifestSchema1:
			oci++
		default:
			return "", fmt.Errorf("manifest %s has media type %q, which an index cannot hold", e.Digest, e.MediaType)
		}
		if isAttestation(e) {
			continue
		}
		key := e.Platform.String()
		if prev, ok := seen[key]; ok {
			return "", fmt.Errorf("platform %s given twice (%s and %s)", formatPlatform(*e.Platform), prev, e.Digest)
		}
		seen[key] = e.Digest
	}
	switch {
	case docker > 0 && oci > 0:
		return "", fmt.Errorf("mixed manifest media types: %d Docker v2 and %d OCI manifests; build all platforms with the same exporter settings", docker, oci)
	case docker > 0:
		return types.DockerManifestList, nil
	default:
		return types.OCIImageIndex, nil
	}
}

// rawManifest is a serialized manifest with its media type, for remote's Put.
type rawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }
