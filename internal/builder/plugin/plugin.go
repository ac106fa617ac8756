// Package plugin runs a builder.Builder in another process: a builder plugin, the program
// imagebuilder-builder-NAME, served over hashicorp/go-plugin's gRPC transport.
//
// A plugin's main calls [Serve] with its Builder; the host opens it with [Open] (or through
// builder.New with the endpoint plugin:NAME, once this package is linked: it registers itself
// with internal/builder). The contract is pluginpb/builder.proto:
//
//   - Info and Build are RPCs of the Builder service; Build streams BuildKit status events
//     (moby.buildkit.v1.StatusResponse, as client.SolveStatus.Marshal encodes them) and ends
//     with the built digest or a structured error (step, vertex, output, message) that the host
//     turns back into a *builder.Error.
//   - Credentials: for each build the host serves a Credentials service on go-plugin's broker;
//     the plugin asks it for a registry host's credentials and gets an answer only for the
//     hosts the request involves (the repository's and Request.Registries); any other host gets
//     an empty answer, and the host logs the attempt. A plugin never reads the Docker config.
//   - Build secrets (Request.Secrets) cross the wire: a plugin is trusted with them.
//   - Request.Publisher does not cross: a plugin pushes by itself, by digest only, with
//     credentials asked through the callback.
//   - The plugin's settings (plugin:NAME?KEY=VALUE&...) reach the plugin process in its
//     environment before it starts serving: [Query] reads them.
//   - Cancelling a build's context cancels the Build call; Close kills the plugin process.
//
// The package is internal for now (third parties cannot import it); it depends on
// internal/builder only, so that it can move to pkg/ with that package.
package plugin

import (
	"net/url"
	"os"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
)

const (
	// ProtocolVersion is the version of the contract; a plugin built for another version is
	// refused with an error naming both.
	ProtocolVersion = 1
	// MagicCookieKey and MagicCookieValue mark a process started as a builder plugin; a plugin
	// program run by hand says so and exits.
	MagicCookieKey   = "IMAGEBUILDER_BUILDER_PLUGIN"
	MagicCookieValue = "b6f1e5c2-imagebuilder-builder-plugin"
	// ProgramPrefix starts the name of every plugin program: imagebuilder-builder-NAME.
	ProgramPrefix = "imagebuilder-builder-"
	// EnvPath is a colon-separated list of directories searched for plugins first.
	EnvPath = "IMAGEBUILDER_PLUGIN_PATH"
	// EnvQuery carries the plugin's settings (the endpoint's query, URL-encoded) to the plugin.
	EnvQuery = "IMAGEBUILDER_PLUGIN_QUERY"

	// pluginKey names the one plugin a plugin program serves, in go-plugin's plugin set.
	pluginKey = "builder"
	// startTimeout bounds starting a plugin and its handshake.
	startTimeout = 30 * time.Second
)

func handshake(version uint) goplugin.HandshakeConfig {
	return goplugin.HandshakeConfig{
		ProtocolVersion:  version,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// Query returns the settings the host started this plugin with (plugin:NAME?KEY=VALUE&...):
// a plugin's main reads them before it opens its Builder.
func Query() url.Values {
	q, err := url.ParseQuery(os.Getenv(EnvQuery))
	if err != nil {
		return url.Values{}
	}
	return q
}
