package testenv

import (
	"testing"

	"github.com/docker/cli/cli/context/docker"
	"github.com/docker/cli/cli/context/store"
)

// DockerContext saves a Docker context named name whose Docker endpoint is host in the context
// store of the Docker config directory configDir, through docker/cli's own store (what `docker
// context create NAME --docker host=HOST` writes).
func DockerContext(t testing.TB, configDir, name, host string) {
	t.Helper()
	cfg := store.NewConfig(nil, store.EndpointTypeGetter(docker.DockerEndpoint, func() any { return &docker.EndpointMeta{} }))
	s := store.New(configDir+"/contexts", cfg)
	err := s.CreateOrUpdate(store.Metadata{
		Name:      name,
		Endpoints: map[string]any{docker.DockerEndpoint: docker.EndpointMeta{Host: host}},
	})
	if err != nil {
		t.Fatalf("creating Docker context %s: %v", name, err)
	}
}
