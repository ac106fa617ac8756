package builder

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/imagebuilder/imagebuilder/internal/redact"
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
	// KindAuto picks the endpoint from the environment: BUILDKIT_HOST when set, else the
	// Docker daemon of DOCKER_HOST or the current Docker context, else the default socket.
	KindAuto Kind = ""
	// KindDocker is a Docker daemon's embedded BuildKit, reached through the Engine API.
	KindDocker Kind = "docker"
	// KindBuildKit is a buildkitd reached directly.
	KindBuildKit Kind = "buildkit"
	// KindPlugin is a builder plugin: the program imagebuilder-builder-NAME, run as a
	// hashicorp/go-plugin plugin (see internal/builder/plugin).
	KindPlugin Kind = "plugin"
)

// pluginPrefix marks a builder plugin: "plugin:NAME[?KEY=VALUE&...]".
const pluginPrefix = "plugin:"

// dockerPrefix marks a Docker daemon address: "docker+unix:///var/run/docker.sock".
const dockerPrefix = "docker+"

// EndpointForms are the accepted endpoint forms, for help texts, errors and completion.
var EndpointForms = []string{
	"docker",
	"docker+unix://PATH",
	"docker+tcp://HOST:PORT",
	"docker+ssh://[USER@]HOST[:PORT]",
	"unix://PATH",
	"tcp://HOST:PORT",
	"ssh://[USER@]HOST[:PORT]",
	"docker-container://CONTAINER",
	"podman-container://CONTAINER",
	"kube-pod://POD[?namespace=NS]",
	"plugin:NAME[?KEY=VALUE&...]",
}

// dockerSchemes are the Docker daemon address schemes: sockets, TCP, and ssh through docker/cli's
// connection helper (the remote runs `docker system dial-stdio`).
var dockerSchemes = []string{"unix", "tcp", "npipe", "ssh"}

// Endpoint is a parsed builder endpoint.
type Endpoint struct {
	Kind Kind
	// Address is the daemon address: for KindBuildKit a BuildKit address (unix://, tcp://,
	// docker-container://, kube-pod://, podman-container://, ssh://); for KindDocker a
	// DOCKER_HOST-style address (unix://, tcp://, npipe://, ssh://), or "" for the Docker
	// environment (DOCKER_HOST, the Docker context, or the default socket); for KindPlugin the
	// plugin's name.
	Address string
	// Query holds a plugin's settings (plugin:NAME?KEY=VALUE&...) URL-encoded, keys sorted;
	// empty for the others. It is a string so that an Endpoint stays comparable.
	Query string
}

// plainName matches a bare name such as a buildx builder or a Docker context name.
var plainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// EndpointError is an endpoint that does not parse; its message names the accepted forms.
type EndpointError struct {
	Input  string // without credentials
	Reason string
}

func (e *EndpointError) Error() string {
	msg := fmt.Sprintf("parsing endpoint %q: %s; want one of: %s", e.Input, e.Reason, strings.Join(EndpointForms, ", "))
	if plainName.MatchString(e.Input) {
		msg += fmt.Sprintf(" (%q looks like a name: a buildx builder is given by its BuildKit address, a Docker context by --context NAME or DOCKER_CONTEXT, a builder plugin by plugin:NAME)", e.Input)
	}
	return msg
}

func badEndpoint(s, format string, args ...any) error {
	return &EndpointError{Input: redact.URL(s), Reason: fmt.Sprintf(format, args...)}
}

// ParseEndpoint parses an endpoint string:
//
//	""                              auto: BUILDKIT_HOST, else the Docker daemon of the environment
//	"docker"                        the Docker daemon of DOCKER_HOST, the Docker context, or the default socket
//	"docker+unix:///path.sock"      the Docker daemon at that address (also docker+tcp://host:port,
//	                                docker+ssh://user@host)
//	"unix:///path.sock"             a buildkitd; also tcp://, docker-container://, kube-pod://,
//	                                podman-container://, ssh:// (BuildKit's connection helpers)
//	"plugin:NAME?KEY=VALUE"         the builder plugin imagebuilder-builder-NAME, with its settings
func ParseEndpoint(s string) (Endpoint, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Endpoint{Kind: KindAuto}, nil
	case s == string(KindDocker):
		return Endpoint{Kind: KindDocker}, nil
	case strings.HasPrefix(s, pluginPrefix):
		return parsePlugin(s)
	case strings.HasPrefix(s, dockerPrefix):
		addr := strings.TrimPrefix(s, dockerPrefix)
		if err := checkDockerAddress(addr); err != nil {
			return Endpoint{}, badEndpoint(s, "%s", err)
		}
		return Endpoint{Kind: KindDocker, Address: addr}, nil
	}
	u, err := parseAddress(s)
	if err != nil {
		return Endpoint{}, badEndpoint(s, "%s", err)
	}
	switch u.Scheme {
	case "unix", "tcp":
	default:
		ch, err := connhelper.GetConnectionHelper(s)
		if err != nil {
			return Endpoint{}, badEndpoint(s, "%s", scrub(err.Error(), s))
		}
		if ch == nil {
			return Endpoint{}, badEndpoint(s, "unsupported scheme %q", u.Scheme)
		}
	}
	return Endpoint{Kind: KindBuildKit, Address: s}, nil
}

// checkDockerAddress checks a Docker daemon address (DOCKER_HOST syntax).
func checkDockerAddress(addr string) error {
	u, err := parseAddress(addr)
	if err != nil {
		return err
	}
	for _, s := range dockerSchemes {
		if u.Scheme == s {
			if s == "ssh" && u.Host == "" {
				return fmt.Errorf("missing host")
			}
			if _, ok := u.User.Password(); ok && s == "ssh" {
				return fmt.Errorf("plain-text password is not supported (use an ssh key or agent)")
			}
			return nil
		}
	}
	return fmt.Errorf("unsupported Docker daemon scheme %q (want %s)", u.Scheme, strings.Join(dockerSchemes, ", "))
}

func parseAddress(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error repeats the input, which may hold credentials.
		return nil, fmt.Errorf("not a URL")
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("missing scheme")
	}
	switch u.Scheme {
	case "unix", "npipe", "tcp":
		if u.Opaque != "" {
			// scheme:rest without "//" (unix:x.sock): neither BuildKit nor Docker reads it.
			return nil, fmt.Errorf("missing // after %s:", u.Scheme)
		}
	}
	switch u.Scheme {
	case "unix", "npipe":
		if u.Path == "" && u.Host == "" {
			return nil, fmt.Errorf("missing socket path")
		}
	case "tcp":
		if u.Host == "" {
			return nil, fmt.Errorf("missing host")
		}
	}
	return u, nil
}

// scrub removes a raw address (which may hold credentials) from a library's error message.
func scrub(msg, addr string) string {
	if addr == "" {
		return msg
	}
	return strings.ReplaceAll(msg, addr, redact.URL(addr))
}

// String returns the endpoint as the user wrote it, without any userinfo (user or password).
func (e Endpoint) String() string {
	switch e.Kind {
	case KindAuto:
		return "auto"
	case KindDocker:
		if e.Address == "" {
			return string(KindDocker)
		}
		return dockerPrefix + redact.URL(e.Address)
	case KindPlugin:
		if len(e.Query) == 0 {
			return pluginPrefix + e.Address
		}
		// A setting that is a URL with a user or password shows without them.
		q, _ := url.ParseQuery(e.Query)
		for _, vs := range q {
			for i, v := range vs {
				if u, err := url.Parse(v); err == nil && u.User != nil {
					vs[i] = redact.URL(v)
				}
			}
		}
		return pluginPrefix + e.Address + "?" + encodeQuery(q)
	default:
		return redact.URL(e.Address)
	}
}

// parsePlugin parses "plugin:NAME[?KEY=VALUE&...]".
func parsePlugin(s string) (Endpoint, error) {
	rest := strings.TrimPrefix(s, pluginPrefix)
	name, query, hasQuery := strings.Cut(rest, "?")
	if !plainName.MatchString(name) {
		return Endpoint{}, badEndpoint(s, "plugin name %q must be letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	ep := Endpoint{Kind: KindPlugin, Address: name}
	if hasQuery {
		q, err := url.ParseQuery(query)
		if err != nil {
			return Endpoint{}, badEndpoint(s, "plugin settings %q are not KEY=VALUE&...: %s", query, err)
		}
		for k := range q {
			if k == "" {
				return Endpoint{}, badEndpoint(s, "plugin setting with an empty name")
			}
		}
		ep.Query = encodeQuery(q)
	}
	return ep, nil
}

// PluginEndpoint is the endpoint of the builder plugin name with the settings query.
func PluginEndpoint(name string, query url.Values) Endpoint {
	return Endpoint{Kind: KindPlugin, Address: name, Query: encodeQuery(query)}
}

// encodeQuery encodes plugin settings with sorted keys, as url.Values.Encode does, but escapes
// only what KEY=VALUE&... needs escaped, so that addresses stay readable: addr=unix:///x.sock.
func encodeQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(escapeSetting(k))
			b.WriteByte('=')
			b.WriteString(escapeSetting(v))
		}
	}
	return b.String()
}

func escapeSetting(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && !strings.ContainsRune("&=%#+;?", rune(c)) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
