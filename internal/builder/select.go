package builder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/containerd/errdefs"
	"github.com/docker/cli/cli/config"
	dcontext "github.com/docker/cli/cli/context"
	"github.com/docker/cli/cli/context/docker"
	"github.com/docker/cli/cli/context/store"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	dockerclient "github.com/moby/moby/client"
)

// Environment variables read when the endpoint is not given explicitly. BUILDKIT_HOST is read as
// buildctl and buildx's remote driver read it; the others as the docker CLI reads them.
const (
	EnvBuildKitHost  = "BUILDKIT_HOST"
	EnvDockerHost    = dockerclient.EnvOverrideHost // DOCKER_HOST
	EnvDockerContext = "DOCKER_CONTEXT"
	EnvDockerConfig  = config.EnvOverrideConfigDir // DOCKER_CONFIG
	envDockerCert    = dockerclient.EnvOverrideCertPath
	envDockerVerify  = dockerclient.EnvTLSVerify
)

// defaultContext is the Docker context that stands for DOCKER_HOST or the default socket.
const defaultContext = "default"

// Origins of an endpoint choice, as [Selection.Origin] reports them.
const (
	OriginExplicit     = "explicit"       // the caller named the address (--builder, builder.endpoint)
	OriginBuildKitHost = EnvBuildKitHost  // BUILDKIT_HOST
	OriginDockerHost   = EnvDockerHost    // DOCKER_HOST
	OriginDefault      = "default socket" // nothing configured: the platform's Docker socket
	// A Docker context reports `docker context "NAME" (HOW)`, HOW being --context,
	// DOCKER_CONTEXT or `docker context use` (the current context of the Docker config).
)

// Selection names the endpoint a builder was opened on, and why. It is known without asking
// the endpoint anything.
type Selection struct {
	// Kind is docker, buildkit or plugin.
	Kind Kind `json:"kind"`
	// Endpoint is the address, without credentials (docker+unix:///var/run/docker.sock,
	// docker+ssh://host, unix:///run/buildkit/buildkitd.sock, ...).
	Endpoint string `json:"endpoint"`
	// Origin says where the address came from (see OriginExplicit and the others).
	Origin string `json:"origin"`
}

// selected is a resolved endpoint: the address to connect to, and for a Docker daemon how.
type selected struct {
	Selection
	ep     Endpoint         // the kind and the address; the address is always set
	docker *docker.Endpoint // KindDocker: host and TLS data (of a context, or of the environment)
}

// selectEndpoint decides which endpoint to use, in this order:
//
//  1. an explicit address (the caller's: --builder, else the params' builder.endpoint);
//  2. a Docker context named by WithDockerContext (--context), which means the Docker daemon;
//  3. BUILDKIT_HOST, which means BuildKit (unless the endpoint says "docker");
//  4. the Docker daemon of DOCKER_HOST, else of the Docker context (DOCKER_CONTEXT, else the
//     Docker config's current context), else of the default socket.
//
// It reads the environment and, for a Docker context, the Docker config and its context store;
// it does not contact the endpoint.
func selectEndpoint(ep Endpoint, o options) (selected, error) {
	switch {
	case ep.Kind == KindPlugin:
		if o.dockerContext != "" {
			return selected{}, fmt.Errorf("docker context %q given with the builder plugin %s: a Docker context names a Docker daemon", o.dockerContext, ep)
		}
		d, err := registeredPluginDriver()
		if err != nil {
			return selected{}, err
		}
		if _, err := d.Find(ep.Address); err != nil {
			return selected{}, err
		}
		return selected{Selection: Selection{Kind: KindPlugin, Endpoint: ep.String(), Origin: OriginExplicit}, ep: ep}, nil
	case ep.Kind == KindBuildKit:
		if o.dockerContext != "" {
			return selected{}, fmt.Errorf("docker context %q given with the BuildKit endpoint %s: a Docker context names a Docker daemon", o.dockerContext, ep)
		}
		return selected{Selection: Selection{Kind: KindBuildKit, Endpoint: ep.String(), Origin: OriginExplicit}, ep: ep}, nil
	case ep.Kind == KindDocker && ep.Address != "":
		if o.dockerContext != "" {
			return selected{}, fmt.Errorf("docker context %q given with the Docker address %s: give one or the other", o.dockerContext, ep)
		}
		return dockerSelected(&docker.Endpoint{EndpointMeta: docker.EndpointMeta{Host: ep.Address}}, OriginExplicit), nil
	case ep.Kind == KindAuto && o.dockerContext == "":
		if bk := o.getenv(EnvBuildKitHost); bk != "" {
			bep, err := ParseEndpoint(bk)
			if err != nil {
				return selected{}, fmt.Errorf("%s: %w", EnvBuildKitHost, err)
			}
			if bep.Kind != KindBuildKit {
				return selected{}, fmt.Errorf("%s %q is not a BuildKit address (use DOCKER_HOST or --builder for a Docker daemon)", EnvBuildKitHost, bep)
			}
			return selected{Selection: Selection{Kind: KindBuildKit, Endpoint: bep.String(), Origin: OriginBuildKitHost}, ep: bep}, nil
		}
	}
	return selectDocker(o)
}

// selectDocker resolves the Docker daemon the way the docker CLI does: --context, else
// DOCKER_HOST, else DOCKER_CONTEXT, else the current context of the Docker config, else the
// default socket. Contexts are read through docker/cli's context store, so their TLS data and
// ssh:// hosts (docker/cli's connection helper) work as they do for docker.
func selectDocker(o options) (selected, error) {
	name, how := o.dockerContext, "--context"
	if name == "" {
		switch {
		case o.getenv(EnvDockerHost) != "":
			name = defaultContext
		case o.getenv(EnvDockerContext) != "":
			name, how = o.getenv(EnvDockerContext), EnvDockerContext
		default:
			cfg, err := config.Load(dockerConfigDir(o))
			if err != nil {
				return selected{}, fmt.Errorf("reading the Docker config: %w", err)
			}
			name, how = cfg.CurrentContext, "docker context use"
		}
	}
	if name == "" || name == defaultContext {
		host, origin := o.getenv(EnvDockerHost), OriginDockerHost
		if host == "" {
			host, origin = dockerclient.DefaultDockerHost, OriginDefault
		}
		if err := checkDockerAddress(host); err != nil {
			return selected{}, fmt.Errorf("%s %q: %w", EnvDockerHost, redact.URL(host), err)
		}
		dep, err := envTLS(host, o)
		if err != nil {
			return selected{}, err
		}
		return dockerSelected(dep, origin), nil
	}
	origin := fmt.Sprintf("docker context %q (%s)", name, how)
	s := contextStore(o)
	meta, err := s.GetMetadata(name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return selected{}, fmt.Errorf("%s: no such context in %s", origin, dockerConfigDir(o))
		}
		return selected{}, fmt.Errorf("%s: %w", origin, err)
	}
	em, err := docker.EndpointFromContext(meta)
	if err != nil {
		return selected{}, fmt.Errorf("%s: %w", origin, err)
	}
	if err := checkDockerAddress(em.Host); err != nil {
		return selected{}, fmt.Errorf("%s: host %q: %w", origin, redact.URL(em.Host), err)
	}
	dep, err := docker.WithTLSData(s, name, em)
	if err != nil {
		return selected{}, fmt.Errorf("%s: %w", origin, err)
	}
	return dockerSelected(&dep, origin), nil
}

func dockerSelected(dep *docker.Endpoint, origin string) selected {
	ep := Endpoint{Kind: KindDocker, Address: dep.Host}
	return selected{Selection: Selection{Kind: KindDocker, Endpoint: ep.String(), Origin: origin}, ep: ep, docker: dep}
}

// envTLS is the default context's endpoint: TLS from DOCKER_CERT_PATH (ca.pem, cert.pem,
// key.pem) and DOCKER_TLS_VERIFY, as the Docker client reads them.
func envTLS(host string, o options) (*docker.Endpoint, error) {
	dep := &docker.Endpoint{EndpointMeta: docker.EndpointMeta{Host: host}}
	dir := o.getenv(envDockerCert)
	if dir == "" {
		return dep, nil
	}
	var files [3]string
	for i, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		if p := filepath.Join(dir, f); fileExists(p) {
			files[i] = p
		}
	}
	data, err := dcontext.TLSDataFromFiles(files[0], files[1], files[2])
	if err != nil {
		return nil, fmt.Errorf("reading the TLS files of %s: %w", envDockerCert, err)
	}
	dep.TLSData = data
	dep.SkipTLSVerify = o.getenv(envDockerVerify) == ""
	return dep, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// dockerConfigDir is DOCKER_CONFIG, else ~/.docker.
func dockerConfigDir(o options) string {
	if d := o.getenv(EnvDockerConfig); d != "" {
		return d
	}
	return config.Dir()
}

func contextStore(o options) *store.ContextStore {
	cfg := store.NewConfig(nil, store.EndpointTypeGetter(docker.DockerEndpoint, func() any { return &docker.EndpointMeta{} }))
	return store.New(filepath.Join(dockerConfigDir(o), "contexts"), cfg)
}

// DockerContexts lists the names of the Docker contexts (the context store of DOCKER_CONFIG or
// ~/.docker), "default" first. getenv may be nil for os.Getenv.
func DockerContexts(getenv func(string) string) ([]string, error) {
	o := options{getenv: os.Getenv}
	if getenv != nil {
		o.getenv = getenv
	}
	names, err := store.Names(contextStore(o))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listing Docker contexts: %w", err)
	}
	sort.Strings(names)
	return append([]string{defaultContext}, names...), nil
}
