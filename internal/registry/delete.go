package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// placeholderLabel (an annotation) marks the manifests Delete uses to remove a tag on registries that cannot
// delete tags.
const placeholderLabel = "org.imagebuilder.deleted-tag"

// deleteSupport remembers, per registry host, what its deletes taught the client: that it
// refuses tag DELETEs (Docker Distribution), and that it deletes manifests. Later deletes skip
// the requests that would only learn it again.
type deleteSupport struct {
	mu          sync.Mutex
	noTagDelete map[string]bool
	deletesOK   map[string]bool
	clients     sync.Map // repository name -> *http.Client authorized to delete there
}

func (d *deleteSupport) get(m *map[string]bool, host string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return (*m)[host]
}

func (d *deleteSupport) set(m *map[string]bool, host string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[host] = true
}

// Delete removes ref from its registry; the registry must allow deletes (Docker
// Distribution: storage.delete.enabled).
//
// A digest reference deletes that manifest or index; on Docker Distribution every tag
// pointing at it goes too. A tag reference removes only the tag: with a tag DELETE where the
// registry supports one (OCI distribution spec), otherwise by pointing the tag at a
// placeholder made for this deletion alone — an empty index with an annotation, so no blob is
// uploaded — and deleting the placeholder by digest, so other tags of the same image survive.
// The error wraps [ErrNotFound] when ref does not exist.
//
// On a registry that deletes only by digest, the first tag deletion costs five requests (the
// refused tag DELETE, a HEAD of the tag, a probe that deletes are enabled, the placeholder's
// PUT and its DELETE); the client remembers what it learnt, so later ones cost three.
func (c *Client) Delete(ctx context.Context, ref string) error {
	r, err := c.parseRef(ref)
	if err != nil {
		return c.fail(err)
	}
	t, isTag := r.(name.Tag)
	host := r.Context().RegistryStr()
	if !isTag || !c.deletes.get(&c.deletes.noTagDelete, host) {
		err = c.deleteManifest(ctx, r)
		if err == nil {
			return nil
		}
		if !isTag || !tagDeleteUnsupported(err) {
			return c.fail(fmt.Errorf("deleting %q: %w", ref, err))
		}
		c.deletes.set(&c.deletes.noTagDelete, host)
		c.log.Debug("registry cannot delete tags; replacing the tag by a placeholder", "ref", ref, "error", c.scrub(err.Error()))
	}
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
	was, err := c.resolve(ctx, t)
	if err != nil {
		return err
	}
	host := t.Context().RegistryStr()
	if !c.deletes.get(&c.deletes.deletesOK, host) {
		// Moving the tag is only safe if the placeholder can be deleted afterwards: ask the
		// registry to delete a manifest that cannot exist. Distribution answers 404 when
		// deletes are enabled and 405 UNSUPPORTED when they are not.
		probe := t.Digest("sha256:" + strings.Repeat("0", 64))
		err := c.deleteManifest(ctx, probe)
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
			if err == nil {
				err = errors.New("the registry accepted deleting a manifest that does not exist")
			}
			return fmt.Errorf("the registry cannot delete tags, and checking that it deletes manifests failed, so the tag was left alone: %w", err)
		}
		c.deletes.set(&c.deletes.deletesOK, host)
	}
	placeholder, err := placeholderIndex(t)
	if err != nil {
		return fmt.Errorf("making a placeholder manifest: %w", err)
	}
	digest, _, err := v1.SHA256(bytes.NewReader(placeholder.raw))
	if err != nil {
		return fmt.Errorf("making a placeholder manifest: %w", err)
	}
	if err := c.pusher.Put(ctx, t, placeholder); err != nil {
		return fmt.Errorf("pointing the tag at a placeholder manifest: %w", err)
	}
	if err := c.deleteManifest(ctx, t.Digest(digest.String())); err != nil {
		// Some registries refuse to delete a manifest a tag names (Docker Hub answers 403):
		// point the tag back where it was rather than leave it on the placeholder.
		err = fmt.Errorf("deleting placeholder manifest %s: %w", digest, err)
		if m, rerr := c.manifest(ctx, t.Digest(was.Digest)); rerr != nil {
			return fmt.Errorf("%w; the tag now points at the placeholder: restoring it: %v", err, rerr)
		} else if rerr := c.pusher.Put(ctx, t, m); rerr != nil {
			return fmt.Errorf("%w; the tag now points at the placeholder: restoring it: %v", err, rerr)
		}
		return fmt.Errorf("%w (the tag was put back on %s)", err, was.Digest)
	}
	return nil
}

// placeholderIndex is a manifest unique to the deletion of t that names no blob: an empty OCI
// index whose annotation holds the tag and a random nonce.
func placeholderIndex(t name.Tag) (rawManifest, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return rawManifest{}, err
	}
	raw, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     []v1.Descriptor{},
		Annotations:   map[string]string{placeholderLabel: fmt.Sprintf("%s %x %s", t.Name(), nonce, time.Now().UTC().Format(time.RFC3339))},
	})
	if err != nil {
		return rawManifest{}, err
	}
	return rawManifest{raw: raw, mediaType: types.OCIImageIndex}, nil
}

// deleteManifest sends DELETE /v2/NAME/manifests/REFERENCE. It keeps one authorized HTTP client
// per repository (go-containerregistry's Delete pings the registry and authenticates anew for
// every call).
func (c *Client) deleteManifest(ctx context.Context, r name.Reference) error {
	repo := r.Context()
	var hc *http.Client
	if v, ok := c.deletes.clients.Load(repo.Name()); ok {
		hc = v.(*http.Client)
	} else {
		auth, err := keychain{c}.ResolveContext(ctx, repo)
		if err != nil {
			return err
		}
		tr, err := transport.NewWithContext(ctx, repo.Registry, auth, c.checkTransport(), []string{repo.Scope(transport.DeleteScope)})
		if err != nil {
			return err
		}
		hc = &http.Client{Transport: tr}
		c.deletes.clients.Store(repo.Name(), hc)
	}
	u := url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/manifests/%s", repo.RepositoryStr(), r.Identifier())}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return transport.CheckError(resp, http.StatusOK, http.StatusAccepted)
}
