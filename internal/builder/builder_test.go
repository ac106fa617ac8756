package builder

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session/auth"
	digest "github.com/opencontainers/go-digest"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in      string
		want    Endpoint
		str     string
		wantErr string
	}{
		{in: "", want: Endpoint{Kind: KindAuto}, str: "auto"},
		{in: "  ", want: Endpoint{Kind: KindAuto}, str: "auto"},
		{in: "docker", want: Endpoint{Kind: KindDocker}, str: "docker"},
		{in: "docker+unix:///var/run/docker.sock", want: Endpoint{Kind: KindDocker, Address: "unix:///var/run/docker.sock"}, str: "docker+unix:///var/run/docker.sock"},
		{in: "docker+tcp://10.0.0.1:2376", want: Endpoint{Kind: KindDocker, Address: "tcp://10.0.0.1:2376"}, str: "docker+tcp://10.0.0.1:2376"},
		{in: "unix:///run/buildkit/buildkitd.sock", want: Endpoint{Kind: KindBuildKit, Address: "unix:///run/buildkit/buildkitd.sock"}, str: "unix:///run/buildkit/buildkitd.sock"},
		{in: "tcp://buildkitd:1234", want: Endpoint{Kind: KindBuildKit, Address: "tcp://buildkitd:1234"}, str: "tcp://buildkitd:1234"},
		{in: "tcp://user:hunter2@buildkitd:1234", want: Endpoint{Kind: KindBuildKit, Address: "tcp://user:hunter2@buildkitd:1234"}, str: "tcp://buildkitd:1234"},
		{in: "docker-container://buildkitd", want: Endpoint{Kind: KindBuildKit, Address: "docker-container://buildkitd"}, str: "docker-container://buildkitd"},
		{in: "kube-pod://buildkitd-0?namespace=ci", want: Endpoint{Kind: KindBuildKit, Address: "kube-pod://buildkitd-0?namespace=ci"}, str: "kube-pod://buildkitd-0?namespace=ci"},
		{in: "podman-container://buildkitd", want: Endpoint{Kind: KindBuildKit, Address: "podman-container://buildkitd"}, str: "podman-container://buildkitd"},
		{in: "ssh://me@host", want: Endpoint{Kind: KindBuildKit, Address: "ssh://me@host"}, str: "ssh://host"},
		{in: "docker+ssh://me@host:2222", want: Endpoint{Kind: KindDocker, Address: "ssh://me@host:2222"}, str: "docker+ssh://host:2222"},
		{in: "docker+ssh://me:sekrit@host:2222", wantErr: "plain-text password is not supported"},
		{in: "docker+ssh://", wantErr: "missing host"},
		{in: "docker+http://host", wantErr: "unsupported Docker daemon scheme"},
		{in: "nonsense", wantErr: `parsing endpoint "nonsense": missing scheme; want one of: docker, docker+unix://PATH`},
		{in: "mybuilder", wantErr: "a buildx builder is given by its BuildKit address, a Docker context by --context NAME"},
		{in: "docker+", wantErr: "missing scheme"},
		{in: "docker+unix://", wantErr: "missing socket path"},
		{in: "http://buildkitd:1234", wantErr: `unsupported scheme "http"`},
		{in: "buildkitd:1234", wantErr: "unsupported scheme"},
		{in: "/run/buildkit/buildkitd.sock", wantErr: "missing scheme"},
		{in: "tcp://", wantErr: "missing host"},
		{in: "tcp://u:sekrit@%zz", wantErr: "not a URL"},
		{in: "ssh://u:sekrit@host", wantErr: "plain-text password is not supported"},
		{in: "plugin:buildah", want: Endpoint{Kind: KindPlugin, Address: "buildah"}, str: "plugin:buildah"},
		{in: "plugin:buildkit?addr=unix:///run/bk.sock", want: Endpoint{Kind: KindPlugin, Address: "buildkit", Query: "addr=unix:///run/bk.sock"}, str: "plugin:buildkit?addr=unix:///run/bk.sock"},
		{in: "plugin:x?b=1&a=2&a=1", want: Endpoint{Kind: KindPlugin, Address: "x", Query: "a=2&a=1&b=1"}, str: "plugin:x?a=2&a=1&b=1"},
		{in: "plugin:x?k=a%26b%3Dc+d", want: Endpoint{Kind: KindPlugin, Address: "x", Query: "k=a%26b%3Dc%20d"}, str: "plugin:x?k=a%26b%3Dc%20d"},
		{in: "plugin:x?addr=tcp://u:sekrit@h:1", want: Endpoint{Kind: KindPlugin, Address: "x", Query: "addr=tcp://u:sekrit@h:1"}, str: "plugin:x?addr=tcp://h:1"},
		{in: "plugin:", wantErr: `plugin name "" must be letters`},
		{in: "plugin:a/b", wantErr: `plugin name "a/b" must be letters`},
		{in: "plugin:x?a=%zz", wantErr: "plugin settings"},
		{in: "plugin:x?=v", wantErr: "plugin setting with an empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseEndpoint(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseEndpoint(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "sekrit") {
					t.Errorf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEndpoint(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseEndpoint(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
		})
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"", "docker", "docker+unix:///x.sock", "unix:///x.sock", "tcp://a:b@h:1", "kube-pod://p?namespace=n", "docker+tcp://h:2", "ssh://u@h", "docker+ssh://u:p@h:22", "nonsense", "plugin:buildah", "plugin:x?addr=unix:///s&k=a%26b", "plugin:x?a=tcp://u:pw12@h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := ParseEndpoint(s)
		if err != nil {
			// Every refusal names the accepted forms and never repeats a password.
			if !strings.Contains(err.Error(), "want one of: docker,") {
				t.Fatalf("error for %q does not name the accepted forms: %v", s, err)
			}
			if u, perr := url.Parse(s); perr == nil && u.User != nil {
				// (A password whose text also appears outside the user information, in the host
				// say, may show there.)
				if pw, ok := u.User.Password(); ok && len(pw) >= 4 && strings.Contains(err.Error(), pw) && !strings.Contains(redact.URL(s), pw) {
					t.Fatalf("error for %q repeats the password: %v", s, err)
				}
			}
			return
		}
		str := ep.String()
		// A parsed endpoint's display form parses to the same kind, and never holds a password.
		if ep.Kind != KindAuto {
			again, err := ParseEndpoint(str)
			if err != nil {
				t.Fatalf("String() %q of %q does not parse: %v", str, s, err)
			}
			if again.Kind != ep.Kind {
				t.Fatalf("kind changed: %q -> %q", ep.Kind, again.Kind)
			}
			// A plugin's name and settings survive (unless a setting lost a password).
			if ep.Kind == KindPlugin && again != ep && !strings.Contains(ep.Query, "@") {
				t.Fatalf("plugin endpoint %+v shows as %q, which parses to %+v", ep, str, again)
			}
		}
		if u, err := url.Parse(strings.TrimPrefix(strings.TrimSpace(s), dockerPrefix)); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && len(pw) >= 4 && strings.Contains(str, ":"+pw+"@") {
				t.Fatalf("String() %q keeps the password of %q", str, s)
			}
		}
		// The display form is what results print: no userinfo at all.
		if u, err := url.Parse(strings.TrimPrefix(str, dockerPrefix)); err == nil && u.User != nil {
			t.Fatalf("String() %q of %q keeps userinfo", str, s)
		}
	})
}

func TestNormalizePlatforms(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr bool
	}{
		{in: nil, want: nil},
		{in: []string{"linux/amd64"}, want: []string{"linux/amd64"}},
		{in: []string{"linux/arm64/v8", "linux/aarch64", "linux/arm64"}, want: []string{"linux/arm64"}},
		{in: []string{"linux/arm64", "linux/amd64"}, want: []string{"linux/arm64", "linux/amd64"}},
		{in: []string{"linux/arm"}, want: []string{"linux/arm/v7"}},
		{in: []string{"linux/x86_64"}, want: []string{"linux/amd64"}},
		{in: []string{"linux/amd64/v2"}, want: []string{"linux/amd64/v2"}},
		{in: []string{"not a platform!"}, wantErr: true},
		{in: []string{"linux/amd64", ""}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, ","), func(t *testing.T) {
			got, err := normalizePlatforms(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFrontendAttrs(t *testing.T) {
	base := Request{Dockerfile: "/work/docker/Build.Dockerfile"}
	tests := []struct {
		name        string
		req         Request
		plats       []string
		hostNetwork bool
		want        map[string]string
	}{
		{
			name: "minimal",
			req:  base,
			want: map[string]string{"filename": "Build.Dockerfile"},
		},
		{
			name:  "platforms",
			req:   base,
			plats: []string{"linux/amd64", "linux/arm64"},
			want:  map[string]string{"filename": "Build.Dockerfile", "platform": "linux/amd64,linux/arm64"},
		},
		{
			name: "everything",
			req: Request{
				Dockerfile: "/d/Dockerfile",
				BuildArgs:  map[string]string{"BASE": "busybox", "EMPTY": ""},
				Labels:     map[string]string{"org.opencontainers.image.revision": "abc"},
				Target:     "final",
				NoCache:    true,
				Pull:       true,
			},
			plats:       []string{"linux/arm64"},
			hostNetwork: true,
			want: map[string]string{
				"filename":        "Dockerfile",
				"platform":        "linux/arm64",
				"build-arg:BASE":  "busybox",
				"build-arg:EMPTY": "",
				"label:org.opencontainers.image.revision": "abc",
				"target":             "final",
				"no-cache":           "",
				"image-resolve-mode": "pull",
				"force-network-mode": "host",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := frontendAttrs(&normalizedRequest{Request: tt.req}, tt.plats, tt.hostNetwork)
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestSolveOptEntitlements(t *testing.T) {
	dir := t.TempDir()
	df := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(df, []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nr := &normalizedRequest{Request: Request{ContextDir: dir, Dockerfile: df}}
	for _, host := range []bool{false, true} {
		opt, err := solveOpt(nr, nil, host, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(opt.AllowedEntitlements, "network.host"); got != host {
			t.Errorf("hostNetwork=%v: entitlements %v", host, opt.AllowedEntitlements)
		}
		if opt.Frontend != "dockerfile.v0" || len(opt.LocalMounts) != 2 || len(opt.Session) != 1 {
			t.Errorf("solve options: %+v", opt)
		}
	}
	if _, err := solveOpt(&normalizedRequest{Request: Request{ContextDir: filepath.Join(dir, "missing"), Dockerfile: df}}, nil, false, nil); err == nil {
		t.Error("missing context accepted")
	}
	// Secrets and ssh forwards join the session; a forward of a missing socket is an error.
	agent := filepath.Join(dir, "agent.sock") // any unix socket: BuildKit dials it per use
	l, err := net.Listen("unix", agent)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	withSecrets := &normalizedRequest{Request: Request{ContextDir: dir, Dockerfile: df,
		Secrets: map[string][]byte{"tok": []byte("v")}, SSH: []SSHForward{{ID: "default", Paths: []string{agent}}}}}
	if opt, err := solveOpt(withSecrets, nil, false, nil); err != nil || len(opt.Session) != 3 {
		t.Errorf("session with secrets and ssh: %d attachables, %v", len(opt.Session), err)
	}
	withSecrets.SSH[0].Paths = []string{filepath.Join(dir, "no-agent.sock")}
	if _, err := solveOpt(withSecrets, nil, false, nil); err == nil || !strings.Contains(err.Error(), "forwarding ssh") {
		t.Errorf("missing ssh socket: %v", err)
	}
}

func TestImageExportAttrs(t *testing.T) {
	tests := []struct {
		repo     string
		insecure bool
		want     string // registry.insecure value, "" for absent
	}{
		// Loopback registries get plain HTTP from buildkitd itself; registry.insecure would also
		// switch off TLS verification, which only insecure asks for.
		{repo: "127.0.0.1:5000/team/app", want: ""},
		{repo: "localhost:5000/app", want: ""},
		{repo: "127.0.0.1:5000/team/app", insecure: true, want: "true"},
		{repo: "registry.example.com/app", want: ""},
		{repo: "registry.example.com/app", insecure: true, want: "true"},
	}
	for _, tt := range tests {
		repo, err := name.NewRepository(tt.repo)
		if err != nil {
			t.Fatal(err)
		}
		got := imageExportAttrs(&normalizedRequest{Request: Request{Insecure: tt.insecure}, repo: repo})
		if got["name"] != tt.repo || got["push"] != "true" || got["push-by-digest"] != "true" || got["oci-mediatypes"] != "true" {
			t.Errorf("%s: %v", tt.repo, got)
		}
		if got["registry.insecure"] != tt.want {
			t.Errorf("%s insecure=%v: registry.insecure=%q, want %q", tt.repo, tt.insecure, got["registry.insecure"], tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	df := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(df, []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := Request{ContextDir: dir, Dockerfile: df, Repository: "127.0.0.1:5000/team/app", Platforms: []string{"linux/arm64/v8", "linux/amd64"}}
	tests := []struct {
		name    string
		mutate  func(*Request)
		wantErr string
	}{
		{name: "ok", mutate: func(*Request) {}},
		{name: "no repository", mutate: func(r *Request) { r.Repository = "" }, wantErr: "no repository"},
		{name: "tagged repository", mutate: func(r *Request) { r.Repository += ":v1" }, wantErr: "without tag or digest"},
		{name: "upper case", mutate: func(r *Request) { r.Repository = "127.0.0.1:5000/Team" }, wantErr: "repository"},
		{name: "no context", mutate: func(r *Request) { r.ContextDir = "" }, wantErr: "no build context"},
		{name: "missing context", mutate: func(r *Request) { r.ContextDir = filepath.Join(dir, "nope") }, wantErr: "build context"},
		{name: "context is a file", mutate: func(r *Request) { r.ContextDir = df }, wantErr: "not a directory"},
		{name: "relative dockerfile", mutate: func(r *Request) { r.Dockerfile = "Dockerfile" }, wantErr: "not absolute"},
		{name: "missing dockerfile", mutate: func(r *Request) { r.Dockerfile = filepath.Join(dir, "nope") }, wantErr: "dockerfile"},
		{name: "dockerfile is a dir", mutate: func(r *Request) { r.Dockerfile = dir }, wantErr: "is a directory"},
		{name: "bad platform", mutate: func(r *Request) { r.Platforms = []string{"linux/amd64/v2/x/y"} }, wantErr: "platform"},
		{name: "empty build arg", mutate: func(r *Request) { r.BuildArgs = map[string]string{"": "x"} }, wantErr: "build argument"},
		{name: "empty label", mutate: func(r *Request) { r.Labels = map[string]string{"": "x"} }, wantErr: "label"},
	}
	b := &baseBuilder{endpoint: Endpoint{Kind: KindBuildKit, Address: "unix:///x.sock"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ok
			tt.mutate(&req)
			nr, err := b.validate(req)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(nr.platforms, []string{"linux/arm64", "linux/amd64"}) {
					t.Errorf("platforms = %v", nr.platforms)
				}
				return
			}
			var be *Error
			if !errors.As(err, &be) || be.Step != StepValidate {
				t.Fatalf("error = %#v, want a validate *Error", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "unix:///x.sock") {
				t.Errorf("error %q lacks %q or the endpoint", err, tt.wantErr)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	cause := errors.New("exit code: 1")
	tests := []struct {
		err  *Error
		want string
	}{
		{
			err:  &Error{Step: StepBuild, Repository: "r/x", Platforms: []string{"linux/arm64"}, Endpoint: "unix:///b.sock", Err: cause},
			want: "building r/x for linux/arm64 on unix:///b.sock: exit code: 1",
		},
		{
			err:  &Error{Step: StepBuild, Repository: "r/x", Platforms: []string{"linux/amd64", "linux/arm64"}, Endpoint: "docker", Vertex: "[2/2] RUN false", Output: "boom", Err: cause},
			want: "building r/x for linux/amd64,linux/arm64 on docker: step \"[2/2] RUN false\": exit code: 1\noutput:\nboom",
		},
		{
			err:  &Error{Step: StepPush, Repository: "r/x", Endpoint: "docker", Err: cause},
			want: "pushing r/x on docker: exit code: 1",
		},
		{
			err:  &Error{Step: StepIndex, Repository: "r/x", Err: cause},
			want: "pushing the index of r/x: exit code: 1",
		},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
		if !errors.Is(tt.err, cause) {
			t.Error("Unwrap lost the cause")
		}
	}
}

func TestFailureTracker(t *testing.T) {
	run, other := digest.FromString("run"), digest.FromString("other")
	f := NewFailureTracker()
	f.Observe(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: run, Name: "[2/2] RUN make"}, {Digest: other, Name: "[1/2] FROM x"}}})
	var lines strings.Builder
	for i := range 30 {
		fmt.Fprintf(&lines, "line %d\n", i)
	}
	f.Observe(&client.SolveStatus{Logs: []*client.VertexLog{{Vertex: run, Data: []byte(lines.String())}, {Vertex: other, Data: []byte("unrelated\n")}}})
	f.Observe(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: other, Error: "context canceled"}}})
	f.Observe(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: run, Error: "exit code: 2"}}})
	vertex, output := f.Describe()
	if vertex != "[2/2] RUN make" {
		t.Errorf("vertex = %q", vertex)
	}
	got := strings.Split(output, "\n")
	if len(got) != outputTailLines || got[0] != "line 10" || got[len(got)-1] != "line 29" {
		t.Errorf("output tail = %q", output)
	}
	if v, o := NewFailureTracker().Describe(); v != "" || o != "" {
		t.Errorf("empty tracker describes %q %q", v, o)
	}
}

func TestTail(t *testing.T) {
	long := strings.Repeat("x", outputTailBytes) + "\nlast\n"
	tests := []struct{ in, want string }{
		{"", ""},
		{"one\n", "one"},
		{"a\nb\n\n", "a\nb"},
		{long, "last"},
	}
	for _, tt := range tests {
		if got := tail([]byte(tt.in)); got != tt.want {
			t.Errorf("tail(%.20q) = %.40q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCredentials(t *testing.T) {
	var asked []string
	fn := func(host string) (string, string, error) {
		asked = append(asked, host)
		switch host {
		case "own.example.com":
			return "me", "pw", nil
		case name.DefaultRegistry:
			return "hubuser", "hubpw", nil
		case "broken.example.com":
			return "", "", errors.New(`credential helper "pass" failed`)
		}
		return "", "", nil
	}
	s := &authServer{creds: fn}
	for _, tt := range []struct{ host, user, secret string }{
		{"own.example.com", "me", "pw"},
		{"registry-1.docker.io", "hubuser", "hubpw"}, // BuildKit's name for Docker Hub
		{"anon.example.com", "", ""},
	} {
		resp, err := s.Credentials(context.Background(), &auth.CredentialsRequest{Host: tt.host})
		if err != nil || resp.Username != tt.user || resp.Secret != tt.secret {
			t.Errorf("%s: %+v, %v", tt.host, resp, err)
		}
	}
	if !slices.Equal(asked, []string{"own.example.com", name.DefaultRegistry, "anon.example.com"}) {
		t.Errorf("asked for %v", asked)
	}
	_, err := s.Credentials(context.Background(), &auth.CredentialsRequest{Host: "broken.example.com"})
	if err == nil || !strings.Contains(err.Error(), "broken.example.com") || !strings.Contains(err.Error(), `credential helper "pass"`) {
		t.Errorf("a failing callback: %v", err)
	}
	// No callback: anonymous, and the builder reads no Docker config of its own.
	resp, err := (&authServer{}).Credentials(context.Background(), &auth.CredentialsRequest{Host: "own.example.com"})
	if err != nil || resp.Username != "" || resp.Secret != "" {
		t.Errorf("nil callback: %+v, %v", resp, err)
	}
	// Unimplemented token methods make BuildKit fall back to Credentials.
	if _, err := s.GetTokenAuthority(context.Background(), &auth.GetTokenAuthorityRequest{Host: "own.example.com"}); err == nil {
		t.Error("GetTokenAuthority is implemented; BuildKit would expect FetchToken")
	}
}

func TestNewOptions(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		endpoint string
		opts     []Option
		wantErr  string
	}{
		{name: "tls twice", endpoint: "tcp://h:1", opts: []Option{WithTLS(TLSConfig{}), WithTLS(TLSConfig{})}, wantErr: "twice"},
		{name: "cert without key", endpoint: "tcp://h:1", opts: []Option{WithTLS(TLSConfig{Cert: "c.pem"})}, wantErr: "together"},
		{name: "tls on unix", endpoint: "unix:///x.sock", opts: []Option{WithTLS(TLSConfig{})}, wantErr: "tcp://"},
		{name: "host network twice", endpoint: "unix:///x.sock", opts: []Option{WithHostNetwork(true), WithHostNetwork(false)}, wantErr: "twice"},
		{name: "empty temp dir", endpoint: "unix:///x.sock", opts: []Option{WithTempDir("")}, wantErr: "temporary"},
		{name: "bad endpoint", endpoint: "http://x", wantErr: "unsupported scheme"},
		{name: "buildkit", endpoint: "unix:///x.sock"},
		{name: "docker", endpoint: "docker+unix:///x.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(ctx, tt.endpoint, tt.opts...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b.Close()
		})
	}
}

func TestToOCI(t *testing.T) {
	src, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	img, err := toOCI(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s / %s", m.MediaType, m.Config.MediaType)
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer media type %s", l.MediaType)
		}
	}
	srcCfg, _ := src.ConfigFile()
	cfg, _ := img.ConfigFile()
	if !slices.Equal(srcCfg.RootFS.DiffIDs, cfg.RootFS.DiffIDs) || len(cfg.History) != len(srcCfg.History) {
		t.Errorf("diff IDs or history changed: %v -> %v", srcCfg.RootFS.DiffIDs, cfg.RootFS.DiffIDs)
	}
}

func TestProgressStep(t *testing.T) {
	var got []*client.SolveStatus
	sink := NewProgressSink(func(s *client.SolveStatus) { got = append(got, s) })
	sink.Step("pushing x")(errors.New("denied"))
	if len(got) != 2 {
		t.Fatalf("%d events", len(got))
	}
	start, end := got[0].Vertexes[0], got[1].Vertexes[0]
	if start.Digest != end.Digest || start.Name != "pushing x" || start.Started == nil || start.Completed != nil {
		t.Errorf("start %+v", start)
	}
	if end.Completed == nil || end.Error != "denied" {
		t.Errorf("end %+v", end)
	}
	var nilSink *ProgressSink
	nilSink.Step("x")(nil) // no callback: no panic
}
