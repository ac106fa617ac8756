package main

// End-to-end tests of how the built binary chooses and reaches its build engine, against the
// real services: BuildKit, the Docker daemon (also through the loopback sshd and through a
// Docker context on a second socket), the registry on 127.0.0.1:5000.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// endpointEnv clears every variable that chooses an engine; callers add what they mean.
func endpointEnv(t *testing.T, kv ...string) map[string]string {
	env := map[string]string{
		"BUILDKIT_HOST": "", "DOCKER_HOST": "", "DOCKER_CONTEXT": "", "BUILDKIT_PROGRESS": "",
		"DOCKER_CONFIG": t.TempDir(),
	}
	for i := 0; i < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

// checkPushed fails unless the build succeeded on the expected engine and the registry serves
// the reported digest.
func checkPushed(t *testing.T, r ibRun, want result.Builder) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r.res.Builder == nil || *r.res.Builder != want {
		t.Errorf("builder %+v, want %+v", r.res.Builder, want)
	}
	img := r.res.Images[0]
	if got := testenv.RegistryDigest(t, img.Ref, nil); got == "" || got != img.Digest {
		t.Errorf("%s: result digest %s, registry serves %s", img.Ref, img.Digest, got)
	}
}

// TestBuildStderrDevNull: `imagebuilder build 2>/dev/null` (stderr really opened on /dev/null:
// exec opens the null device for a nil Stderr) builds and prints the result: /dev/null is not a
// terminal, so progress auto is plain. The environment names both engines, with the Docker
// daemon answering: BUILDKIT_HOST set means BuildKit. --metadata-file holds the result.
func TestBuildStderrDevNull(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base, testenv.BuildKit, testenv.Docker)
	repo := testenv.GitRepoURL(t, map[string]string{"Dockerfile": "FROM " + env[testenv.Base] + "\nRUN echo devnull > /x\n"})
	tmp := t.TempDir()
	meta := filepath.Join(t.TempDir(), "metadata.json")
	r := ibBinaryWith(t, binOpts{tmp: tmp, nullStderr: true, env: endpointEnv(t, "BUILDKIT_HOST", env[testenv.BuildKit], "DOCKER_HOST", env[testenv.Docker])},
		request(repo, env[testenv.Registry], map[string]any{"image": "e2e/devnull", "tag": testenv.UniqueTag("devnull")}),
		"build", "--metadata-file", meta)
	checkPushed(t, r, result.Builder{Kind: "buildkit", Endpoint: env[testenv.BuildKit]})
	if data, err := os.ReadFile(meta); err != nil || string(data) != r.stdout {
		t.Errorf("metadata file (%v) differs from stdout:\n%s", err, data)
	}
	noWorkspace(t, tmp)
}

// TestBuildDockerHostSSH: DOCKER_HOST=ssh://root@127.0.0.1:2222 builds through the Docker daemon
// reached over the loopback sshd (docker/cli's connection helper runs `ssh ... docker system
// dial-stdio`, for API calls and the hijacked /grpc and /session streams alike) and pushes to
// the registry. An ssh wrapper first on PATH records its calls, so the test knows the
// connections went through ssh; the user name stays out of the result.
func TestBuildDockerHostSSH(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base, testenv.SSHHost, testenv.SSHPort, testenv.SSHUser)
	realSSH, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatalf("no ssh client (scripts/testenv.sh installs openssh-client): %v", err)
	}
	wrap := t.TempDir()
	calls := filepath.Join(wrap, "calls")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %q\nexec %q \"$@\"\n", calls, realSSH)
	if err := os.WriteFile(filepath.Join(wrap, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("ssh://%s@%s:%s", env[testenv.SSHUser], env[testenv.SSHHost], env[testenv.SSHPort])
	repo := testenv.GitRepoURL(t, map[string]string{"Dockerfile": "FROM " + env[testenv.Base] + "\nRUN echo over-ssh > /x\n"})
	r := ibBinaryWith(t, binOpts{tmp: t.TempDir(), env: endpointEnv(t, "DOCKER_HOST", host, "PATH", wrap+":"+os.Getenv("PATH"))},
		request(repo, env[testenv.Registry], map[string]any{"image": "e2e/docker-ssh", "tag": testenv.UniqueTag("ssh"), "platforms": []string{"linux/amd64"}}),
		"build", "--progress", "plain")
	want := result.Builder{Kind: "docker", Endpoint: fmt.Sprintf("docker+ssh://%s:%s", env[testenv.SSHHost], env[testenv.SSHPort])}
	checkPushed(t, r, want)
	log, err := os.ReadFile(calls)
	if err != nil || !strings.Contains(string(log), "docker system dial-stdio") {
		t.Errorf("the build did not go through ssh (calls: %v)\n%s", err, log)
	}
	t.Logf("%d ssh connections", strings.Count(string(log), "\n"))
	if strings.Contains(r.stdout+r.stderr, env[testenv.SSHUser]+"@") {
		t.Error("the ssh user appears in the output")
	}
	if !strings.Contains(r.stderr, "builder: docker "+want.Endpoint+" (DOCKER_HOST)") {
		t.Errorf("progress does not name the engine:\n%s", r.stderr)
	}
}

// TestBuildDockerContext: a Docker context whose host is a second socket — a proxy to the
// daemon's socket that counts connections — made and selected with the real docker CLI
// (`docker context create`, `docker context use`), is honoured: the build goes through the
// proxy. DOCKER_CONTEXT reaches it, and --context even with BUILDKIT_HOST set; DOCKER_HOST
// (the daemon's own socket) leaves the proxy alone.
func TestBuildDockerContext(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base, testenv.Docker, testenv.BuildKit)
	dockerCLI, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("no docker CLI (scripts/testenv.sh installs docker.io): %v", err)
	}
	proxy := testenv.StartSocketProxy(t, strings.TrimPrefix(env[testenv.Docker], "unix://"))
	cfg := t.TempDir()
	docker := func(args ...string) {
		t.Helper()
		cmd := exec.Command(dockerCLI, args...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg, "DOCKER_HOST=", "DOCKER_CONTEXT=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker %v: %v\n%s", args, err, out)
		}
	}
	docker("context", "create", "second", "--docker", "host="+proxy.Addr)
	docker("context", "use", "second")

	repo := testenv.GitRepoURL(t, map[string]string{"Dockerfile": "FROM " + env[testenv.Base] + "\nRUN echo via-context > /x\n"})
	p := request(repo, env[testenv.Registry], map[string]any{"image": "e2e/docker-context", "tag": testenv.UniqueTag("ctx"), "platforms": []string{"linux/amd64"}})
	want := result.Builder{Kind: "docker", Endpoint: "docker+" + proxy.Addr}

	r := ibBinaryWith(t, binOpts{tmp: t.TempDir(), env: endpointEnv(t, "DOCKER_CONFIG", cfg)}, p, "build", "--progress", "plain")
	checkPushed(t, r, want)
	if proxy.Conns() == 0 {
		t.Fatal("the build did not go through the context's socket")
	}
	if !strings.Contains(r.stderr, `(docker context "second" (docker context use))`) {
		t.Errorf("progress does not say why the engine was chosen:\n%s", r.stderr)
	}

	docker("context", "use", "default")
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		through bool
	}{
		{"DOCKER_CONTEXT", endpointEnv(t, "DOCKER_CONFIG", cfg, "DOCKER_CONTEXT", "second"), nil, true},
		{"--context beats BUILDKIT_HOST", endpointEnv(t, "DOCKER_CONFIG", cfg, "BUILDKIT_HOST", env[testenv.BuildKit]), []string{"--context", "second"}, true},
		{"DOCKER_HOST beats DOCKER_CONTEXT", endpointEnv(t, "DOCKER_CONFIG", cfg, "DOCKER_CONTEXT", "second", "DOCKER_HOST", env[testenv.Docker]), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := proxy.Conns()
			// A dry run asks the engine for its platforms: one round trip through its socket.
			r := ibBinaryWith(t, binOpts{tmp: t.TempDir(), env: tc.env}, p, append([]string{"build", "--dry-run", "--progress", "plain"}, tc.args...)...)
			if r.code != 0 || r.res.Builder == nil || r.res.Builder.Kind != "docker" {
				t.Fatalf("exit %d, builder %+v\n%s\n%s", r.code, r.res.Builder, r.stdout, r.stderr)
			}
			if went := proxy.Conns() > before; went != tc.through {
				t.Errorf("through the context's socket: %v, want %v (builder %+v)", went, tc.through, r.res.Builder)
			}
		})
	}
}

// TestBuilderNonsenseBinary: the built binary refuses --builder nonsense with exit 2 before
// fetching the source: the source's server sees no request.
func TestBuilderNonsenseBinary(t *testing.T) {
	url, requests := dockerfileServer(t)
	p := map[string]any{
		"source": map[string]any{"dockerfile": map[string]any{"url": url}},
		"target": map[string]any{"images": []map[string]any{{"image": "a", "tag": "b"}}, "registry": map[string]any{"url": "127.0.0.1:1"}},
	}
	r := ibBinaryWith(t, binOpts{tmp: t.TempDir(), env: endpointEnv(t)}, p, "build", "--builder", "nonsense")
	if r.code != exitInvalid || r.stdout != "" || !strings.Contains(r.stderr, "want one of: docker, docker+unix://PATH") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the source was fetched (%d requests)", n)
	}
	// The same request with a working source but no engine answering fetches it: the counter
	// can tell.
	r = ibBinaryWith(t, binOpts{tmp: t.TempDir(), env: endpointEnv(t)}, p, "build", "--builder", "unix:///nonexistent/bk.sock")
	if r.code != exitFailure || requests.Load() == 0 {
		t.Errorf("control run: exit %d, %d requests\n%s", r.code, requests.Load(), r.stderr)
	}
}
