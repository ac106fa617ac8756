package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/client"

	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/registry/registrytest"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// endpointCase is one real endpoint the integration tests run against.
type endpointCase struct {
	name     string
	envVar   string
	endpoint func(addr string) string
}

var endpointCases = []endpointCase{
	{name: "buildkit", envVar: testenv.BuildKit, endpoint: func(a string) string { return a }},
	{name: "docker", envVar: testenv.Docker, endpoint: func(a string) string { return "docker+" + a }},
}

// forEachEndpoint runs fn against every endpoint as a parallel subtest; each subtest skips
// (or fails, under IMAGEBUILDER_REQUIRE_INTEGRATION=1) when its service is not configured.
func forEachEndpoint(t *testing.T, vars []string, fn func(t *testing.T, b Builder, env map[string]string)) {
	t.Helper()
	for _, ec := range endpointCases {
		t.Run(ec.name, func(t *testing.T) {
			t.Parallel()
			env := testenv.Require(t, append([]string{ec.envVar}, vars...)...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b, err := New(ctx, ec.endpoint(env[ec.envVar]))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			fn(t, publishing{b}, env)
		})
	}
}

// publishing gives every request without a publisher one, as the pipeline does: a registry
// client that answers with the request's own credentials.
type publishing struct{ Builder }

func (p publishing) Build(ctx context.Context, req Request) (*Built, error) {
	if req.Publisher == nil {
		c, err := registry.New(registry.WithKeychain(registrytest.Keychain(req.Credentials)), registry.WithRetry(1, 0))
		if err != nil {
			return nil, err
		}
		req.Publisher = c
	}
	return p.Builder.Build(ctx, req)
}

// writeFiles writes files (relative path -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// testRepo returns a repository no other test uses.
func testRepo(t *testing.T, registry string) string {
	n := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	return fmt.Sprintf("%s/builder-test/%s-%d", registry, n, time.Now().UnixNano())
}

// logProgress returns a Progress callback that logs finished steps and errors.
func logProgress(t *testing.T) func(*client.SolveStatus) {
	return func(s *client.SolveStatus) {
		for _, v := range s.Vertexes {
			if v.Completed != nil {
				t.Logf("step done: %s (cached=%v) %s", v.Name, v.Cached, v.Error)
			}
		}
	}
}

func TestBuildSinglePlatform(t *testing.T) {
	forEachEndpoint(t, []string{testenv.Registry, testenv.Base}, func(t *testing.T, b Builder, env map[string]string) {
		ctxDir, dfDir := t.TempDir(), t.TempDir()
		writeFiles(t, ctxDir, map[string]string{
			"hello.txt":     "hello from the context\n",
			"ignored.txt":   "must not reach the image\n",
			"sub/data.txt":  "nested\n",
			".dockerignore": "ignored.txt\n",
		})
		// The Dockerfile lives outside the context.
		writeFiles(t, dfDir, map[string]string{"build.Dockerfile": fmt.Sprintf(`ARG BASE
FROM ${BASE}
ARG GREETING=unset
RUN uname -m > /machine && echo "$GREETING" > /greeting && echo %d > /nonce
COPY hello.txt /hello.txt
COPY . /ctx/
`, time.Now().UnixNano())})
		repo := testRepo(t, env[testenv.Registry])
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		res, err := b.Build(ctx, Request{
			ContextDir: ctxDir,
			Dockerfile: filepath.Join(dfDir, "build.Dockerfile"),
			Platforms:  []string{"linux/amd64"},
			BuildArgs:  map[string]string{"BASE": env[testenv.Base], "GREETING": "hi there"},
			Labels:     map[string]string{"org.opencontainers.image.revision": "abc123"},
			Repository: repo,
			Progress:   logProgress(t),
		})
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		t.Logf("built %s@%s in %s", repo, res.Digest, time.Since(start))
		if !slices.Equal(res.Platforms, []string{"linux/amd64"}) {
			t.Errorf("Platforms = %v, want [linux/amd64]", res.Platforms)
		}
		if res.Endpoint == "" {
			t.Error("Result.Endpoint is empty")
		}

		r, err := name.NewRepository(repo)
		if err != nil {
			t.Fatal(err)
		}
		ref := r.Digest(res.Digest)
		desc, err := remote.Head(ref)
		if err != nil {
			t.Fatalf("HEAD %s: %v", ref, err)
		}
		if desc.Digest.String() != res.Digest {
			t.Errorf("registry serves %s at %s, Result.Digest = %s", desc.Digest, ref, res.Digest)
		}
		if desc.MediaType != types.OCIManifestSchema1 {
			t.Errorf("media type = %s, want an OCI manifest", desc.MediaType)
		}
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.OS != "linux" || cfg.Architecture != "amd64" {
			t.Errorf("config platform = %s/%s, want linux/amd64", cfg.OS, cfg.Architecture)
		}
		if got := cfg.Config.Labels["org.opencontainers.image.revision"]; got != "abc123" {
			t.Errorf("label revision = %q, want abc123", got)
		}
		files := registrytest.Files(t, img, "/machine", "/greeting", "/hello.txt", "/ctx/sub/data.txt", "/ctx/ignored.txt", "/etc/imagebuilder-base")
		want := map[string]string{
			"/machine":               "x86_64\n",
			"/greeting":              "hi there\n",
			"/hello.txt":             "hello from the context\n",
			"/ctx/sub/data.txt":      "nested\n",
			"/etc/imagebuilder-base": "busybox\n",
		}
		for p, w := range want {
			if got, ok := files[p]; !ok {
				t.Errorf("%s missing from the image", p)
			} else if strings.TrimSpace(got) != strings.TrimSpace(w) {
				t.Errorf("%s = %q, want %q", p, got, w)
			}
		}
		if _, ok := files["/ctx/ignored.txt"]; ok {
			t.Error("/ctx/ignored.txt is in the image although .dockerignore excludes it")
		}
		registrytest.AssertNoTags(t, r)
	})
}

func TestBuildMultiPlatform(t *testing.T) {
	forEachEndpoint(t, []string{testenv.Registry, testenv.Base}, func(t *testing.T, b Builder, env map[string]string) {
		ctxDir := t.TempDir()
		writeFiles(t, ctxDir, map[string]string{
			// The nonce keeps the RUN step out of the cache, so every run really emulates arm64.
			"Dockerfile": fmt.Sprintf("ARG BASE\nFROM ${BASE}\nRUN uname -m > /machine && echo %d > /nonce\nCOPY hello.txt /hello.txt\n", time.Now().UnixNano()),
			"hello.txt":  "multi\n",
		})
		repo := testRepo(t, env[testenv.Registry])
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		start := time.Now()
		res, err := b.Build(ctx, Request{
			ContextDir: ctxDir,
			Dockerfile: filepath.Join(ctxDir, "Dockerfile"),
			Platforms:  []string{"linux/amd64", "linux/arm64"},
			BuildArgs:  map[string]string{"BASE": env[testenv.Base]},
			Repository: repo,
			Progress:   logProgress(t),
		})
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		t.Logf("built %s@%s in %s", repo, res.Digest, time.Since(start))
		if !slices.Equal(res.Platforms, []string{"linux/amd64", "linux/arm64"}) {
			t.Errorf("Platforms = %v", res.Platforms)
		}
		r, err := name.NewRepository(repo)
		if err != nil {
			t.Fatal(err)
		}
		ref := r.Digest(res.Digest)
		desc, err := remote.Head(ref)
		if err != nil {
			t.Fatalf("HEAD %s: %v", ref, err)
		}
		if desc.Digest.String() != res.Digest {
			t.Errorf("registry serves %s, Result.Digest = %s", desc.Digest, res.Digest)
		}
		if desc.MediaType != types.OCIImageIndex {
			t.Errorf("media type = %s, want an OCI index", desc.MediaType)
		}
		idx, err := remote.Index(ref)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		wantMachine := map[string]string{"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
		var got []string
		for _, m := range im.Manifests {
			if m.Platform == nil {
				t.Errorf("index entry %s has no platform", m.Digest)
				continue
			}
			p := m.Platform.OS + "/" + m.Platform.Architecture
			if m.Platform.Variant != "" {
				p += "/" + m.Platform.Variant
			}
			got = append(got, p)
			img, err := idx.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			files := registrytest.Files(t, img, "/machine", "/hello.txt")
			if strings.TrimSpace(files["/machine"]) != wantMachine[p] {
				t.Errorf("%s: /machine = %q, want %q", p, files["/machine"], wantMachine[p])
			}
			if files["/hello.txt"] != "multi\n" {
				t.Errorf("%s: /hello.txt = %q", p, files["/hello.txt"])
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
			t.Errorf("index platforms = %v, want exactly linux/amd64 and linux/arm64", got)
		}
		registrytest.AssertNoTags(t, r)
	})
}

// startSleepingBuild starts a build whose RUN step sleeps 30 s and returns, once that step is
// running, the channel its result arrives on.
func startSleepingBuild(ctx context.Context, t *testing.T, b Builder, env map[string]string, platforms []string) <-chan error {
	t.Helper()
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{
		// The nonce keeps the step out of the cache.
		"Dockerfile": fmt.Sprintf("ARG BASE\nFROM ${BASE}\nRUN echo %d && sleep 30\n", time.Now().UnixNano()),
	})
	var once sync.Once
	running := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := b.Build(ctx, Request{
			ContextDir: ctxDir,
			Dockerfile: filepath.Join(ctxDir, "Dockerfile"),
			Platforms:  platforms,
			BuildArgs:  map[string]string{"BASE": env[testenv.Base]},
			Repository: testRepo(t, env[testenv.Registry]),
			Progress: func(s *client.SolveStatus) {
				for _, v := range s.Vertexes {
					if strings.Contains(v.Name, "sleep 30") && v.Started != nil {
						once.Do(func() { close(running) })
					}
				}
			},
		})
		errc <- err
	}()
	select {
	case <-running:
	case err := <-errc:
		t.Fatalf("Build ended before the sleep started: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the sleep step never started")
	}
	return errc
}

func TestBuildCancel(t *testing.T) {
	forEachEndpoint(t, []string{testenv.Registry, testenv.Base}, func(t *testing.T, b Builder, env map[string]string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := startSleepingBuild(ctx, t, b, env, nil)
		cancelled := time.Now()
		cancel()
		select {
		case err := <-errc:
			t.Logf("Build returned %v after cancel: %v", time.Since(cancelled), err)
			if err == nil {
				t.Fatal("Build succeeded although cancelled")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error does not wrap context.Canceled: %v", err)
			}
			var be *Error
			if !errors.As(err, &be) || be.Step != StepBuild {
				t.Errorf("error is not a build-step *Error: %#v", err)
			}
			if d := time.Since(cancelled); d > 10*time.Second {
				t.Errorf("Build took %s to return after cancel", d)
			}
		case <-time.After(25 * time.Second):
			t.Fatal("Build did not return within 25s of cancel")
		}
	})
}

func TestBuildFailingStep(t *testing.T) {
	forEachEndpoint(t, []string{testenv.Registry, testenv.Base}, func(t *testing.T, b Builder, env map[string]string) {
		ctxDir := t.TempDir()
		writeFiles(t, ctxDir, map[string]string{
			"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN echo the-marker-output-line && false\n",
		})
		repo := testRepo(t, env[testenv.Registry])
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_, err := b.Build(ctx, Request{
			ContextDir: ctxDir,
			Dockerfile: filepath.Join(ctxDir, "Dockerfile"),
			Platforms:  []string{"linux/amd64"},
			BuildArgs:  map[string]string{"BASE": env[testenv.Base]},
			Repository: repo,
			NoCache:    true,
		})
		if err == nil {
			t.Fatal("Build succeeded; want the RUN false failure")
		}
		t.Logf("error: %v", err)
		var be *Error
		if !errors.As(err, &be) {
			t.Fatalf("error is not a *Error: %#v", err)
		}
		if be.Step != StepBuild {
			t.Errorf("Step = %q, want build", be.Step)
		}
		msg := err.Error()
		for _, want := range []string{repo, "linux/amd64", "RUN echo the-marker-output-line", "output:\nthe-marker-output-line", be.Endpoint} {
			if !strings.Contains(msg, want) {
				t.Errorf("error does not mention %q", want)
			}
		}
		if !strings.Contains(be.Vertex, "RUN") {
			t.Errorf("Vertex = %q, want the RUN step", be.Vertex)
		}
		if !strings.Contains(be.Output, "the-marker-output-line") {
			t.Errorf("Output = %q, want the step's output", be.Output)
		}
	})
}

func TestBuildAuthRegistry(t *testing.T) {
	vars := []string{testenv.AuthRegistry, testenv.AuthUser, testenv.AuthPassword, testenv.Base}
	forEachEndpoint(t, vars, func(t *testing.T, b Builder, env map[string]string) {
		authBase := env[testenv.AuthRegistry] + "/base/busybox:latest"
		ctxDir := t.TempDir()
		writeFiles(t, ctxDir, map[string]string{
			"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN echo auth > /auth\n",
		})
		creds := func(user, pass string) func(string) (string, string, error) {
			return func(host string) (string, string, error) {
				if host == env[testenv.AuthRegistry] {
					return user, pass, nil
				}
				return "", "", nil
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		req := Request{
			ContextDir: ctxDir,
			Dockerfile: filepath.Join(ctxDir, "Dockerfile"),
			Platforms:  []string{"linux/amd64"},
			BuildArgs:  map[string]string{"BASE": authBase},
			Repository: testRepo(t, env[testenv.AuthRegistry]),
		}

		t.Run("right credentials", func(t *testing.T) {
			req := req
			req.Credentials = creds(env[testenv.AuthUser], env[testenv.AuthPassword])
			res, err := b.Build(ctx, req)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			auth := remote.WithAuth(&authn.Basic{Username: env[testenv.AuthUser], Password: env[testenv.AuthPassword]})
			registrytest.AssertPushedByDigest(t, req.Repository, res.Digest, auth)
		})

		t.Run("wrong password", func(t *testing.T) {
			const wrong = "not-the-password-Zq8x"
			req := req
			req.NoCache = true
			req.Credentials = creds(env[testenv.AuthUser], wrong)
			var mu sync.Mutex
			var progress strings.Builder
			req.Progress = func(s *client.SolveStatus) {
				mu.Lock()
				defer mu.Unlock()
				for _, v := range s.Vertexes {
					progress.WriteString(v.Name + v.Error + "\n")
				}
				for _, l := range s.Logs {
					progress.Write(l.Data)
				}
			}
			_, err := b.Build(ctx, req)
			if err == nil {
				t.Fatal("Build succeeded with a wrong password")
			}
			t.Logf("error: %v", err)
			for _, secret := range []string{wrong, env[testenv.AuthPassword]} {
				if strings.Contains(err.Error(), secret) {
					t.Error("the error contains a password")
				}
				mu.Lock()
				if strings.Contains(progress.String(), secret) {
					t.Error("the progress contains a password")
				}
				mu.Unlock()
			}
			if !strings.Contains(err.Error(), "load metadata for "+authBase) {
				t.Errorf("error does not name the base image %s", authBase)
			}
			var be *Error
			if !errors.As(err, &be) || be.Step != StepBuild {
				t.Errorf("error is not a build-step *Error: %#v", err)
			}
		})

		t.Run("wrong password on push", func(t *testing.T) {
			const wrong = "not-the-password-Zq8x"
			req := req
			req.BuildArgs = map[string]string{"BASE": env[testenv.Base]} // anonymous pull
			req.Credentials = creds(env[testenv.AuthUser], wrong)
			_, err := b.Build(ctx, req)
			if err == nil {
				t.Fatal("Build succeeded with a wrong password")
			}
			t.Logf("error: %v", err)
			if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), env[testenv.AuthPassword]) {
				t.Error("the error contains a password")
			}
			if !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
				t.Error("the error does not say the registry refused the credentials")
			}
			var be *Error
			if !errors.As(err, &be) || be.Step != StepPush {
				t.Errorf("error is not a push-step *Error: %#v", err)
			}
		})
	})
}

func TestInfo(t *testing.T) {
	forEachEndpoint(t, nil, func(t *testing.T, b Builder, env map[string]string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		info, err := b.Info(ctx)
		if err != nil {
			t.Fatalf("Info: %v", err)
		}
		t.Logf("%+v", info)
		if info.NativePlatform == "" || !slices.Contains(info.Platforms, info.NativePlatform) {
			t.Errorf("native platform %q not among %v", info.NativePlatform, info.Platforms)
		}
		if !slices.Contains(info.Platforms, "linux/arm64") {
			t.Errorf("platforms %v lack linux/arm64 (qemu binfmt)", info.Platforms)
		}
		switch info.Kind {
		case KindDocker:
			if info.DaemonVersion == "" || info.APIVersion == "" {
				t.Errorf("docker info lacks versions: %+v", info)
			}
			if info.MultiPlatform {
				t.Error("docker endpoint claims one-solve multi-platform")
			}
		case KindBuildKit:
			if info.BuildKitVersion == "" || !info.MultiPlatform {
				t.Errorf("buildkit info: %+v", info)
			}
		default:
			t.Errorf("Kind = %q", info.Kind)
		}
	})
}

func TestBuildEndpointDies(t *testing.T) {
	for _, ec := range endpointCases {
		t.Run(ec.name, func(t *testing.T) {
			t.Parallel()
			env := testenv.Require(t, ec.envVar, testenv.Registry, testenv.Base)
			target := strings.TrimPrefix(env[ec.envVar], "unix://")
			proxy := testenv.StartSocketProxy(t, target)
			endpoint := ec.endpoint(proxy.Addr)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			nb, err := New(ctx, endpoint)
			b := publishing{nb}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer b.Close()

			errc := startSleepingBuild(ctx, t, b, env, []string{"linux/amd64"})
			killed := time.Now()
			proxy.Kill()
			select {
			case err := <-errc:
				t.Logf("Build returned after %v: %v", time.Since(killed), err)
				if err == nil {
					t.Fatal("Build succeeded although the endpoint died")
				}
				var be *Error
				if !errors.As(err, &be) || be.Step != StepBuild {
					t.Errorf("error is not a build-step *Error: %#v", err)
				}
				if !strings.Contains(err.Error(), endpoint) {
					t.Errorf("error does not name the endpoint %s", endpoint)
				}
			case <-time.After(25 * time.Second):
				t.Fatal("Build did not return within 25s of the endpoint dying")
			}
		})
	}
}

func TestBuildUnreachableEndpoint(t *testing.T) {
	dir := t.TempDir()
	for _, endpoint := range []string{"unix://" + dir + "/missing.sock", "docker+unix://" + dir + "/missing.sock"} {
		t.Run(endpoint, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b, err := New(ctx, endpoint)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer b.Close()
			ctxDir := t.TempDir()
			writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM scratch\n"})
			start := time.Now()
			_, err = b.Build(ctx, Request{
				ContextDir: ctxDir,
				Dockerfile: filepath.Join(ctxDir, "Dockerfile"),
				Platforms:  []string{"linux/arm64"},
				Repository: "127.0.0.1:5000/x",
			})
			t.Logf("after %v: %v", time.Since(start), err)
			if err == nil {
				t.Fatal("Build succeeded against a missing socket")
			}
			for _, want := range []string{"127.0.0.1:5000/x", "linux/arm64", endpoint} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q", want)
				}
			}
			if time.Since(start) > 20*time.Second {
				t.Errorf("took %v to fail", time.Since(start))
			}
		})
	}
}

// The caller reports changed=false when a rebuild yields the digest the tags already hold,
// so a fully cached rebuild must push the same digest.
func TestBuildCachedRebuildSameDigest(t *testing.T) {
	forEachEndpoint(t, []string{testenv.Registry, testenv.Base}, func(t *testing.T, b Builder, env map[string]string) {
		ctxDir := t.TempDir()
		writeFiles(t, ctxDir, map[string]string{
			"Dockerfile": fmt.Sprintf("ARG BASE\nFROM ${BASE}\nRUN echo %d > /nonce && uname -m > /machine\nCOPY hello.txt /\n", time.Now().UnixNano()),
			"hello.txt":  "again\n",
		})
		repo := testRepo(t, env[testenv.Registry])
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		for _, plats := range [][]string{{"linux/amd64"}, {"linux/amd64", "linux/arm64"}} {
			req := Request{
				ContextDir: ctxDir,
				Dockerfile: filepath.Join(ctxDir, "Dockerfile"),
				Platforms:  plats,
				BuildArgs:  map[string]string{"BASE": env[testenv.Base]},
				Repository: repo,
			}
			var digests []string
			for i := range 2 {
				start := time.Now()
				res, err := b.Build(ctx, req)
				if err != nil {
					t.Fatalf("Build %d of %v: %v", i+1, plats, err)
				}
				t.Logf("build %d of %v: %s in %s", i+1, plats, res.Digest, time.Since(start))
				digests = append(digests, res.Digest)
			}
			if digests[0] != digests[1] {
				t.Errorf("%v: cached rebuild pushed %s, first build %s", plats, digests[1], digests[0])
			}
		}
	})
}

// TestAutoEndpoint: with both daemons answering, BUILDKIT_HOST set means BuildKit; without it the
// Docker daemon of DOCKER_HOST is used; "docker" takes the Docker daemon whatever BUILDKIT_HOST
// says. Info proves the chosen endpoint answers and is the one reported.
func TestAutoEndpoint(t *testing.T) {
	env := testenv.Require(t, testenv.Docker, testenv.BuildKit)
	both := map[string]string{"DOCKER_HOST": env[testenv.Docker], "BUILDKIT_HOST": env[testenv.BuildKit], "DOCKER_CONFIG": t.TempDir()}
	tests := []struct {
		name       string
		endpoint   string
		env        map[string]string
		wantKind   Kind
		wantEP     string
		wantOrigin string
	}{
		{name: "BUILDKIT_HOST set while docker answers", env: both, wantKind: KindBuildKit, wantEP: env[testenv.BuildKit], wantOrigin: OriginBuildKitHost},
		{name: "no BUILDKIT_HOST", env: map[string]string{"DOCKER_HOST": env[testenv.Docker]}, wantKind: KindDocker, wantEP: "docker+" + env[testenv.Docker], wantOrigin: OriginDockerHost},
		{name: "docker with BUILDKIT_HOST set", endpoint: "docker", env: both, wantKind: KindDocker, wantEP: "docker+" + env[testenv.Docker], wantOrigin: OriginDockerHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b, err := New(ctx, tt.endpoint, WithGetenv(func(k string) string { return tt.env[k] }))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if sel := b.Selection(); sel != (Selection{tt.wantKind, tt.wantEP, tt.wantOrigin}) {
				t.Errorf("selection %+v", sel)
			}
			info, err := b.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.Kind != tt.wantKind || info.Endpoint != tt.wantEP {
				t.Errorf("got %s at %s, want %s at %s", info.Kind, info.Endpoint, tt.wantKind, tt.wantEP)
			}
		})
	}
}

// TestDockerPushPolicy: the docker driver pushes through the publisher it is given (the
// registry client), so the registry client's rules hold for it: a registry that is neither on
// a loopback address nor marked insecure gets no plain HTTP, and no credential is sent to it.
// The same registry marked insecure gets the push, and the credentials: the test can fail.
func TestDockerPushPolicy(t *testing.T) {
	env := testenv.Require(t, testenv.Docker, testenv.Base)
	const user, password = "pusher", "canary-push-password-7c1"
	var requests, withAuth atomic.Int32
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		u, p, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "auth needed", http.StatusUnauthorized)
			return
		}
		withAuth.Add(1)
		if u != user || p != password {
			http.Error(w, "denied", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	host := "registry.nonloopback.test:" + strings.Split(addr, ":")[1] // not an address: not loopback
	dial := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := New(ctx, "docker+"+env[testenv.Docker])
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + env[testenv.Base] + "\n"})
	for _, insecure := range []bool{false, true} {
		opts := []registry.Option{registry.WithTransport(dial), registry.WithRetry(1, 0),
			registry.WithCredentials(host, registry.Credentials{Username: user, Password: password})}
		if insecure {
			opts = append(opts, registry.WithInsecure(host))
		}
		pub, err := registry.New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		requests.Store(0)
		withAuth.Store(0)
		res, err := b.Build(ctx, Request{
			ContextDir: ctxDir, Dockerfile: filepath.Join(ctxDir, "Dockerfile"), Platforms: []string{"linux/amd64"},
			Repository: host + "/team/app", Publisher: pub,
		})
		if !insecure {
			var be *Error
			if err == nil || !errors.As(err, &be) || be.Step != StepPush || !strings.Contains(err.Error(), "uses plain HTTP only for loopback registries and those marked insecure") {
				t.Fatalf("push to a plain-HTTP registry not marked insecure: %v", err)
			}
			if n := requests.Load(); n != 0 {
				t.Fatalf("the registry got %d plain HTTP requests (%d with credentials)", n, withAuth.Load())
			}
			continue
		}
		if err != nil {
			t.Fatalf("push to the registry marked insecure: %v", err)
		}
		if withAuth.Load() == 0 || !strings.HasPrefix(res.Digest, "sha256:") {
			t.Fatalf("the insecure push sent no credentials (%d requests) or gave no digest (%q)", requests.Load(), res.Digest)
		}
	}
}
