package pipeline

import (
	"slices"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/imagebuilder/imagebuilder/internal/dockerfile"
	// Builder plugins (builder.endpoint plugin:NAME) open through builder.New once linked.
	_ "github.com/imagebuilder/imagebuilder/internal/builder/plugin"
)

// baseRegistries are the registry hosts of a Dockerfile's external images (Docker Hub as
// index.docker.io): with the repository's, the hosts a builder plugin gets credentials for.
func baseRegistries(f *dockerfile.File) []string {
	var out []string
	for _, ref := range f.ExternalImages() {
		r, err := name.ParseReference(ref)
		if err != nil {
			continue
		}
		if h := r.Context().RegistryStr(); !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}
