package registry

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Tag points each dst tag ("REGISTRY/REPO:TAG") at the manifest or index src
// ("REGISTRY/REPO@sha256:…") names. A dst in src's repository costs one manifest PUT (plus
// one GET of src, unless this client fetched it already: see [Client.Fetch]); nothing else is
// needed, the manifest and everything it names being there. A dst in another repository of
// the same registry mounts the blobs and copies the child manifests before the manifest; a
// dst in another registry copies them (index children included), as crane copy does; either
// leaves alone a dst already pointing at src's digest. All references are parsed before
// anything is written; the tags are then moved in order, and the error names the first one
// that failed.
func (c *Client) Tag(ctx context.Context, src string, dst ...string) error {
	if len(dst) == 0 {
		return c.fail(fmt.Errorf("tagging %q: no destination tags", src))
	}
	s, err := c.parseDigest(src)
	if err != nil {
		return c.fail(fmt.Errorf("tagging %q: %w", src, err))
	}
	tags := make([]name.Tag, len(dst))
	for i, d := range dst {
		if tags[i], err = c.parseTag(d); err != nil {
			return c.fail(fmt.Errorf("tagging %q: %w", src, err))
		}
	}
	var desc *remote.Descriptor // fetched for the first copy to another repository
	for i, t := range tags {
		if t.Context().Name() == s.Context().Name() {
			m, err := c.manifest(ctx, s)
			if err != nil {
				return c.fail(fmt.Errorf("tagging %q: fetching the source manifest: %w", src, err))
			}
			if err := c.pusher.Put(ctx, t, m); err != nil {
				return c.fail(fmt.Errorf("tagging %q as %q: %w", src, dst[i], err))
			}
			continue
		}
		if desc == nil {
			if desc, err = c.get(ctx, s); err != nil {
				return c.fail(fmt.Errorf("tagging %q: fetching the source manifest: %w", src, err))
			}
		}
		if err := c.pusher.Push(ctx, t, desc); err != nil {
			return c.fail(fmt.Errorf("tagging %q as %q: %w", src, dst[i], err))
		}
	}
	return nil
}
