package builder

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	dockerclient "github.com/moby/moby/client"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// dockerConfig makes a Docker config directory with contexts (name -> docker host), saved
// through docker/cli's own context store, and current as the config's current context.
func dockerConfig(t *testing.T, current string, contexts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, host := range contexts {
		testenv.DockerContext(t, dir, name, host)
	}
	if current != "" {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"currentContext": "`+current+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSelectEndpoint is the decision table of endpoint selection: --builder, else the params'
// builder.endpoint (both "explicit" here: pipeline passes the first that is set), --context,
// BUILDKIT_HOST, DOCKER_HOST, DOCKER_CONTEXT, the Docker config's current context, the default
// socket.
func TestSelectEndpoint(t *testing.T) {
	cfg := dockerConfig(t, "current", map[string]string{
		"current": "unix:///run/current.sock",
		"envctx":  "unix:///run/envctx.sock",
		"flagctx": "tcp://flagctx:2376",
		"remote":  "ssh://deploy@build-host:2222",
		"broken":  "http://nope",
	})
	noCurrent := dockerConfig(t, "", nil)
	defaultCurrent := dockerConfig(t, "default", nil)
	const (
		bk      = "unix:///run/buildkit/buildkitd.sock"
		dockerH = "tcp://docker-host:2375"
	)
	all := map[string]string{EnvBuildKitHost: bk, EnvDockerHost: dockerH, EnvDockerContext: "envctx", EnvDockerConfig: cfg}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(out, kv[i])
			} else {
				out[kv[i]] = kv[i+1]
			}
		}
		return out
	}
	tests := []struct {
		name     string
		endpoint string
		context  string
		env      map[string]string
		want     Selection
		wantErr  string
	}{
		{name: "explicit BuildKit address beats everything", endpoint: "tcp://bk:1234", env: all,
			want: Selection{KindBuildKit, "tcp://bk:1234", OriginExplicit}},
		{name: "explicit Docker address beats BUILDKIT_HOST", endpoint: "docker+unix:///run/other.sock", env: all,
			want: Selection{KindDocker, "docker+unix:///run/other.sock", OriginExplicit}},
		{name: "docker ignores BUILDKIT_HOST and takes DOCKER_HOST", endpoint: "docker", env: all,
			want: Selection{KindDocker, "docker+" + dockerH, OriginDockerHost}},
		{name: "BUILDKIT_HOST beats the Docker environment", env: all,
			want: Selection{KindBuildKit, bk, OriginBuildKitHost}},
		{name: "--context beats BUILDKIT_HOST and DOCKER_HOST", context: "flagctx", env: all,
			want: Selection{KindDocker, "docker+tcp://flagctx:2376", `docker context "flagctx" (--context)`}},
		{name: "docker with --context", endpoint: "docker", context: "flagctx", env: all,
			want: Selection{KindDocker, "docker+tcp://flagctx:2376", `docker context "flagctx" (--context)`}},
		{name: "--context default is DOCKER_HOST", context: "default", env: all,
			want: Selection{KindDocker, "docker+" + dockerH, OriginDockerHost}},
		{name: "DOCKER_HOST beats DOCKER_CONTEXT", env: with(all, EnvBuildKitHost, ""),
			want: Selection{KindDocker, "docker+" + dockerH, OriginDockerHost}},
		{name: "DOCKER_CONTEXT beats the current context", env: with(all, EnvBuildKitHost, "", EnvDockerHost, ""),
			want: Selection{KindDocker, "docker+unix:///run/envctx.sock", `docker context "envctx" (DOCKER_CONTEXT)`}},
		{name: "the current context of the Docker config", env: map[string]string{EnvDockerConfig: cfg},
			want: Selection{KindDocker, "docker+unix:///run/current.sock", `docker context "current" (docker context use)`}},
		{name: "current context default", env: map[string]string{EnvDockerConfig: defaultCurrent},
			want: Selection{KindDocker, "docker+" + dockerclient.DefaultDockerHost, OriginDefault}},
		{name: "nothing set: the default socket", env: map[string]string{EnvDockerConfig: noCurrent},
			want: Selection{KindDocker, "docker+" + dockerclient.DefaultDockerHost, OriginDefault}},
		{name: "ssh context shown without its user", context: "remote", env: map[string]string{EnvDockerConfig: cfg},
			want: Selection{KindDocker, "docker+ssh://build-host:2222", `docker context "remote" (--context)`}},
		{name: "DOCKER_HOST ssh shown without credentials", env: map[string]string{EnvDockerHost: "ssh://me@h", EnvDockerConfig: noCurrent},
			want: Selection{KindDocker, "docker+ssh://h", OriginDockerHost}},

		{name: "--context with a BuildKit address", endpoint: bk, context: "flagctx", env: all, wantErr: "a Docker context names a Docker daemon"},
		{name: "--context with a Docker address", endpoint: "docker+unix:///x.sock", context: "flagctx", env: all, wantErr: "give one or the other"},
		{name: "unknown DOCKER_CONTEXT", env: map[string]string{EnvDockerContext: "nosuch", EnvDockerConfig: cfg}, wantErr: `docker context "nosuch" (DOCKER_CONTEXT): no such context`},
		{name: "unknown current context", env: map[string]string{EnvDockerConfig: dockerConfig(t, "gone", nil)}, wantErr: `docker context "gone" (docker context use): no such context`},
		{name: "context with a bad host", context: "broken", env: map[string]string{EnvDockerConfig: cfg}, wantErr: `unsupported Docker daemon scheme "http"`},
		{name: "BUILDKIT_HOST names a Docker daemon", env: map[string]string{EnvBuildKitHost: "docker"}, wantErr: "BUILDKIT_HOST \"docker\" is not a BuildKit address"},
		{name: "BUILDKIT_HOST does not parse", env: map[string]string{EnvBuildKitHost: "nonsense"}, wantErr: "BUILDKIT_HOST: parsing endpoint \"nonsense\""},
		{name: "DOCKER_HOST ssh with a password", env: map[string]string{EnvDockerHost: "ssh://me:sekrit@h"}, wantErr: "plain-text password is not supported"},
		{name: "DOCKER_HOST does not parse", env: map[string]string{EnvDockerHost: "http://u:sekrit@h"}, wantErr: "DOCKER_HOST \"http://h\""},
		{name: "broken Docker config", env: map[string]string{EnvDockerConfig: brokenConfig(t)}, wantErr: "reading the Docker config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := options{getenv: func(k string) string { return tt.env[k] }, dockerContext: tt.context}
			ep, err := ParseEndpoint(tt.endpoint)
			if err != nil {
				t.Fatal(err)
			}
			sel, err := selectEndpoint(ep, o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q (selected %+v)", err, tt.wantErr, sel.Selection)
				}
				if strings.Contains(err.Error(), "sekrit") {
					t.Errorf("error leaks a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sel.Selection != tt.want {
				t.Errorf("selected %+v, want %+v", sel.Selection, tt.want)
			}
			if sel.ep.Address == "" || sel.ep.Kind != sel.Kind {
				t.Errorf("resolved endpoint %+v", sel.ep)
			}
			if (sel.Kind == KindDocker) != (sel.docker != nil) {
				t.Errorf("docker endpoint %v for kind %s", sel.docker, sel.Kind)
			}
		})
	}
}

func brokenConfig(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestNewSelection: New reports its selection without contacting anything (the addresses do not
// exist), and an ssh:// Docker host gets docker/cli's connection helper.
func TestNewSelection(t *testing.T) {
	ctx := context.Background()
	cfg := dockerConfig(t, "", map[string]string{"remote": "ssh://deploy@build-host.invalid:2222"})
	env := func(m map[string]string) Option { return WithGetenv(func(k string) string { return m[k] }) }
	for _, tt := range []struct {
		endpoint string
		opts     []Option
		want     Selection
	}{
		{"", []Option{env(map[string]string{EnvBuildKitHost: "unix:///nonexistent/bk.sock"})}, Selection{KindBuildKit, "unix:///nonexistent/bk.sock", OriginBuildKitHost}},
		{"", []Option{env(map[string]string{EnvDockerConfig: cfg}), WithDockerContext("remote")}, Selection{KindDocker, "docker+ssh://build-host.invalid:2222", `docker context "remote" (--context)`}},
		{"docker+tcp://127.0.0.1:1", nil, Selection{KindDocker, "docker+tcp://127.0.0.1:1", OriginExplicit}},
	} {
		b, err := New(ctx, tt.endpoint, tt.opts...)
		if err != nil {
			t.Fatalf("New(%q): %v", tt.endpoint, err)
		}
		if got := b.Selection(); got != tt.want {
			t.Errorf("New(%q).Selection() = %+v, want %+v", tt.endpoint, got, tt.want)
		}
		if db, ok := b.(*dockerBuilder); ok && strings.HasPrefix(tt.want.Endpoint, "docker+ssh://") {
			// The connection helper's placeholder host, not a DNS lookup of "ssh://...".
			if h := db.docker.DaemonHost(); !strings.HasPrefix(h, "http://") {
				t.Errorf("ssh daemon host %q: the connection helper is not in use", h)
			}
		}
		b.Close()
	}
	if _, err := New(ctx, "", WithDockerContext("a"), WithDockerContext("b")); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("two contexts: %v", err)
	}
}

func TestDockerContexts(t *testing.T) {
	cfg := dockerConfig(t, "", map[string]string{"b": "unix:///b.sock", "a": "unix:///a.sock"})
	got, err := DockerContexts(func(k string) string {
		if k == EnvDockerConfig {
			return cfg
		}
		return ""
	})
	if err != nil || !slices.Equal(got, []string{"default", "a", "b"}) {
		t.Errorf("DockerContexts = %v, %v", got, err)
	}
	empty := t.TempDir()
	got, err = DockerContexts(func(string) string { return empty })
	if err != nil || !slices.Equal(got, []string{"default"}) {
		t.Errorf("DockerContexts without a store = %v, %v", got, err)
	}
}

func TestRegistryHosts(t *testing.T) {
	for _, tt := range []struct {
		req  Request
		want []string
	}{
		{Request{Repository: "registry.example:5000/team/app", Registries: []string{"docker.io", "index.docker.io", "Base.Example", "registry.example:5000"}},
			[]string{"registry.example:5000", "index.docker.io", "base.example"}},
		{Request{Repository: "library/app", Registries: []string{"registry-1.docker.io"}}, []string{"index.docker.io"}},
		{Request{Repository: "bad repository"}, nil},
	} {
		if got := tt.req.RegistryHosts(); !slices.Equal(got, tt.want) {
			t.Errorf("%+v: RegistryHosts() = %v, want %v", tt.req, got, tt.want)
		}
	}
}
