package registry

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// Tag points each dst tag ("REGISTRY/REPO:TAG") at the manifest or index src
// ("REGISTRY/REPO@sha256:…") names. A dst in src's repository costs one manifest PUT; a dst
// in another repository of the same registry mounts the blobs; a dst in another registry
// copies them (index children included), as crane copy does. A dst already pointing at src's
// digest is left alone. All references are parsed before anything is written; the tags are
// then moved in order, and the error names the first one that failed.
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
	desc, err := c.puller.Get(ctx, s)
	if err != nil {
		return c.fail(fmt.Errorf("tagging %q: fetching the source manifest: %w", src, err))
	}
	if !desc.MediaType.IsImage() && !desc.MediaType.IsIndex() {
		return c.fail(fmt.Errorf("tagging %q: unsupported media type %q", src, desc.MediaType))
	}
	for i, t := range tags {
		if err := c.pusher.Push(ctx, t, desc); err != nil {
			return c.fail(fmt.Errorf("tagging %q as %q: %w", src, dst[i], err))
		}
	}
	return nil
}
