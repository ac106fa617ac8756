package buildah

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/client"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/registry/registrytest"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// storageDir is the storage all integration tests of the package share (so that base images
// are pulled once); TestMain removes it.
var storageDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "imagebuilder-buildah-test-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	storageDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newBuilder returns a builder on the shared storage whose work files go to a directory the
// test checks is empty at its end.
func newBuilder(t *testing.T) *Builder {
	t.Helper()
	prog := testenv.Buildah(t)
	tmp := t.TempDir()
	b, err := New(Config{Dir: storageDir, Program: prog, TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
			t.Errorf("the build left %d files in its temporary directory (%s, ...)", len(ents), ents[0].Name())
		}
	})
	return b
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

func testRepo(t *testing.T, registry string) string {
	n := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	return fmt.Sprintf("%s/buildah-test/%s-%d", registry, n, time.Now().UnixNano())
}

// recorder keeps every status event of a build.
type recorder struct {
	mu       sync.Mutex
	vertexes map[string]*client.Vertex // by digest, the last state
	names    []string                  // in start order
	logs     strings.Builder
}

func (r *recorder) progress(t *testing.T) func(*client.SolveStatus) {
	r.vertexes = map[string]*client.Vertex{}
	return func(s *client.SolveStatus) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, v := range s.Vertexes {
			if _, ok := r.vertexes[v.Digest.String()]; !ok {
				r.names = append(r.names, v.Name)
			}
			r.vertexes[v.Digest.String()] = v
			if v.Completed != nil {
				t.Logf("step done: %s (cached=%v) %s", v.Name, v.Cached, v.Error)
			}
		}
		for _, l := range s.Logs {
			r.logs.Write(l.Data)
		}
	}
}

// byName returns the last state of the vertex whose name contains s.
func (r *recorder) byName(s string) *client.Vertex {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range r.vertexes {
		if strings.Contains(v.Name, s) {
			return v
		}
	}
	return nil
}

// layerBytes returns every layer of img, uncompressed, concatenated.
func layerBytes(t *testing.T, img v1.Image) []byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestBuildSinglePlatform(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base)
	b := newBuilder(t)
	// Both paths hold a comma, which buildah's -f would split at.
	ctxDir, dfDir := filepath.Join(t.TempDir(), "ctx,dir"), filepath.Join(t.TempDir(), "df,dir")
	testenv.WriteFiles(t, ctxDir, map[string]string{
		"hello.txt":       "hello from the context\n",
		"ctx-ignored.txt": "the context's .dockerignore excludes this, but the Dockerfile's own wins\n",
		"df-ignored.txt":  "the Dockerfile's .dockerignore excludes this\n",
		".dockerignore":   "ctx-ignored.txt\n",
	})
	// The Dockerfile lives outside the context, with its own .dockerignore beside it, as
	// internal/pipeline writes an injected Dockerfile. The target is not the last stage.
	testenv.WriteFiles(t, dfDir, map[string]string{
		"build.Dockerfile": fmt.Sprintf(`ARG BASE
FROM ${BASE} AS app
ARG GREETING=unset
RUN uname -m > /machine && echo "$GREETING" > /greeting && echo %d > /nonce
COPY . /ctx/
FROM app AS extra
RUN echo not-the-target > /extra
`, time.Now().UnixNano()),
		"build.Dockerfile.dockerignore": "df-ignored.txt\n",
	})
	repo := testRepo(t, env[testenv.Registry])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var rec recorder
	req := builder.Request{
		ContextDir: ctxDir,
		Dockerfile: filepath.Join(dfDir, "build.Dockerfile"),
		Platforms:  []string{"linux/amd64"},
		BuildArgs:  map[string]string{"BASE": env[testenv.Base], "GREETING": "hi there"},
		Labels:     map[string]string{"org.opencontainers.image.revision": "abc123"},
		Target:     "app",
		Repository: repo,
		Progress:   rec.progress(t),
	}
	res, err := b.Build(ctx, req)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if !slices.Equal(res.Platforms, []string{"linux/amd64"}) {
		t.Errorf("Platforms = %v, want [linux/amd64]", res.Platforms)
	}
	if res.Endpoint != "buildah:"+storageDir {
		t.Errorf("Endpoint = %q, want buildah:%s", res.Endpoint, storageDir)
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
	if desc.Digest.String() != res.Digest || desc.MediaType != types.OCIManifestSchema1 {
		t.Errorf("registry serves %s (%s), Result.Digest = %s; want the same OCI manifest", desc.Digest, desc.MediaType, res.Digest)
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
	files := registrytest.Files(t, img, "/machine", "/greeting", "/ctx/hello.txt", "/ctx/ctx-ignored.txt", "/ctx/df-ignored.txt", "/extra", "/etc/imagebuilder-base")
	for p, w := range map[string]string{"/machine": "x86_64", "/greeting": "hi there", "/ctx/hello.txt": "hello from the context", "/etc/imagebuilder-base": "busybox"} {
		if got, ok := files[p]; !ok {
			t.Errorf("%s missing from the image", p)
		} else if strings.TrimSpace(got) != w {
			t.Errorf("%s = %q, want %q", p, got, w)
		}
	}
	if _, ok := files["/ctx/df-ignored.txt"]; ok {
		t.Error("/ctx/df-ignored.txt is in the image although the Dockerfile's .dockerignore excludes it")
	}
	if _, ok := files["/ctx/ctx-ignored.txt"]; !ok {
		t.Error("/ctx/ctx-ignored.txt is missing: the Dockerfile's own .dockerignore must replace the context's")
	}
	if _, ok := files["/extra"]; ok {
		t.Error("/extra is in the image: the stage after the target was built")
	}
	if v := rec.byName("RUN uname -m"); v == nil || v.Completed == nil || v.Error != "" {
		t.Errorf("progress has no completed vertex for the RUN step: %v", rec.names)
	}
	registrytest.AssertNoTags(t, r)

	// Again, unchanged: every step cached, the same digest, nothing re-exported.
	var rec2 recorder
	req.Progress = rec2.progress(t)
	res2, err := b.Build(ctx, req)
	if err != nil {
		t.Fatalf("second Build: %v", err)
	}
	if res2.Digest != res.Digest {
		t.Errorf("cached rebuild gave %s, first build %s", res2.Digest, res.Digest)
	}
	if v := rec2.byName("RUN uname -m"); v == nil || !v.Cached {
		t.Errorf("the RUN step of the rebuild is not reported cached: %+v", v)
	}
	registrytest.AssertNoTags(t, r)
}

func TestBuildSecrets(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base)
	b := newBuilder(t)
	ctxDir := t.TempDir()
	const secret = "s3cr3t-value-Kq7w"
	testenv.WriteFiles(t, ctxDir, map[string]string{
		// The RUN step proves it read the secret (its hash) without writing it.
		"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN --mount=type=secret,id=token,required=true sha256sum /run/secrets/token | cut -d' ' -f1 > /token-sha\n",
	})
	repo := testRepo(t, env[testenv.Registry])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var rec recorder
	res, err := b.Build(ctx, builder.Request{
		ContextDir: ctxDir,
		Dockerfile: filepath.Join(ctxDir, "Dockerfile"),
		Platforms:  []string{"linux/amd64"},
		BuildArgs:  map[string]string{"BASE": env[testenv.Base]},
		Repository: repo,
		NoCache:    true,
		Secrets:    map[string][]byte{"token": []byte(secret)},
		Progress:   rec.progress(t),
	})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	r, _ := name.NewRepository(repo)
	img, err := remote.Image(r.Digest(res.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(registrytest.Files(t, img, "/token-sha")["/token-sha"]), fmt.Sprintf("%x", sha256.Sum256([]byte(secret))); got != want {
		t.Errorf("/token-sha = %q, want %s: the secret was not mounted", got, want)
	}
	if strings.Contains(string(layerBytes(t, img)), secret) {
		t.Error("the secret is in the image's layers")
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), secret) {
		t.Error("the secret is in the image's configuration")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if strings.Contains(rec.logs.String(), secret) {
		t.Error("the secret is in the progress output")
	}
}

func TestBuildAuthRegistry(t *testing.T) {
	env := testenv.Require(t, testenv.AuthRegistry, testenv.AuthUser, testenv.AuthPassword, testenv.Registry)
	b := newBuilder(t)
	authHost := env[testenv.AuthRegistry]
	ctxDir := t.TempDir()
	testenv.WriteFiles(t, ctxDir, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s/base/busybox:latest\nRUN echo auth %d > /auth\n", authHost, time.Now().UnixNano()),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	req := builder.Request{
		ContextDir: ctxDir,
		Dockerfile: filepath.Join(ctxDir, "Dockerfile"),
		Platforms:  []string{"linux/amd64"},
		Repository: testRepo(t, authHost),
	}

	t.Run("through the callback", func(t *testing.T) {
		req := req
		var mu sync.Mutex
		var asked []string
		req.Credentials = func(host string) (string, string, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, host)
			if host == authHost {
				return env[testenv.AuthUser], env[testenv.AuthPassword], nil
			}
			return "", "", nil
		}
		res, err := b.Build(ctx, req)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		auth := remote.WithAuth(&authn.Basic{Username: env[testenv.AuthUser], Password: env[testenv.AuthPassword]})
		registrytest.AssertPushedByDigest(t, req.Repository, res.Digest, auth)
		mu.Lock()
		defer mu.Unlock()
		for _, h := range asked {
			if h != authHost {
				t.Errorf("credentials asked for %s, which the build does not involve", h)
			}
		}
		if len(asked) == 0 {
			t.Error("the callback was never asked")
		}
	})

	t.Run("without credentials", func(t *testing.T) {
		// Whatever the user's Docker or containers auth files hold, the pull fails: the
		// callback is the only source of credentials. A storage of its own holds no copy
		// of the base image pulled with credentials before.
		home := t.TempDir()
		cfg := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, authHost, base64.StdEncoding.EncodeToString([]byte(env[testenv.AuthUser]+":"+env[testenv.AuthPassword])))
		testenv.WriteFiles(t, home, map[string]string{".docker/config.json": cfg, "auth.json": cfg, ".config/containers/auth.json": cfg})
		t.Setenv("HOME", home)
		t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))
		t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(home, "auth.json"))
		t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
		fresh, err := New(Config{Dir: t.TempDir(), Program: b.cfg.Program, TempDir: b.cfg.TempDir})
		if err != nil {
			t.Fatal(err)
		}
		req := req
		req.NoCache = true
		_, err = fresh.Build(ctx, req)
		if err == nil {
			t.Fatal("Build succeeded without credentials")
		}
		t.Logf("error: %v", err)
		var be *builder.Error
		if !errors.As(err, &be) || be.Step != builder.StepBuild {
			t.Errorf("error is not a build-step *builder.Error: %#v", err)
		}
		if !strings.Contains(err.Error(), authHost+"/base/busybox") {
			t.Errorf("error does not name the base image")
		}
	})

	t.Run("wrong password on push", func(t *testing.T) {
		const wrong = "not-the-password-Zq8x"
		req := req
		testenv.WriteFiles(t, ctxDir, map[string]string{"Dockerfile.anon": fmt.Sprintf("FROM %s/base/busybox:latest\n", env[testenv.Registry])})
		req.Dockerfile = filepath.Join(ctxDir, "Dockerfile.anon")
		req.Credentials = func(host string) (string, string, error) {
			if host == authHost {
				return env[testenv.AuthUser], wrong, nil
			}
			return "", "", nil
		}
		_, err := b.Build(ctx, req)
		if err == nil {
			t.Fatal("Build succeeded with a wrong password")
		}
		t.Logf("error: %v", err)
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), env[testenv.AuthPassword]) {
			t.Error("the error contains a password")
		}
		var be *builder.Error
		if !errors.As(err, &be) || be.Step != builder.StepPush {
			t.Errorf("error is not a push-step *builder.Error: %#v", err)
		}
	})
}

// The behaviours every builder shares (single and multi-platform, target, secrets, a failing
// RUN, credentials for the registries involved) are the conformance suite's, which
// cmd/imagebuilder-builder-buildah runs on the plugin; these tests cover what is buildah's own.

// TestBuildStop: a build stopped mid-RUN, by cancelling its context or by closing the builder
// (as the plugin does when imagebuilder closes it), returns context.Canceled at once, leaves no
// process of the build running and removes its files (newBuilder checks).
func TestBuildStop(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base)
	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			b := newBuilder(t)
			ctxDir := t.TempDir()
			marker := fmt.Sprintf("imagebuilder-stop-%d", time.Now().UnixNano())
			testenv.WriteFiles(t, ctxDir, map[string]string{
				"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN echo started && sleep 300 # " + marker + "\n",
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var rec recorder
			progress := rec.progress(t)
			started := make(chan struct{})
			var once sync.Once
			errc := make(chan error, 1)
			go func() {
				_, err := b.Build(ctx, builder.Request{
					ContextDir: ctxDir,
					Dockerfile: filepath.Join(ctxDir, "Dockerfile"),
					Platforms:  []string{"linux/amd64"},
					BuildArgs:  map[string]string{"BASE": env[testenv.Base]},
					Repository: testRepo(t, env[testenv.Registry]),
					Secrets:    map[string][]byte{"s": []byte("x")},
					Progress: func(s *client.SolveStatus) {
						progress(s)
						for _, l := range s.Logs {
							if strings.Contains(string(l.Data), "started") {
								once.Do(func() { close(started) })
							}
						}
					},
				})
				errc <- err
			}()
			select {
			case <-started:
			case err := <-errc:
				t.Fatalf("Build ended before the RUN step started: %v", err)
			case <-time.After(3 * time.Minute):
				t.Fatal("the RUN step never started")
			}
			t0 := time.Now()
			if how == "cancel" {
				cancel()
			} else {
				b.Close()
			}
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("error = %v, want context.Canceled", err)
				}
				t.Logf("stopped in %s: %v", time.Since(t0), err)
				if how == "close" && time.Since(t0) > closeWait {
					t.Errorf("the build outlived Close's wait (%s)", time.Since(t0))
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Build did not return within 30s")
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				out, _ := exec.Command("pgrep", "-f", marker).Output()
				if len(strings.TrimSpace(string(out))) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("processes of the stopped build are still running: %s", out)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	b := newBuilder(t)
	info, err := b.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("info: %+v", info)
	if info.Kind != Kind || info.Version == "" || info.NativePlatform != "linux/amd64" {
		t.Errorf("Info = %+v, want kind buildah, a version, native linux/amd64", info)
	}
	if !slices.Contains(info.Platforms, "linux/arm64") {
		t.Errorf("Platforms = %v, want linux/arm64 (qemu binfmt)", info.Platforms)
	}
}
