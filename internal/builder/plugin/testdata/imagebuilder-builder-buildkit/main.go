// Command imagebuilder-builder-buildkit is a test plugin: the in-process buildkit driver served
// as a builder plugin, so that the conformance suite run through it proves that the plugin
// contract carries everything a build needs. Its one setting is the buildkitd address:
// plugin:buildkit?addr=unix:///run/buildkit/buildkitd.sock.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/builder/plugin"
)

func main() {
	addr := plugin.Query().Get("addr")
	ep, err := builder.ParseEndpoint(addr)
	if err == nil && ep.Kind != builder.KindBuildKit {
		err = fmt.Errorf("addr %q is not a BuildKit address", addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b, err := builder.New(context.Background(), addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plugin.Serve(b)
}
