package pipeline

import (
	"slices"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/dockerfile"
	"github.com/imagebuilder/imagebuilder/internal/params"
)

func TestBaseRegistries(t *testing.T) {
	f, err := dockerfile.Parse([]byte(`ARG REG=127.0.0.1:5000
FROM busybox AS a
FROM ${REG}/base/alt AS b
COPY --from=ghcr.io/x/y:1 /a /b
COPY --from=a /a /c
FROM docker.io/library/debian
FROM scratch
`), map[string]string{"REG": "127.0.0.1:5001"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"index.docker.io", "127.0.0.1:5001", "ghcr.io"}
	if got := baseRegistries(f); !slices.Equal(got, want) {
		t.Errorf("baseRegistries = %v, want %v", got, want)
	}
}

// TestRequestNamesBaseRegistries: the builder is told the registries of the Dockerfile's base
// images, after injection, so that a plugin gets credentials for those (and the repository's)
// only.
func TestRequestNamesBaseRegistries(t *testing.T) {
	f := newFixture(t)
	p := f.params(params.Image{Image: "plain", Tag: "v1", Target: "ok"}, params.Image{Image: "injected", Tag: "v1", Target: "ok", Base: "127.0.0.1:5999/other/base:1"})
	if _, err := f.run(t, p, false); err != nil {
		t.Fatal(err)
	}
	f.bld.mu.Lock()
	defer f.bld.mu.Unlock()
	t.Logf("registries: %q", f.bld.registries)
	if len(f.bld.registries) != 2 {
		t.Fatalf("%d builds, want 2", len(f.bld.registries))
	}
	got := map[string]bool{}
	for _, r := range f.bld.registries {
		got[strings.Join(r, ",")] = true
	}
	// The injected base replaces one of the Dockerfile's two FROM busybox.
	if !got["index.docker.io"] || !got["127.0.0.1:5999,index.docker.io"] {
		t.Errorf("the requests named the registries %q, want index.docker.io for the plain image and 127.0.0.1:5999 with it for the injected one", f.bld.registries)
	}
}
