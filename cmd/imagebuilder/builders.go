package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/builder/plugin"
	"github.com/imagebuilder/imagebuilder/internal/cli"
	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// pluginInfoTimeout bounds starting one plugin and asking its Info.
const pluginInfoTimeout = 30 * time.Second

// buildersList is what `imagebuilder builders` prints.
type buildersList struct {
	// Builtin are the in-process drivers.
	Builtin []builtinDriver `json:"builtin"`
	// Default is the engine chosen when neither --builder nor builder.endpoint names one.
	Default *builder.Selection `json:"default,omitempty"`
	// Plugins are the plugin programs found, with what they say of themselves.
	Plugins []pluginEntry `json:"plugins"`
	// SearchPath lists where plugins are looked for, in order.
	SearchPath []string `json:"search_path"`
}

type builtinDriver struct {
	Kind       builder.Kind `json:"kind"`
	SelectedBy string       `json:"selected_by"`
}

type pluginEntry struct {
	Name     string        `json:"name"`
	Path     string        `json:"path"`
	Endpoint string        `json:"endpoint"`
	Info     *builder.Info `json:"info,omitempty"`
	Error    string        `json:"error,omitempty"`
}

var builtinDrivers = []builtinDriver{
	{builder.KindBuildKit, "a BuildKit address (unix://, tcp://, ssh://, docker-container://, podman-container://, kube-pod://) as --builder or builder.endpoint, else BUILDKIT_HOST"},
	{builder.KindDocker, "docker or docker+ADDRESS as --builder or builder.endpoint, or --context NAME; else, without BUILDKIT_HOST, DOCKER_HOST, the Docker context or the default socket"},
}

func newBuildersCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "builders [--output json|yaml]",
		Short: "List the build engines: the built-in drivers and the builder plugins found",
		Long: `List the built-in drivers (buildkit, docker) and how each is selected, the engine chosen
when nothing names one, and the builder plugins found (programs imagebuilder-builder-NAME in
` + plugin.EnvPath + `, next to imagebuilder, then on PATH), each started once to report its
Info (kind, version, platforms). A plugin is selected by --builder plugin:NAME or builder.endpoint.`,
		Example: `  imagebuilder builders
  IMAGEBUILDER_PLUGIN_PATH=/opt/imagebuilder/plugins imagebuilder builders --output yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list := buildersList{Builtin: builtinDrivers, Plugins: []pluginEntry{}, SearchPath: plugin.SearchPath()}
			if sel, err := builder.Select(""); err == nil {
				list.Default = &sel
			}
			for _, f := range plugin.Discover() {
				list.Plugins = append(list.Plugins, describePlugin(cmd.Context(), f))
			}
			return printResult(cmd.OutOrStdout(), output, redact.New(), list)
		},
	}
	cli.OutputFlag(cmd, &output, "output format: json or yaml")
	return cmd
}

// describePlugin starts a plugin, asks its Info and closes it.
func describePlugin(ctx context.Context, f plugin.Found) pluginEntry {
	e := pluginEntry{Name: f.Name, Path: f.Path, Endpoint: "plugin:" + f.Name}
	ctx, cancel := context.WithTimeout(ctx, pluginInfoTimeout)
	defer cancel()
	b, err := plugin.Open(ctx, f.Name, nil)
	if err != nil {
		e.Error = err.Error()
		return e
	}
	defer b.Close()
	info, err := b.Info(ctx)
	if err != nil {
		e.Error = err.Error()
		return e
	}
	e.Info = &info
	return e
}
