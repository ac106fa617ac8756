package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// placeholderLabel marks the manifests Delete uses to remove a tag on registries that cannot
// delete tags.
const placeholderLabel = "org.imagebuilder.deleted-tag"

// Delete removes ref from its registry; the registry must allow deletes (Docker
// Distribution: storage.delete.enabled).
//
// A digest reference deletes that manifest or index; on Docker Distribution every tag
// pointing at it goes too. A tag reference removes only the tag: with a tag DELETE where the
// registry supports one (OCI distribution spec), otherwise by pointing the tag at a
// placeholder manifest made for this deletion alone and deleting the placeholder by digest,
// so other tags of the same image survive. The error wraps [ErrNotFound] when ref does not
// exist.
func (c *Client) Delete(ctx context.Context, ref string) error {
	r, err := c.parseRef(ref)
	if err != nil {
		return c.fail(err)
	}
	err = c.pusher.Delete(ctx, r)
	if err == nil {
		return nil
	}
	t, isTag := r.(name.Tag)
	if !isTag || !tagDeleteUnsupported(err) {
		return c.fail(fmt.Errorf("deleting %q: %w", ref, err))
	}
	c.log.Debug("registry cannot delete tags; replacing the tag by a placeholder", "ref", ref, "error", c.scrub(err.Error()))
	if err := c.untag(ctx, t); err != nil {
		return c.fail(fmt.Errorf("deleting %q: %w", ref, err))
	}
	return nil
}

// tagDeleteUnsupported reports whether a tag DELETE failed because the registry only
// deletes by digest (Docker Distribution 2.x answers 400 DIGEST_INVALID or 405 UNSUPPORTED).
func tagDeleteUnsupported(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	switch terr.StatusCode {
	case http.StatusMethodNotAllowed:
		return true
	case http.StatusBadRequest:
		for _, d := range terr.Errors {
			if d.Code == transport.DigestInvalidErrorCode || d.Code == transport.UnsupportedErrorCode {
				return true
			}
		}
	}
	return false
}

// untag removes tag t where the registry deletes only by digest.
func (c *Client) untag(ctx context.Context, t name.Tag) error {
	if _, err := c.resolve(ctx, t); err != nil {
		return err
	}
	// Moving the tag is only safe if the placeholder can be deleted afterwards: ask the
	// registry to delete a manifest that cannot exist. Distribution answers 404 when deletes
	// are enabled and 405 UNSUPPORTED when they are not.
	probe := t.Digest("sha256:" + strings.Repeat("0", 64))
	err := c.pusher.Delete(ctx, probe)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		if err == nil {
			err = errors.New("the registry accepted deleting a manifest that does not exist")
		}
		return fmt.Errorf("the registry cannot delete tags, and checking that it deletes manifests failed, so the tag was left alone: %w", err)
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	placeholder, err := mutate.ConfigFile(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), &v1.ConfigFile{
		Created: v1.Time{Time: time.Now().UTC()},
		OS:      "unknown",
		RootFS:  v1.RootFS{Type: "layers"},
		Config: v1.Config{Labels: map[string]string{
			placeholderLabel: fmt.Sprintf("%s %x", t.Name(), nonce),
		}},
	})
	if err != nil {
		return fmt.Errorf("making a placeholder manifest: %w", err)
	}
	digest, err := placeholder.Digest()
	if err != nil {
		return fmt.Errorf("making a placeholder manifest: %w", err)
	}
	if err := c.pusher.Push(ctx, t, placeholder); err != nil {
		return fmt.Errorf("pointing the tag at a placeholder manifest: %w", err)
	}
	if err := c.pusher.Delete(ctx, t.Digest(digest.String())); err != nil {
		return fmt.Errorf("deleting placeholder manifest %s (the tag now points at it): %w", digest, err)
	}
	return nil
}
