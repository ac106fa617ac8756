// Command imagebuilder-builder-buildah is the buildah builder plugin: daemonless builds with
// Debian's buildah, selected with --builder plugin:buildah or builder.endpoint:
// plugin:buildah[?root=DIR&driver=vfs|overlay&runroot=DIR&buildah=PATH] (see
// internal/builder/buildah). imagebuilder starts it; run by hand it says it is a plugin.
package main

import (
	"fmt"
	"os"

	"github.com/imagebuilder/imagebuilder/internal/builder/buildah"
	"github.com/imagebuilder/imagebuilder/internal/builder/plugin"
)

func main() {
	cfg, err := buildah.ConfigFromQuery(plugin.Query())
	if err == nil {
		var b *buildah.Builder
		if b, err = buildah.New(cfg); err == nil {
			plugin.Serve(b)
			return
		}
	}
	// imagebuilder quotes the last stderr lines of a plugin that does not start.
	fmt.Fprintf(os.Stderr, "imagebuilder-builder-buildah: %v\n", err)
	os.Exit(1)
}
