package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Tags lists the tags of repo (REGISTRY/REPO), following the registry's pagination
// (/v2/NAME/tags/list and its Link headers). A repository that does not exist has no tags.
func (c *Client) Tags(ctx context.Context, repo string) ([]string, error) {
	r, err := c.parseRepo(repo)
	if err != nil {
		return nil, c.fail(err)
	}
	tags, err := c.puller.List(ctx, r)
	if err != nil {
		if errors.Is(c.fail(err), ErrNotFound) {
			return []string{}, nil
		}
		return nil, c.fail(fmt.Errorf("listing the tags of %q: %w", repo, err))
	}
	return tags, nil
}

// CreatedLabel is the OCI annotation label of an image's creation time, the fallback when its
// config has none.
const CreatedLabel = "org.opencontainers.image.created"

// Creation is when the image a reference points at was created.
type Creation struct {
	// Digest is what the reference points at.
	Digest string
	// Time is the creation time; zero when the image says nothing.
	Time time.Time
	// From says where Time comes from: "config" (the config's created), "label"
	// (org.opencontainers.image.created), or "" when neither holds a time.
	From string
}

// Created returns when the image ref points at was created: its config's created (of the
// first platform image, for an index), else its org.opencontainers.image.created label (RFC
// 3339). The error wraps [ErrNotFound] when ref does not exist.
func (c *Client) Created(ctx context.Context, ref string) (Creation, error) {
	return readDescriptor(c, ctx, ref, "reading the creation time of", func(desc *remote.Descriptor) (Creation, error) {
		out := Creation{Digest: desc.Digest.String()}
		cf, err := descConfig(desc)
		if err != nil {
			return out, err
		}
		switch {
		case !cf.Created.IsZero() && cf.Created.Unix() > 0:
			out.Time, out.From = cf.Created.UTC(), "config"
		default:
			// A label that is not an RFC 3339 time dates nothing.
			if t, err := time.Parse(time.RFC3339, cf.Config.Labels[CreatedLabel]); err == nil {
				out.Time, out.From = t.UTC(), "label"
			}
		}
		return out, nil
	})
}
