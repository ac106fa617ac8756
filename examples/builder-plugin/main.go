// Command imagebuilder-builder-example is the skeleton of a builder plugin: build it as
// imagebuilder-builder-NAME, put it in IMAGEBUILDER_PLUGIN_PATH, next to imagebuilder or on
// PATH, and select it with --builder plugin:NAME (or builder.endpoint: plugin:NAME?KEY=VALUE).
package main

import (
	"context"
	"errors"
	"runtime"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/builder/plugin"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// example is the engine. Settings come from the endpoint: plugin:example?KEY=VALUE.
type example struct{ root string }

func (e *example) Selection() builder.Selection { return builder.Selection{Kind: "example"} }
func (e *example) Close() error                 { return nil } // release what the engine holds

func (e *example) Info(context.Context) (builder.Info, error) {
	native := runtime.GOOS + "/" + runtime.GOARCH
	return builder.Info{Kind: "example", Endpoint: "example:" + e.root, Version: "0.1.0",
		NativePlatform: native, Platforms: []string{native}}, nil
}

// Build builds req.Dockerfile in req.ContextDir for req.Platforms (build args, target, labels,
// secrets, .dockerignore) and pushes the result to req.Repository by digest only: no tag.
func (e *example) Build(ctx context.Context, req builder.Request) (*builder.Built, error) {
	// Progress is BuildKit's: one vertex per step, its logs, its statuses.
	now, step := time.Now(), digest.FromString("example")
	req.Progress(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: step, Name: "[example] build", Started: &now}}})
	// Credentials: asked of imagebuilder, answered for the hosts this build involves only.
	for _, host := range req.RegistryHosts() {
		if _, _, err := req.Credentials(host); err != nil {
			return nil, &builder.Error{Step: builder.StepBuild, Err: err}
		}
	}
	// ... build and push here, honouring ctx (cancellation), then return the digest the
	// registry serves. A failing step is reported as builder.StepBuild with its output.
	return nil, &builder.Error{Step: builder.StepBuild, Vertex: "[example] build",
		Err: errors.New("the example plugin builds nothing: fill in Build")}
}

func main() {
	q := plugin.Query() // the endpoint's settings
	plugin.Serve(&example{root: q.Get("root")})
}
