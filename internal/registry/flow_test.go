package registry_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/testenv"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagebuilder/imagebuilder/internal/registry"
)

// flow runs the tag / index / delete sequence the builder and promote rely on against the
// registry at host, in a repository of its own.
// pushOpts are for the test's own pushes (setup).
func flow(t *testing.T, c *registry.Client, host string, oci bool, pushOpts ...remote.Option) {
	ctx := context.Background()
	repo := fmt.Sprintf("%s/imagebuilder-test/flow-%s", host, strings.ToLower(rand.Text()[:10]))
	other := repo + "-other"

	amd := push(t, repo+":amd64", image(t, "linux/amd64", oci), pushOpts...)
	arm := push(t, repo+":arm64", image(t, "linux/arm64/v8", oci), pushOpts...)

	// Index from a bare digest and a digest reference.
	idx, err := c.AssembleIndex(ctx, repo, []string{amd, repo + "@" + arm})
	if err != nil {
		t.Fatalf("AssembleIndex: %v", err)
	}
	again, err := c.AssembleIndex(ctx, repo, []string{amd, arm})
	if err != nil {
		t.Fatalf("AssembleIndex again: %v", err)
	}
	if again != idx {
		t.Errorf("AssembleIndex is not deterministic: %s then %s", idx, again)
	}

	d, err := c.Resolve(ctx, repo+"@"+idx)
	if err != nil {
		t.Fatalf("Resolve index: %v", err)
	}
	wantType := types.DockerManifestList
	if oci {
		wantType = types.OCIImageIndex
	}
	if d.Digest != idx || !d.IsIndex() || d.MediaType != string(wantType) || d.Size <= 0 {
		t.Errorf("Resolve index = %+v, want digest %s and media type %s", d, idx, wantType)
	}
	if d.Ref() != repo+"@"+idx {
		t.Errorf("Ref() = %q, want %q", d.Ref(), repo+"@"+idx)
	}

	ps, err := c.Platforms(ctx, repo+"@"+idx)
	if err != nil {
		t.Fatalf("Platforms index: %v", err)
	}
	if want := []string{"linux/amd64", "linux/arm64/v8"}; !slices.Equal(ps, want) {
		t.Errorf("Platforms index = %v, want %v", ps, want)
	}
	if ps, err := c.Platforms(ctx, repo+":arm64"); err != nil || !slices.Equal(ps, []string{"linux/arm64/v8"}) {
		t.Errorf("Platforms manifest = %v, %v; want [linux/arm64/v8]", ps, err)
	}

	// Tag twice in the repository and once in another one (blobs mounted).
	if err := c.Tag(ctx, repo+"@"+idx, repo+":v1", repo+":stable", other+":v1"); err != nil {
		t.Fatalf("Tag: %v", err)
	}
	for _, ref := range []string{repo + ":v1", repo + ":stable", other + ":v1"} {
		d, err := c.Resolve(ctx, ref)
		if err != nil {
			t.Fatalf("Resolve %s: %v", ref, err)
		}
		if d.Digest != idx {
			t.Errorf("Resolve %s = %s, want %s", ref, d.Digest, idx)
		}
	}
	if ps, err := c.Platforms(ctx, other+":v1"); err != nil || len(ps) != 2 {
		t.Errorf("Platforms of the copy = %v, %v", ps, err)
	}
	// Tagging again changes nothing and succeeds.
	if err := c.Tag(ctx, repo+"@"+idx, repo+":v1"); err != nil {
		t.Fatalf("Tag again: %v", err)
	}

	// Deleting a tag removes that tag only.
	if err := c.Delete(ctx, repo+":v1"); err != nil {
		t.Fatalf("Delete tag: %v", err)
	}
	if _, err := c.Resolve(ctx, repo+":v1"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Resolve deleted tag: err = %v, want ErrNotFound", err)
	}
	if d, err := c.Resolve(ctx, repo+":stable"); err != nil || d.Digest != idx {
		t.Errorf("Resolve sibling tag after deleting a tag = %+v, %v; want %s", d, err, idx)
	}
	if ok, err := c.Exists(ctx, repo+"@"+idx); err != nil || !ok {
		t.Errorf("Exists index after deleting a tag = %v, %v; want true", ok, err)
	}
	if err := c.Delete(ctx, repo+":v1"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Delete missing tag: err = %v, want ErrNotFound", err)
	}

	// Deleting the digest removes the index.
	if err := c.Delete(ctx, repo+"@"+idx); err != nil {
		t.Fatalf("Delete digest: %v", err)
	}
	if _, err := c.Resolve(ctx, repo+"@"+idx); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Resolve deleted digest: err = %v, want ErrNotFound", err)
	}
	if ok, err := c.Exists(ctx, repo+"@"+idx); err != nil || ok {
		t.Errorf("Exists deleted digest = %v, %v; want false", ok, err)
	}
	// The children are still there.
	if ok, err := c.Exists(ctx, repo+"@"+amd); err != nil || !ok {
		t.Errorf("Exists child after deleting the index = %v, %v; want true", ok, err)
	}
}

func TestFlow(t *testing.T) {
	for _, oci := range []bool{false, true} {
		t.Run(fmt.Sprintf("oci=%v", oci), func(t *testing.T) {
			host := serve(t, memRegistry())
			flow(t, newClient(t, noKeychain), host, oci)
		})
	}
}

// TestFlowDistributionSemantics runs the flow against the in-memory registry made to behave
// like Docker Distribution 2.x: tags cannot be deleted, deleting a manifest removes its tags.
func TestFlowDistributionSemantics(t *testing.T) {
	host := serve(t, distributionLike(memRegistry(), true))
	flow(t, newClient(t, noKeychain), host, false)
}

// TestDeleteWithoutDeletes checks that a registry refusing deletes leaves the tag alone.
func TestDeleteWithoutDeletes(t *testing.T) {
	ctx := context.Background()
	host := serve(t, distributionLike(memRegistry(), false))
	ref := host + "/nodel/app:v1"
	want := push(t, ref, image(t, "linux/amd64", false))
	c := newClient(t, noKeychain)
	for _, del := range []string{ref, host + "/nodel/app@" + want} {
		err := c.Delete(ctx, del)
		if !errors.Is(err, registry.ErrUnsupported) || !strings.Contains(err.Error(), del) {
			t.Errorf("Delete(%s): err = %v, want ErrUnsupported naming the ref", del, err)
		}
	}
	if d, err := c.Resolve(ctx, ref); err != nil || d.Digest != want {
		t.Errorf("Resolve after refused deletes = %+v, %v; want %s", d, err, want)
	}
}

// integrationEnv returns the values of the named variables, through internal/testenv (skip,
// or fail under IMAGEBUILDER_REQUIRE_INTEGRATION).
func integrationEnv(t *testing.T, names ...string) []string {
	t.Helper()
	env := testenv.Require(t, names...)
	vals := make([]string, len(names))
	for i, n := range names {
		vals[i] = env[n]
	}
	return vals
}

// TestIntegrationRegistry runs the flow against the real registry of the test environment
// (Docker Distribution 2.8, deletes enabled).
func TestIntegrationRegistry(t *testing.T) {
	host := integrationEnv(t, "IMAGEBUILDER_TEST_REGISTRY")[0]
	c := newClient(t, noKeychain)
	if err := c.CheckPush(context.Background(), host+"/imagebuilder-test/check"); err != nil {
		t.Fatalf("CheckPush against %s: %v", host, err)
	}
	for _, oci := range []bool{false, true} {
		t.Run(fmt.Sprintf("oci=%v", oci), func(t *testing.T) {
			flow(t, c, host, oci)
		})
	}
}

// TestIntegrationAuthRegistry checks credentials against the test environment's htpasswd
// registry, and runs the flow there.
func TestIntegrationAuthRegistry(t *testing.T) {
	env := integrationEnv(t, "IMAGEBUILDER_TEST_AUTH_REGISTRY", "IMAGEBUILDER_TEST_AUTH_USER", "IMAGEBUILDER_TEST_AUTH_PASSWORD")
	host, user, password := env[0], env[1], env[2]
	ctx := context.Background()
	repo := host + "/imagebuilder-test/check"
	creds := registry.Credentials{Username: user, Password: password}
	wrong := registry.Credentials{Username: user, Password: password + "-wrong"}

	c := newClient(t, noKeychain, registry.WithCredentials(host, creds))
	if err := c.CheckPush(ctx, repo); err != nil {
		t.Fatalf("CheckPush with the right credentials: %v", err)
	}
	var errs []error
	for what, opts := range map[string][]registry.Option{
		"wrong":   {noKeychain, registry.WithCredentials(host, wrong)},
		"missing": {noKeychain},
	} {
		bad := newClient(t, opts...)
		err := bad.CheckPush(ctx, repo)
		if !errors.Is(err, registry.ErrUnauthorized) {
			t.Errorf("CheckPush with %s credentials: err = %v, want ErrUnauthorized", what, err)
		}
		_, rerr := bad.Resolve(ctx, host+"/base/busybox:latest")
		if !errors.Is(rerr, registry.ErrUnauthorized) {
			t.Errorf("Resolve with %s credentials: err = %v, want ErrUnauthorized", what, rerr)
		}
		errs = append(errs, err, rerr)
	}
	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), password) {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	flow(t, c, host, false, remote.WithAuth(&authn.Basic{Username: user, Password: password}))
}
