package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

func TestResolveNotFound(t *testing.T) {
	ctx := context.Background()
	host := serve(t, memRegistry())
	digest := push(t, host+"/nf/app:v1", image(t, "linux/amd64", false))
	c := newClient(t, noKeychain)
	for _, ref := range []string{
		host + "/nf/app:missing",
		host + "/nf/missing:v1",
		host + "/nf/app@sha256:" + strings.Repeat("0", 64),
	} {
		if _, err := c.Resolve(ctx, ref); !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), ref) {
			t.Errorf("Resolve(%s): err = %v, want ErrNotFound naming the ref", ref, err)
		}
		if ok, err := c.Exists(ctx, ref); ok || err != nil {
			t.Errorf("Exists(%s) = %v, %v; want false, nil", ref, ok, err)
		}
	}
	// Docker Hub style short names normalize; the digest of an existing ref resolves.
	if d, err := c.Resolve(ctx, host+"/nf/app:v1"); err != nil || d.Digest != digest || d.Repository != host+"/nf/app" {
		t.Errorf("Resolve = %+v, %v", d, err)
	}
	if _, err := c.Resolve(ctx, "NOT A REF"); err == nil || errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Resolve(bad ref): err = %v, want a parse error", err)
	}

	// A server that is not a registry answers 404 on /v2/: an error, but not "not found".
	notRegistry := serve(t, http.NotFoundHandler())
	if ok, err := c.Exists(ctx, notRegistry+"/nf/app:v1"); err == nil || errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Exists on a non-registry = %v, %v; want an error other than ErrNotFound", ok, err)
	}
}

// TestResolveHeadFallback checks the GET fallback for registries whose HEAD answer lacks
// Docker-Content-Digest.
func TestResolveHeadFallback(t *testing.T) {
	h := memRegistry()
	var gets atomic.Int32
	host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			h.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodGet {
			gets.Add(1)
		}
		if r.Method != http.MethodHead {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			if k != "Docker-Content-Digest" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
	}))
	want := push(t, host+"/hf/app:v1", image(t, "linux/amd64", false))
	gets.Store(0)
	d, err := newClient(t, noKeychain).Resolve(context.Background(), host+"/hf/app:v1")
	if err != nil || d.Digest != want {
		t.Fatalf("Resolve = %+v, %v; want %s", d, err, want)
	}
	if gets.Load() != 1 {
		t.Errorf("%d GETs, want 1 fallback", gets.Load())
	}
}

func TestAssembleIndexErrors(t *testing.T) {
	ctx := context.Background()
	host := serve(t, memRegistry())
	repo := host + "/idx/app"
	amd := push(t, repo+":amd64", image(t, "linux/amd64", false))
	amd2 := push(t, repo+":amd64-2", image(t, "linux/amd64", false))
	armOCI := push(t, repo+":arm64-oci", image(t, "linux/arm64", true))
	noPlatform := push(t, repo+":none", image(t, "", false))
	otherRepo := push(t, host+"/idx/other:v1", image(t, "linux/arm64", false))
	c := newClient(t, noKeychain)

	tests := []struct {
		name      string
		repo      string
		manifests []string
		wantErr   string
		wantIs    error
	}{
		{"no manifests", repo, nil, "no manifests", nil},
		{"duplicate platform", repo, []string{amd, amd2}, "platform linux/amd64 given twice", nil},
		{"mixed media types", repo, []string{amd, armOCI}, "mixed manifest media types", nil},
		{"no platform", repo, []string{noPlatform}, "names no os and architecture", nil},
		{"other repository", repo, []string{amd, host + "/idx/other@" + otherRepo}, "is not in repository", nil},
		{"tag instead of digest", repo, []string{repo + ":amd64"}, "not a digest reference", nil},
		{"missing manifest", repo, []string{"sha256:" + strings.Repeat("1", 64)}, "reading", registry.ErrNotFound},
		{"bad repository", "Bad Repo", []string{amd}, "parsing repository", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := c.AssembleIndex(ctx, tt.repo, tt.manifests)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.repo) {
				t.Fatalf("AssembleIndex = %s, %v; want an error naming %q and containing %q", d, err, tt.repo, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("AssembleIndex: err = %v, want %v", err, tt.wantIs)
			}
		})
	}
}

// TestAssembleIndexFromIndexes assembles single-platform BuildKit-style results (an OCI
// index holding the image and its attestation manifest) and a plain OCI manifest.
func TestAssembleIndexFromIndexes(t *testing.T) {
	ctx := context.Background()
	host := serve(t, memRegistry())
	repo := host + "/idx/bk"

	amdImg := image(t, "linux/amd64", true)
	amdDigest, err := amdImg.Digest()
	if err != nil {
		t.Fatal(err)
	}
	att := image(t, "", true)
	single := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amdImg, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
			Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amdDigest.String()},
		}},
	), types.OCIImageIndex)
	amd := testenv.PushIndex(t, repo+":amd64", single)
	arm := push(t, repo+":arm64", image(t, "linux/arm64/v8", true))

	c := newClient(t, noKeychain)
	idx, err := c.AssembleIndex(ctx, repo, []string{amd, arm})
	if err != nil {
		t.Fatalf("AssembleIndex: %v", err)
	}
	ps, err := c.Platforms(ctx, repo+"@"+idx)
	if err != nil || !slices.Equal(ps, []string{"linux/amd64", "linux/arm64/v8"}) {
		t.Errorf("Platforms = %v, %v; want [linux/amd64 linux/arm64/v8]", ps, err)
	}
	im := indexManifest(t, repo+"@"+idx)
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 3 {
		t.Fatalf("index = %+v, want an OCI index of 3 entries (image, attestation, image)", im)
	}
	if im.Manifests[0].Digest != amdDigest || im.Manifests[1].Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
		t.Errorf("index entries = %+v, want the amd64 image then its attestation", im.Manifests)
	}
}

// TestPlatformsWithoutIndexPlatforms reads the platforms from the configs when the index
// entries have none.
func TestPlatformsWithoutIndexPlatforms(t *testing.T) {
	host := serve(t, memRegistry())
	repo := host + "/idx/bare"
	var entries []v1.Descriptor
	for _, p := range []string{"linux/s390x", "linux/arm/v7"} {
		img := image(t, p, false)
		push(t, repo+":x", img)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		size, err := img.Size()
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, v1.Descriptor{MediaType: types.DockerManifestSchema2, Digest: d, Size: size})
	}
	raw, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.DockerManifestList, Manifests: entries})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(repo+":list", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(ref, rawList(raw)); err != nil {
		t.Fatal(err)
	}
	ps, err := newClient(t, noKeychain).Platforms(context.Background(), repo+":list")
	if err != nil || !slices.Equal(ps, []string{"linux/s390x", "linux/arm/v7"}) {
		t.Errorf("Platforms = %v, %v; want [linux/s390x linux/arm/v7]", ps, err)
	}
}

type rawList []byte

func (r rawList) RawManifest() ([]byte, error)        { return r, nil }
func (r rawList) MediaType() (types.MediaType, error) { return types.DockerManifestList, nil }

func indexManifest(t *testing.T, ref string) *v1.IndexManifest {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func TestTagErrors(t *testing.T) {
	ctx := context.Background()
	host := serve(t, memRegistry())
	repo := host + "/tag/app"
	digest := push(t, repo+":v1", image(t, "linux/amd64", false))
	c := newClient(t, noKeychain)

	tests := []struct {
		name    string
		src     string
		dst     []string
		wantErr string
		wantIs  error
	}{
		{"no destination", repo + "@" + digest, nil, "no destination tags", nil},
		{"source is a tag", repo + ":v1", []string{repo + ":v2"}, "not a digest reference", nil},
		{"destination is a digest", repo + "@" + digest, []string{repo + ":v2", repo + "@" + digest}, "not a tag reference", nil},
		{"bad destination", repo + "@" + digest, []string{repo + ":v2", "Bad Ref"}, "parsing reference", nil},
		{"missing source", repo + "@sha256:" + strings.Repeat("2", 64), []string{repo + ":v2"}, "fetching the source manifest", registry.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Tag(ctx, tt.src, tt.dst...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.src) {
				t.Fatalf("Tag: err = %v; want one naming %q and containing %q", err, tt.src, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Tag: err = %v, want %v", err, tt.wantIs)
			}
			// References are checked before anything is written.
			if ok, err := c.Exists(ctx, repo+":v2"); ok || err != nil {
				t.Errorf("Exists(:v2) after a failed Tag = %v, %v; want false", ok, err)
			}
		})
	}
}

// TestTagAcrossRegistries copies an index to another registry that wants credentials.
func TestTagAcrossRegistries(t *testing.T) {
	ctx := context.Background()
	src := serve(t, memRegistry())
	dst := serve(t, basicAuth(memRegistry(), canaryPassword, false))
	repo := src + "/x/app"
	amd := push(t, repo+":amd64", image(t, "linux/amd64", false))
	arm := push(t, repo+":arm64", image(t, "linux/arm64", false))

	c := newClient(t, noKeychain, registry.WithCredentials(dst, good()))
	idx, err := c.AssembleIndex(ctx, repo, []string{amd, arm})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Tag(ctx, repo+"@"+idx, dst+"/y/app:v1", dst+"/y/app:v2"); err != nil {
		t.Fatalf("Tag across registries: %v", err)
	}
	for _, ref := range []string{dst + "/y/app:v1", dst + "/y/app:v2"} {
		if d, err := c.Resolve(ctx, ref); err != nil || d.Digest != idx {
			t.Errorf("Resolve(%s) = %+v, %v; want %s", ref, d, err, idx)
		}
	}
	if ps, err := c.Platforms(ctx, dst+"/y/app:v1"); err != nil || len(ps) != 2 {
		t.Errorf("Platforms of the copy = %v, %v", ps, err)
	}
	// Without credentials for the destination the copy is refused.
	err = newClient(t, noKeychain).Tag(ctx, repo+"@"+idx, dst+"/y/app:v3")
	if !errors.Is(err, registry.ErrUnauthorized) || !strings.Contains(err.Error(), dst+"/y/app:v3") {
		t.Errorf("Tag without credentials: err = %v, want ErrUnauthorized naming the destination", err)
	}
}

// TestDockerHubReferences resolves Docker Hub's short and long names against a local TLS
// registry standing in for index.docker.io, with credentials given for "docker.io".
func TestDockerHubReferences(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewTLSServer(basicAuth(memRegistry(), canaryPassword, false))
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.InsecureSkipVerify = true // the test certificate is not for index.docker.io
	addr := strings.TrimPrefix(srv.URL, "https://")
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	r, err := name.ParseReference("alpine:3")
	if err != nil {
		t.Fatal(err)
	}
	img := image(t, "linux/amd64", false)
	if err := remote.Write(r, img, remote.WithTransport(tr), setupAuth); err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	c := newClient(t, noKeychain, registry.WithTransport(tr), registry.WithCredentials("docker.io", good()))
	for _, ref := range []string{"alpine:3", "library/alpine:3", "docker.io/library/alpine:3", "index.docker.io/library/alpine:3", "docker.io/alpine@" + want.String()} {
		d, err := c.Resolve(ctx, ref)
		if err != nil || d.Digest != want.String() || d.Repository != "index.docker.io/library/alpine" {
			t.Errorf("Resolve(%q) = %+v, %v; want %s in index.docker.io/library/alpine", ref, d, err, want)
		}
	}
}
