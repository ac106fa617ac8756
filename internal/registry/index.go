package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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
	refs := make([]name.Reference, len(manifests))
	for i, m := range manifests {
		if refs[i], err = c.childRef(r, m); err != nil {
			return "", c.fail(fmt.Errorf("assembling an index in %q: %w", repo, err))
		}
	}
	idx, err := c.assemble(ctx, r, manifests, refs, IndexOptions{})
	if err == nil {
		err = c.pusher.Put(ctx, r.Digest(idx.Digest), idx.raw)
	}
	if err != nil {
		return "", c.fail(fmt.Errorf("assembling an index in %q: %w", repo, err))
	}
	return idx.Digest, nil
}

// IndexOptions control PlanIndex.
type IndexOptions struct {
	// DropAttestations leaves out the attestation manifests of sources that are indexes
	// (BuildKit's provenance and SBOMs); by default they are kept beside the image they
	// describe.
	DropAttestations bool
	// mixed allows Docker and OCI children in one index (an OCI index then).
	mixed bool
}

// Index is an index PlanIndex computed.
type Index struct {
	// Digest and MediaType are the index's.
	Digest    string
	MediaType string
	// Children are its entries, in order.
	Children []IndexChild
	raw      rawManifest
	sources  []taggableSource
}

// IndexChild is one entry of an index and where it came from.
type IndexChild struct {
	// Platform is os/arch[/variant]; "unknown/unknown" for an attestation manifest.
	Platform string
	Digest   string
	// From is the source reference the child came from.
	From string
	// Attests is, for an attestation manifest, the digest of the image it describes.
	Attests string
}

// taggableSource is a child to copy into the index's repository, when its source is elsewhere.
type taggableSource struct {
	digest string
	repo   string                          // the source's repository
	child  func() (remote.Taggable, error) // reads it (a GET), when it is to be copied
}

// PlanIndex reads the sources of an index to be tagged as dst (REGISTRY/REPO:TAG) and computes
// it, writing nothing; PushIndex then writes it. Each source (a tag or digest reference) is an
// image — its platform read from its config — or an index, which is flattened: its platform
// manifests, and its attestation manifests unless DropAttestations (their
// vnd.docker.reference.digest annotations still name the right child, the children being
// copied unchanged). A platform given by two sources is an error naming both. The media type is
// a Docker manifest list when every child is a Docker v2 manifest, an OCI index otherwise.
func (c *Client) PlanIndex(ctx context.Context, dst string, sources []string, opts IndexOptions) (*Index, error) {
	t, err := c.parseTag(dst)
	if err != nil {
		return nil, c.fail(fmt.Errorf("creating index %q: %w", dst, err))
	}
	if len(sources) == 0 {
		return nil, c.fail(fmt.Errorf("creating index %q: no sources", dst))
	}
	refs := make([]name.Reference, len(sources))
	for i, s := range sources {
		if refs[i], err = c.parseRef(s); err != nil {
			return nil, c.fail(fmt.Errorf("creating index %q: %w", dst, err))
		}
	}
	opts.mixed = true
	idx, err := c.assemble(ctx, t.Context(), sources, refs, opts)
	if err != nil {
		return nil, c.fail(fmt.Errorf("creating index %q: %w", dst, err))
	}
	return idx, nil
}

// PushIndex writes an index PlanIndex computed, under dst: children whose source is in another
// repository of dst's registry have their blobs mounted and are copied into dst's repository
// first, children from other registries are copied with their blobs; then the index is PUT.
func (c *Client) PushIndex(ctx context.Context, dst string, idx *Index) error {
	t, err := c.parseTag(dst)
	if err != nil {
		return c.fail(fmt.Errorf("creating index %q: %w", dst, err))
	}
	for _, s := range idx.sources {
		if s.repo == t.Context().Name() {
			continue
		}
		child, err := s.child()
		if err == nil {
			err = c.pusher.Push(ctx, t.Context().Digest(s.digest), child)
		}
		if err != nil {
			return c.fail(fmt.Errorf("creating index %q: copying %s from %s: %w", dst, s.digest, s.repo, err))
		}
	}
	if err := c.pusher.Put(ctx, t, idx.raw); err != nil {
		return c.fail(fmt.Errorf("creating index %q: pushing it: %w", dst, err))
	}
	return nil
}

// assemble reads the sources and computes the index of their entries (nothing is written).
// names are the sources as given, for messages and facts.
func (c *Client) assemble(ctx context.Context, repo name.Repository, names []string, refs []name.Reference, opts IndexOptions) (*Index, error) {
	idx := &Index{}
	var entries []v1.Descriptor
	seen := map[string]string{} // platform -> source
	for i, r := range refs {
		desc, err := c.puller.Get(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("reading %q: %w", names[i], err)
		}
		es, children, err := indexEntries(desc, opts.DropAttestations)
		if err != nil {
			return nil, fmt.Errorf("reading %q: %w", names[i], err)
		}
		for j, e := range es {
			child := IndexChild{Platform: "unknown/unknown", Digest: e.Digest.String(), From: names[i]}
			if e.Platform != nil {
				child.Platform = formatPlatform(*e.Platform)
			}
			if isAttestation(e) {
				child.Attests = e.Annotations["vnd.docker.reference.digest"]
			} else {
				key := e.Platform.String()
				if prev, ok := seen[key]; ok {
					if prev == names[i] {
						return nil, fmt.Errorf("platform %s given twice (%s and %s)", child.Platform, entryDigest(entries, key), e.Digest)
					}
					return nil, fmt.Errorf("platform %s given twice: by %s and by %s", child.Platform, prev, names[i])
				}
				seen[key] = names[i]
			}
			entries = append(entries, e)
			idx.Children = append(idx.Children, child)
			idx.sources = append(idx.sources, taggableSource{digest: e.Digest.String(), repo: r.Context().Name(), child: children[j]})
		}
	}
	mediaType, err := indexMediaType(entries, opts.mixed)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: mediaType, Manifests: entries})
	if err != nil {
		return nil, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	idx.Digest, idx.MediaType = h.String(), string(mediaType)
	idx.raw = rawManifest{raw: raw, mediaType: mediaType}
	return idx, nil
}

// entryDigest is the digest of the entry for platform key.
func entryDigest(entries []v1.Descriptor, key string) string {
	for _, e := range entries {
		if e.Platform != nil && !isAttestation(e) && e.Platform.String() == key {
			return e.Digest.String()
		}
	}
	return ""
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

// indexEntries returns the index entries one fetched source contributes, each with its
// platform, and the manifests they name.
func indexEntries(desc *remote.Descriptor, dropAttestations bool) ([]v1.Descriptor, []func() (remote.Taggable, error), error) {
	switch {
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, nil, err
		}
		p, err := configPlatform(img)
		if err != nil {
			return nil, nil, err
		}
		return []v1.Descriptor{{MediaType: desc.MediaType, Size: desc.Size, Digest: desc.Digest, Platform: &p}},
			[]func() (remote.Taggable, error){func() (remote.Taggable, error) { return img, nil }}, nil
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, nil, err
		}
		var es []v1.Descriptor
		var children []func() (remote.Taggable, error)
		for _, m := range im.Manifests {
			switch {
			case m.MediaType.IsIndex():
				return nil, nil, fmt.Errorf("nested index %s is not supported", m.Digest)
			case isAttestation(m) && dropAttestations:
				continue
			case isAttestation(m):
			case m.Platform == nil || m.Platform.OS == "":
				img, err := idx.Image(m.Digest)
				if err != nil {
					return nil, nil, fmt.Errorf("reading manifest %s: %w", m.Digest, err)
				}
				p, err := configPlatform(img)
				if err != nil {
					return nil, nil, fmt.Errorf("reading manifest %s: %w", m.Digest, err)
				}
				m.Platform = &p
			}
			es = append(es, m)
			children = append(children, func() (remote.Taggable, error) { return idx.Image(m.Digest) })
		}
		return es, children, nil
	default:
		return nil, nil, fmt.Errorf("unsupported media type %q", desc.MediaType)
	}
}

// indexMediaType checks the entries and picks the index media type matching them: mixed Docker
// and OCI children are an error unless mixed allows them (an OCI index then).
func indexMediaType(entries []v1.Descriptor, mixed bool) (types.MediaType, error) {
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
	}
	switch {
	case docker > 0 && oci > 0 && !mixed:
		return "", fmt.Errorf("mixed manifest media types: %d Docker v2 and %d OCI manifests; build all platforms with the same exporter settings", docker, oci)
	case docker > 0 && oci == 0:
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
