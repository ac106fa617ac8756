package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// dockerfileServer serves a Dockerfile and counts the requests it gets.
func dockerfileServer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Write([]byte("FROM scratch\n"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/Dockerfile", &n
}

func paramsJSON(t *testing.T, p map[string]any) string {
	t.Helper()
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// cleanEndpointEnv clears the variables that choose a build engine, so that a test sets only
// what it means to.
func cleanEndpointEnv(t *testing.T) {
	for _, k := range []string{"BUILDKIT_HOST", "DOCKER_HOST", "DOCKER_CONTEXT", "BUILDKIT_PROGRESS", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"} {
		t.Setenv(k, "")
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
}

// TestBuildRefusedBeforeWork: a bad --builder (a typo, a buildx builder name), a bad params
// builder.endpoint, a bad BUILDKIT_HOST, an unknown or conflicting --context and bad progress
// modes are usage errors (exit 2) that name what is accepted, and nothing is fetched: the
// source's server sees no request.
func TestBuildRefusedBeforeWork(t *testing.T) {
	cleanEndpointEnv(t)
	url, requests := dockerfileServer(t)
	request := func(endpoint string) string {
		p := map[string]any{
			"source": map[string]any{"dockerfile": map[string]any{"url": url}},
			"target": map[string]any{"images": []map[string]any{{"image": "a", "tag": "b"}}, "registry": map[string]any{"url": "127.0.0.1:1"}},
		}
		if endpoint != "" {
			p["builder"] = map[string]any{"endpoint": endpoint}
		}
		return paramsJSON(t, p)
	}
	forms := "want one of: docker, docker+unix://PATH, docker+tcp://HOST:PORT, docker+ssh://[USER@]HOST[:PORT], unix://PATH"
	for _, tc := range []struct {
		name   string
		env    map[string]string
		params string
		args   []string
		want   []string
	}{
		{name: "typo", args: []string{"--builder", "nonsense"}, want: []string{`--builder: parsing endpoint "nonsense"`, forms}},
		{name: "buildx builder name", args: []string{"--builder", "mybuilder"}, want: []string{"a buildx builder is given by its BuildKit address"}},
		{name: "unsupported scheme", args: []string{"--builder", "http://buildkitd:1234"}, want: []string{`unsupported scheme "http"`, forms}},
		{name: "params endpoint", params: request("buildkitd:1234"), want: []string{"/builder/endpoint: parsing endpoint", forms}},
		{name: "bad BUILDKIT_HOST", env: map[string]string{"BUILDKIT_HOST": "nonsense"}, want: []string{"BUILDKIT_HOST: parsing endpoint", forms}},
		{name: "BUILDKIT_HOST docker", env: map[string]string{"BUILDKIT_HOST": "docker"}, want: []string{`BUILDKIT_HOST "docker" is not a BuildKit address`}},
		{name: "unknown context", args: []string{"--context", "nosuch"}, want: []string{`docker context "nosuch" (--context): no such context`}},
		{name: "DOCKER_CONTEXT unknown", env: map[string]string{"DOCKER_CONTEXT": "gone"}, want: []string{`docker context "gone" (DOCKER_CONTEXT): no such context`}},
		{name: "context with an address", args: []string{"--context", "x", "--builder", "unix:///x.sock"}, want: []string{"--context x names a Docker daemon"}},
		{name: "missing plugin", args: []string{"--builder", "plugin:nonesuch"}, want: []string{`builder plugin "nonesuch" not found: no program imagebuilder-builder-nonesuch in`}},
		{name: "progress mode", args: []string{"--progress", "fancy"}, want: []string{`unknown progress mode "fancy"`, "rawjson"}},
		{name: "BUILDKIT_PROGRESS", env: map[string]string{"BUILDKIT_PROGRESS": "fancy"}, want: []string{"BUILDKIT_PROGRESS: unknown progress mode"}},
		{name: "tty without a terminal", args: []string{"--progress", "tty"}, want: []string{"--progress tty: standard error is not a terminal"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			stdin := tc.params
			if stdin == "" {
				stdin = request("")
			}
			before := requests.Load()
			code, stdout, stderr := ib(t, stdin, append([]string{"build"}, tc.args...)...)
			if code != exitInvalid || stdout != "" {
				t.Errorf("exit %d (want 2), stdout %q", code, stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if n := requests.Load() - before; n != 0 {
				t.Fatalf("the source was fetched (%d requests) before the usage error", n)
			}
		})
	}
}

// TestBuilderNameIsAContext: a --builder value that names a Docker context says how to use it.
func TestBuilderNameIsAContext(t *testing.T) {
	cleanEndpointEnv(t)
	testenv.DockerContext(t, os.Getenv("DOCKER_CONFIG"), "remote", "ssh://me@build-host")
	code, _, stderr := ib(t, "{}", "build", "--builder", "remote")
	if code != exitInvalid || !strings.Contains(stderr, `docker context "remote" exists: use --context remote`) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestTerminalStdin: without -f, a terminal on standard input is a usage error with a hint,
// not a silent wait.
func TestTerminalStdin(t *testing.T) {
	for _, cmd := range []string{"build", "validate", "convert"} {
		var out, errb bytes.Buffer
		done := make(chan int, 1)
		go func() { done <- run(context.Background(), []string{cmd}, testenv.Pty(t), &out, &errb) }()
		select {
		case code := <-done:
			if code != exitInvalid || !strings.Contains(errb.String(), "standard input is a terminal; give -f FILE or pipe the params in") {
				t.Errorf("%s: exit %d, stderr %q", cmd, code, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s waits on the terminal", cmd)
		}
	}
}

// TestBuilderPrecedenceAndMetadata: --builder beats the params' builder.endpoint, which beats
// BUILDKIT_HOST; the result names the engine, without credentials, also when the build
// fails; --metadata-file holds the same result.
func TestBuilderPrecedenceAndMetadata(t *testing.T) {
	cleanEndpointEnv(t)
	t.Setenv("BUILDKIT_HOST", "unix:///nonexistent/env.sock")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := map[string]any{
		"source": map[string]any{"local": map[string]any{"path": dir}},
		"target": map[string]any{"images": []map[string]any{{"image": "a", "tag": "b", "platforms": []string{"linux/amd64"}}}, "registry": map[string]any{"url": "127.0.0.1:1"}},
	}
	withParams := map[string]any{"builder": map[string]any{"endpoint": "tcp://me:pw@params.invalid:1"}}
	for k, v := range p {
		withParams[k] = v
	}
	for _, tc := range []struct {
		name   string
		params map[string]any
		args   []string
		want   result.Builder
	}{
		{"flag", withParams, []string{"--builder", "unix:///nonexistent/flag.sock"}, result.Builder{Kind: "buildkit", Endpoint: "unix:///nonexistent/flag.sock"}},
		{"params", withParams, nil, result.Builder{Kind: "buildkit", Endpoint: "tcp://params.invalid:1"}},
		{"BUILDKIT_HOST", p, nil, result.Builder{Kind: "buildkit", Endpoint: "unix:///nonexistent/env.sock"}},
		{"docker beats BUILDKIT_HOST", p, []string{"--builder", "docker"}, result.Builder{Kind: "docker", Endpoint: "docker+unix:///var/run/docker.sock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "docker beats BUILDKIT_HOST" {
				t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
				tc.want.Endpoint = "docker+unix:///nonexistent/docker.sock"
			}
			meta := filepath.Join(t.TempDir(), "metadata.json")
			code, stdout, stderr := ib(t, paramsJSON(t, tc.params), append([]string{"build", "--progress", "plain", "--metadata-file", meta}, tc.args...)...)
			if code != exitFailure {
				t.Fatalf("exit %d, want 1 (nothing answers)\n%s\n%s", code, stdout, stderr)
			}
			var res result.Result
			if err := json.Unmarshal([]byte(stdout), &res); err != nil {
				t.Fatal(err)
			}
			if res.Builder == nil || *res.Builder != tc.want || res.Failed == nil {
				t.Errorf("builder %+v (want %+v), failed %+v", res.Builder, tc.want, res.Failed)
			}
			if want := "builder: " + tc.want.Kind + " " + tc.want.Endpoint; !strings.Contains(stderr, want) {
				t.Errorf("progress does not show %q:\n%s", want, stderr)
			}
			if strings.Contains(stdout+stderr, "me:pw") {
				t.Error("the endpoint's credentials appear in the output")
			}
			data, err := os.ReadFile(meta)
			if err != nil || string(data) != stdout {
				t.Errorf("metadata file (%v):\n%s\nstdout:\n%s", err, data, stdout)
			}
		})
	}
}

// TestCompletion: flag values complete.
func TestCompletion(t *testing.T) {
	cleanEndpointEnv(t)
	testenv.DockerContext(t, os.Getenv("DOCKER_CONFIG"), "ctx-a", "unix:///a.sock")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"build", "--progress", ""}, []string{"auto", "plain", "tty", "rawjson", "json", "quiet", ":4"}},
		{[]string{"build", "--output", ""}, []string{"json", "yaml", ":4"}},
		{[]string{"build", "--builder", ""}, []string{"docker\n", "docker+unix://", "docker+ssh://", "unix://", "tcp://", "ssh://", "docker-container://", "kube-pod://", "podman-container://", ":6"}},
		{[]string{"build", "--context", ""}, []string{"default", "ctx-a", ":4"}},
		{[]string{"convert", "--to", ""}, []string{"json", "yaml"}},
	} {
		code, stdout, stderr := ib(t, "", append([]string{"__complete"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%v: completion %q lacks %q", tc.args, stdout, w)
			}
		}
	}
}
