package builder

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/moby/buildkit/client/connhelper"
	// Connection helpers register their schemes with connhelper.
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer"
	_ "github.com/moby/buildkit/client/connhelper/kubepod"
	_ "github.com/moby/buildkit/client/connhelper/podmancontainer"
	_ "github.com/moby/buildkit/client/connhelper/ssh"
)

// Kind names the driver behind an endpoint.
type Kind string

const (
	// KindAuto picks the Docker daemon when one answers, else BUILDKIT_HOST.
	KindAuto Kind = ""
	// KindDocker is a Docker daemon's embedded BuildKit, reached through the Engine API.
	KindDocker Kind = "docker"
	// KindBuildKit is a buildkitd reached directly.
	KindBuildKit Kind = "buildkit"
)

// dockerPrefix marks a Docker daemon address: "docker+unix:///var/run/docker.sock".
const dockerPrefix = "docker+"

// Endpoint is a parsed builder endpoint.
type Endpoint struct {
	Kind Kind
	// Address is the daemon address: for KindBuildKit a BuildKit address (unix://, tcp://,
	// docker-container://, kube-pod://, podman-container://, ssh://); for KindDocker a
	// DOCKER_HOST-style address (unix://, tcp://), or "" for the environment
	// (DOCKER_HOST, or the default socket).
	Address string
}

// ParseEndpoint parses an endpoint string:
//
//	""                              auto: the Docker daemon when one answers, else BUILDKIT_HOST
//	"docker"                        the Docker daemon at DOCKER_HOST (or the default socket)
//	"docker+unix:///path.sock"      the Docker daemon at that address (also docker+tcp://host:port)
//	"unix:///path.sock"             a buildkitd; also tcp://, docker-container://, kube-pod://,
//	                                podman-container://, ssh:// (BuildKit's connection helpers)
func ParseEndpoint(s string) (Endpoint, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Endpoint{Kind: KindAuto}, nil
	case s == string(KindDocker):
		return Endpoint{Kind: KindDocker}, nil
	case strings.HasPrefix(s, dockerPrefix):
		addr := strings.TrimPrefix(s, dockerPrefix)
		u, err := parseAddress(addr)
		if err != nil {
			return Endpoint{}, fmt.Errorf("parsing endpoint %q: %w", redactAddress(s), err)
		}
		switch u.Scheme {
		case "unix", "tcp", "npipe":
		default:
			return Endpoint{}, fmt.Errorf("parsing endpoint %q: unsupported Docker daemon scheme %q (want unix, tcp or npipe)", redactAddress(s), u.Scheme)
		}
		return Endpoint{Kind: KindDocker, Address: addr}, nil
	}
	u, err := parseAddress(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("parsing endpoint %q: %w", redactAddress(s), err)
	}
	switch u.Scheme {
	case "unix", "tcp":
	default:
		ch, err := connhelper.GetConnectionHelper(s)
		if err != nil {
			return Endpoint{}, fmt.Errorf("parsing endpoint %q: %w", redactAddress(s), err)
		}
		if ch == nil {
			return Endpoint{}, fmt.Errorf("parsing endpoint %q: unsupported scheme %q (want docker, docker+unix://, unix://, tcp://, docker-container://, kube-pod://, podman-container:// or ssh://)", redactAddress(s), u.Scheme)
		}
	}
	return Endpoint{Kind: KindBuildKit, Address: s}, nil
}

func parseAddress(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error repeats the input, which may hold credentials.
		return nil, fmt.Errorf("not a URL")
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("missing scheme (e.g. unix:// or tcp://)")
	}
	switch u.Scheme {
	case "unix", "npipe":
		if u.Path == "" && u.Opaque == "" && u.Host == "" {
			return nil, fmt.Errorf("missing socket path")
		}
	case "tcp":
		if u.Host == "" {
			return nil, fmt.Errorf("missing host")
		}
	}
	return u, nil
}

// String returns the endpoint as the user wrote it, without any user:password part.
func (e Endpoint) String() string {
	switch e.Kind {
	case KindAuto:
		return "auto"
	case KindDocker:
		if e.Address == "" {
			return string(KindDocker)
		}
		return dockerPrefix + redactAddress(e.Address)
	default:
		return redactAddress(e.Address)
	}
}

// redactAddress drops the userinfo of an address so it can appear in errors and results.
func redactAddress(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			if j := strings.Index(s, "://"); j >= 0 && j < i {
				return s[:j+3] + s[i+1:]
			}
			return s[i+1:]
		}
		return s
	}
	if u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}
