package builder

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
)

// PluginDriver runs builder plugins (endpoint plugin:NAME). internal/builder/plugin provides it
// and registers it when imported, so that this package never imports the plugin transport.
type PluginDriver interface {
	// Find returns the path of the plugin program for name, or an error naming where it looked.
	Find(name string) (string, error)
	// Open starts the plugin and returns it as a Builder; query holds its settings.
	Open(ctx context.Context, name string, query url.Values) (Builder, error)
}

var (
	pluginMu     sync.Mutex
	pluginDriver PluginDriver
)

// RegisterPluginDriver makes d the driver of plugin:NAME endpoints.
func RegisterPluginDriver(d PluginDriver) {
	pluginMu.Lock()
	defer pluginMu.Unlock()
	pluginDriver = d
}

func registeredPluginDriver() (PluginDriver, error) {
	pluginMu.Lock()
	defer pluginMu.Unlock()
	if pluginDriver == nil {
		return nil, errors.New("builder plugins are not available in this program (internal/builder/plugin is not linked)")
	}
	return pluginDriver, nil
}

// RegistryHost is a registry host as builders ask credentials for it: lower case, Docker Hub
// as "index.docker.io".
func RegistryHost(host string) string { return normalizeHost(host) }

// RegistryHosts returns the registry hosts a request involves: the repository's and those of
// Registries, normalized by [RegistryHost], without duplicates. A builder asks credentials for
// these hosts only.
func (r Request) RegistryHosts() []string {
	var out []string
	add := func(h string) {
		if h = normalizeHost(h); h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if repo, err := name.NewRepository(r.Repository); err == nil {
		add(repo.RegistryStr())
	}
	for _, h := range r.Registries {
		add(h)
	}
	return out
}
