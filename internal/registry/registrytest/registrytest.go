// Package registrytest holds test helpers that look into a registry: what an image holds,
// whether a repository has tags, and a credentials callback as a keychain.
package registrytest

import (
	"archive/tar"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Files returns the contents of the named files (absolute paths) in img's flattened
// filesystem; a file img does not hold is absent from the map.
func Files(t testing.TB, img v1.Image, paths ...string) map[string]string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading the image's filesystem: %v", err)
		}
		p := "/" + strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		if slices.Contains(paths, p) {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[p] = string(b)
		}
	}
}

// AssertPushedByDigest fails unless the registry serves exactly digest in repository and the
// repository has no tag (a build pushes by digest only); it returns the digest reference.
func AssertPushedByDigest(t testing.TB, repository, digest string, opts ...remote.Option) name.Digest {
	t.Helper()
	repo, err := name.NewRepository(repository)
	if err != nil {
		t.Fatal(err)
	}
	ref := repo.Digest(digest)
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		t.Fatalf("the registry does not serve %s: %v", ref, err)
	}
	if desc.Digest.String() != digest {
		t.Errorf("the registry serves %s at %s, the build returned %s", desc.Digest, ref, digest)
	}
	AssertNoTags(t, repo, opts...)
	return ref
}

// AssertNoTags fails when the repository has any tag. A registry answers 404 for the tag list
// of a repository that holds only untagged manifests.
func AssertNoTags(t testing.TB, repo name.Repository, opts ...remote.Option) {
	t.Helper()
	tags, err := remote.List(repo, opts...)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return
		}
		t.Fatalf("listing tags of %s: %v", repo, err)
	}
	if len(tags) > 0 {
		t.Errorf("repository %s has tags %v; a build must push by digest only", repo, tags)
	}
}

// Keychain is a builder's Credentials callback (host -> user, secret) as a keychain; nil and
// empty answers are anonymous.
type Keychain func(host string) (string, string, error)

func (k Keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if k == nil {
		return authn.Anonymous, nil
	}
	user, pass, err := k(r.RegistryStr())
	if err != nil || user == "" && pass == "" {
		return authn.Anonymous, err
	}
	return &authn.Basic{Username: user, Password: pass}, nil
}
