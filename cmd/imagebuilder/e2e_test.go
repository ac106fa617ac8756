package main

// End-to-end tests of the built binary against the real services that scripts/testenv.sh
// starts: BuildKit, a Docker daemon, registries on 127.0.0.1. They skip when the services are
// not described in the environment, and fail instead under IMAGEBUILDER_REQUIRE_INTEGRATION=1.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// binary builds imagebuilder once per test process.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "imagebuilder-e2e-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "imagebuilder")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		// The buildah builder plugin, found next to imagebuilder by plugin:buildah, and the
		// daemons' program, which imagebuilder serve and registry serve run.
		for _, prog := range []string{"imagebuilder-builder-buildah", "imagebuilder-server"} {
			if out, err = exec.Command("go", "build", "-o", filepath.Join(dir, prog), "../"+prog).CombinedOutput(); err != nil {
				binErr = fmt.Errorf("go build: %v\n%s", err, out)
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type ibRun struct {
	code           int
	stdout, stderr string
	res            result.Result
}

// ib runs the binary with params on stdin, in its own TMPDIR so leftover workspaces show.
func ibBinary(t *testing.T, tmp string, params any, args ...string) ibRun {
	t.Helper()
	return ibBinaryWith(t, binOpts{tmp: tmp}, params, args...)
}

// binOpts change how ibBinaryWith runs the binary.
type binOpts struct {
	tmp string
	// env overrides the environment: a key with an empty value is removed.
	env map[string]string
	// nullStderr leaves the command's stderr nil, so exec opens it on /dev/null (2>/dev/null).
	nullStderr bool
}

func ibBinaryWith(t *testing.T, o binOpts, params any, args ...string) ibRun {
	t.Helper()
	data, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), args...)
	cmd.Stdin = bytes.NewReader(data)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	if !o.nullStderr {
		cmd.Stderr = &errb
	}
	env := map[string]string{"TMPDIR": o.tmp}
	for k, v := range o.env {
		env[k] = v
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !hasKey(env, k) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	err = cmd.Run()
	r := ibRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if r.stdout != "" {
		if err := json.Unmarshal(out.Bytes(), &r.res); err != nil {
			t.Fatalf("stdout is not one JSON result: %v\n%s", err, r.stdout)
		}
	}
	return r
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// noWorkspace fails when a workspace was left behind in tmp.
func noWorkspace(t *testing.T, tmp string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(tmp, "imagebuilder-*"))
	if len(left) > 0 {
		t.Errorf("workspace left behind: %v", left)
	}
}

// indexPlatforms lists the platforms of the index at ref.
func indexPlatforms(t *testing.T, ref string, opts ...remote.Option) []string {
	t.Helper()
	r, _ := name.ParseReference(ref, name.Insecure)
	idx, err := remote.Index(r, opts...)
	if err != nil {
		t.Fatalf("reading index %s: %v", ref, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range m.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue // attestations
		}
		out = append(out, d.Platform.OS+"/"+d.Platform.Architecture)
	}
	sort.Strings(out)
	return out
}

// fileIn reads a file from the image at ref for a platform ("" for a single-platform image).
func fileIn(t *testing.T, ref, platform, path string, opts ...remote.Option) string {
	t.Helper()
	return testenv.FileInImage(t, ref, platform, path, opts...)
}

// endpoints are the build engines every scenario runs on: the built-in drivers, and the buildah
// plugin (built next to the binary) on a storage directory the test process removes at its end.
func endpoints(t *testing.T) map[string]string {
	env := testenv.Require(t, "IMAGEBUILDER_TEST_DOCKER", "IMAGEBUILDER_TEST_BUILDKIT")
	testenv.Buildah(t)
	return map[string]string{
		"docker":   "docker",
		"buildkit": env["IMAGEBUILDER_TEST_BUILDKIT"],
		"buildah":  "plugin:buildah?root=" + filepath.Join(filepath.Dir(binary(t)), "buildah-storage"),
	}
}

const demoDockerfile = `ARG BASE=%s
FROM ${BASE}
COPY hello.txt /app/hello.txt
RUN echo "$(uname -m) $(cat /etc/imagebuilder-base)" > /app/build-info
`

func request(repo, registry string, images ...map[string]any) map[string]any {
	return map[string]any{
		"source": map[string]any{"git_repo": map[string]any{"url": repo, "version": "main"}},
		"target": map[string]any{"images": images, "registry": map[string]any{"url": registry}},
	}
}

// TestBuildGitVariantsMultiArch: a git source built into two variants, two platforms each, on
// both endpoints; digests, files, machines and bases are checked in the registry. Then the same
// request again reports changed: false.
func TestBuildGitVariantsMultiArch(t *testing.T) {
	env := testenv.Require(t, "IMAGEBUILDER_TEST_REGISTRY", "IMAGEBUILDER_TEST_BASE", "IMAGEBUILDER_TEST_BASE_ALT")
	reg := env["IMAGEBUILDER_TEST_REGISTRY"]
	repo := testenv.GitRepoURL(t, map[string]string{
		"Dockerfile": fmt.Sprintf(demoDockerfile, env["IMAGEBUILDER_TEST_BASE"]),
		"hello.txt":  "hello\n",
	})
	for kind, endpoint := range endpoints(t) {
		t.Run(kind, func(t *testing.T) {
			tmp := t.TempDir()
			tag := testenv.UniqueTag(kind)
			p := request(repo, reg,
				map[string]any{"image": "e2e/variants", "tag": tag, "platforms": []string{"linux/amd64", "linux/arm64"}},
				map[string]any{"image": "e2e/variants", "tag": tag + "-alt", "base": env["IMAGEBUILDER_TEST_BASE_ALT"],
					"platforms": []string{"linux/amd64", "linux/arm64"}, "tags": []string{tag + "-alt2"}},
			)
			r := ibBinary(t, tmp, p, "build", "--builder", endpoint, "--progress", "plain")
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			noWorkspace(t, tmp)
			if !r.res.Changed || len(r.res.Images) != 2 || r.res.Source == nil || len(r.res.Source.Commit) != 40 {
				t.Fatalf("unexpected result: %s", r.stdout)
			}
			for i, want := range []string{"busybox", "alt"} {
				img := r.res.Images[i]
				if got := testenv.RegistryDigest(t, img.Ref, nil); got != img.Digest || got == "" {
					t.Errorf("%s: result digest %s, registry serves %s", img.Ref, img.Digest, got)
				}
				if got := indexPlatforms(t, img.Ref); strings.Join(got, ",") != "linux/amd64,linux/arm64" {
					t.Errorf("%s: index platforms %v", img.Ref, got)
				}
				for plat, machine := range map[string]string{"linux/amd64": "x86_64", "linux/arm64": "aarch64"} {
					info := fileIn(t, img.Ref, plat, "/app/build-info")
					if info != machine+" "+want+"\n" {
						t.Errorf("%s %s: build-info %q, want %q", img.Ref, plat, info, machine+" "+want)
					}
				}
				if got := fileIn(t, img.Ref, "linux/arm64", "/app/hello.txt"); got != "hello\n" {
					t.Errorf("%s: hello.txt %q", img.Ref, got)
				}
			}
			alt := r.res.Images[1]
			if alt.Base == nil || alt.Base.To != env["IMAGEBUILDER_TEST_BASE_ALT"] {
				t.Errorf("variant base not reported: %+v", alt.Base)
			}
			if got := testenv.RegistryDigest(t, alt.Repository+":"+tag+"-alt2", nil); got != alt.Digest {
				t.Errorf("extra tag points at %s, want %s", got, alt.Digest)
			}

			again := ibBinary(t, tmp, p, "build", "--builder", endpoint, "--progress", "quiet")
			if again.code != 0 || again.res.Changed {
				t.Fatalf("unchanged request: exit %d, changed %v\n%s\n%s", again.code, again.res.Changed, again.stdout, again.stderr)
			}
			for i := range again.res.Images {
				if again.res.Images[i].Digest != r.res.Images[i].Digest || again.res.Images[i].Changed {
					t.Errorf("rebuild of %s: digest %s -> %s, changed %v", again.res.Images[i].Ref,
						r.res.Images[i].Digest, again.res.Images[i].Digest, again.res.Images[i].Changed)
				}
			}
		})
	}
}

// TestBuildMultiStageVariant: `base` replaces the first image-based stage of a multi-stage
// Dockerfile; the final stage copies from it.
func TestBuildMultiStageVariant(t *testing.T) {
	env := testenv.Require(t, "IMAGEBUILDER_TEST_REGISTRY", "IMAGEBUILDER_TEST_BASE", "IMAGEBUILDER_TEST_BASE_ALT")
	repo := testenv.GitRepoURL(t, map[string]string{
		"Dockerfile": fmt.Sprintf(`FROM --platform=$BUILDPLATFORM %[1]s AS build
RUN cp /etc/imagebuilder-base /built-on
# FROM in a comment must not confuse anything
from %[1]s
COPY --from=build /built-on /built-on
`, env["IMAGEBUILDER_TEST_BASE"]),
	})
	for kind, endpoint := range endpoints(t) {
		t.Run(kind, func(t *testing.T) {
			tag := testenv.UniqueTag(kind)
			r := ibBinary(t, t.TempDir(), request(repo, env["IMAGEBUILDER_TEST_REGISTRY"],
				map[string]any{"image": "e2e/multistage", "tag": tag, "base": env["IMAGEBUILDER_TEST_BASE_ALT"]}),
				"build", "--builder", endpoint, "--progress", "quiet")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			ref := r.res.Images[0].Ref
			if got := fileIn(t, ref, "", "/built-on"); got != "alt\n" {
				t.Errorf("first stage built on %q, want alt", got)
			}
			if got := fileIn(t, ref, "", "/etc/imagebuilder-base"); got != "busybox\n" {
				t.Errorf("final stage base %q, want busybox (untouched)", got)
			}
		})
	}
}

// TestBuildAllOrNothing: when the second image fails, no tag of the request exists, the exit
// status is 1, the result names the image and step, and the workspace is gone.
func TestBuildAllOrNothing(t *testing.T) {
	env := testenv.Require(t, "IMAGEBUILDER_TEST_REGISTRY", "IMAGEBUILDER_TEST_BASE")
	repo := testenv.GitRepoURL(t, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %[1]s AS ok\nRUN echo ok > /ok\n\nFROM %[1]s AS broken\nRUN echo failing on purpose && false\n", env["IMAGEBUILDER_TEST_BASE"]),
	})
	for kind, endpoint := range endpoints(t) {
		t.Run(kind, func(t *testing.T) {
			tmp := t.TempDir()
			tag := testenv.UniqueTag(kind)
			r := ibBinary(t, tmp, request(repo, env["IMAGEBUILDER_TEST_REGISTRY"],
				map[string]any{"image": "e2e/atomic", "tag": tag, "target": "ok"},
				map[string]any{"image": "e2e/atomic", "tag": tag + "-broken", "target": "broken"}),
				"build", "--builder", endpoint, "--progress", "plain")
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			noWorkspace(t, tmp)
			f := r.res.Failed
			if f == nil || f.Step != result.StepBuild || !strings.HasSuffix(f.Image, ":"+tag+"-broken") {
				t.Fatalf("failure not named: %+v\n%s", f, r.stdout)
			}
			if r.res.Changed {
				t.Error("a failed request reports changed")
			}
			for _, tg := range []string{tag, tag + "-broken"} {
				if d := testenv.RegistryDigest(t, env["IMAGEBUILDER_TEST_REGISTRY"]+"/e2e/atomic:"+tg, nil); d != "" {
					t.Errorf("tag %s exists after a failed request (%s)", tg, d)
				}
			}
		})
	}
}

// TestBuildAuthRegistry: the htpasswd registry accepts the right credentials; wrong ones fail
// clearly; the password never appears in stdout or stderr.
func TestBuildAuthRegistry(t *testing.T) {
	env := testenv.Require(t, "IMAGEBUILDER_TEST_AUTH_REGISTRY", "IMAGEBUILDER_TEST_AUTH_USER", "IMAGEBUILDER_TEST_AUTH_PASSWORD", "IMAGEBUILDER_TEST_AUTH_BASE")
	reg, user, pass := env["IMAGEBUILDER_TEST_AUTH_REGISTRY"], env["IMAGEBUILDER_TEST_AUTH_USER"], env["IMAGEBUILDER_TEST_AUTH_PASSWORD"]
	// The base comes from the authenticated registry too, so the pull needs the credentials.
	base := env["IMAGEBUILDER_TEST_AUTH_BASE"]
	repo := testenv.GitRepoURL(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo authed > /authed\n"})
	for kind, endpoint := range endpoints(t) {
		t.Run(kind, func(t *testing.T) {
			tag := testenv.UniqueTag(kind)
			p := request(repo, reg, map[string]any{"image": "e2e/auth", "tag": tag})
			p["target"].(map[string]any)["registry"] = map[string]any{"url": reg, "username": user, "password": pass}
			r := ibBinary(t, t.TempDir(), p, "build", "--builder", endpoint, "--progress", "plain")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, pass) {
				t.Fatal("the registry password appears in the output")
			}
			if d := testenv.RegistryDigest(t, r.res.Images[0].Ref, testenv.Basic(user, pass)); d != r.res.Images[0].Digest {
				t.Errorf("registry serves %s, result says %s", d, r.res.Images[0].Digest)
			}

			wrong := "wrong-" + pass
			p["target"].(map[string]any)["registry"] = map[string]any{"url": reg, "username": user, "password": wrong}
			p["target"].(map[string]any)["images"] = []map[string]any{{"image": "e2e/auth", "tag": tag + "-wrong"}}
			r = ibBinary(t, t.TempDir(), p, "build", "--builder", endpoint, "--progress", "plain")
			if r.code != 1 || r.res.Failed == nil {
				t.Fatalf("wrong password: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(strings.ToLower(r.res.Failed.Error), "unauthorized") && !strings.Contains(strings.ToLower(r.res.Failed.Error), "denied") && !strings.Contains(r.res.Failed.Error, "401") {
				t.Errorf("error does not say the credentials were refused: %s", r.res.Failed.Error)
			}
			if strings.Contains(r.stdout+r.stderr, wrong) || strings.Contains(r.stdout+r.stderr, pass) {
				t.Fatal("a password appears in the output")
			}
		})
	}
}

// TestBuildDryRun: nothing is pushed, the result says what would change.
func TestBuildDryRun(t *testing.T) {
	env := testenv.Require(t, "IMAGEBUILDER_TEST_REGISTRY", "IMAGEBUILDER_TEST_BASE", "IMAGEBUILDER_TEST_BASE_ALT", "IMAGEBUILDER_TEST_BUILDKIT")
	repo := testenv.GitRepoURL(t, map[string]string{"Dockerfile": "FROM " + env["IMAGEBUILDER_TEST_BASE"] + "\n"})
	tag := testenv.UniqueTag("dry")
	r := ibBinary(t, t.TempDir(), request(repo, env["IMAGEBUILDER_TEST_REGISTRY"],
		map[string]any{"image": "e2e/dry", "tag": tag, "base": env["IMAGEBUILDER_TEST_BASE_ALT"]}),
		"build", "--dry-run", "--builder", env["IMAGEBUILDER_TEST_BUILDKIT"])
	if r.code != 0 || !r.res.DryRun || !r.res.Changed || r.res.Images[0].Base == nil {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if d := testenv.RegistryDigest(t, r.res.Images[0].Ref, nil); d != "" {
		t.Fatalf("dry run pushed %s", d)
	}
	// After a real build, a dry run of the same request says nothing would change; with another
	// build arg, it would.
	p := request(repo, env["IMAGEBUILDER_TEST_REGISTRY"], map[string]any{"image": "e2e/dry", "tag": tag + "-built", "build_args": map[string]string{"X": "1"}})
	if r := ibBinary(t, t.TempDir(), p, "build", "--builder", env["IMAGEBUILDER_TEST_BUILDKIT"]); r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	if r := ibBinary(t, t.TempDir(), p, "build", "--dry-run", "--builder", env["IMAGEBUILDER_TEST_BUILDKIT"]); r.code != 0 || r.res.Changed || r.res.Images[0].Digest == "" {
		t.Fatalf("dry run of a built request: exit %d, changed %v\n%s", r.code, r.res.Changed, r.stdout)
	}
	p["target"].(map[string]any)["images"].([]map[string]any)[0]["build_args"] = map[string]string{"X": "2"}
	if r := ibBinary(t, t.TempDir(), p, "build", "--dry-run", "--builder", env["IMAGEBUILDER_TEST_BUILDKIT"]); r.code != 0 || !r.res.Changed {
		t.Fatalf("dry run with another build arg: exit %d, changed %v\n%s", r.code, r.res.Changed, r.stdout)
	}

	// A key that matches nothing fails before anything runs, listing what exists.
	r = ibBinary(t, t.TempDir(), request(repo, env["IMAGEBUILDER_TEST_REGISTRY"],
		map[string]any{"image": "e2e/dry", "tag": tag, "bases": map[string]string{"nosuchstage": "alpine"}}),
		"build", "--dry-run", "--builder", env["IMAGEBUILDER_TEST_BUILDKIT"])
	if r.code != 1 || r.res.Failed == nil || r.res.Failed.Step != result.StepInject || !strings.Contains(r.res.Failed.Error, "nosuchstage") {
		t.Fatalf("unknown bases key: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestBuildBuildkitdKilled: killing buildkitd mid-build gives a clear error, a non-zero exit and
// no leftover workspace. The buildkitd is a private one, so other packages' tests running at the
// same time keep theirs.
func TestBuildBuildkitdKilled(t *testing.T) {
	env := testenv.Require(t, "IMAGEBUILDER_TEST_REGISTRY", "IMAGEBUILDER_TEST_BASE")
	bk := testenv.StartBuildkitd(t)
	repo := testenv.GitRepoURL(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN sleep 60 # %d\n", env["IMAGEBUILDER_TEST_BASE"], time.Now().UnixNano())})
	tmp := t.TempDir()
	data, _ := json.Marshal(request(repo, env["IMAGEBUILDER_TEST_REGISTRY"], map[string]any{"image": "e2e/killed", "tag": testenv.UniqueTag("k")}))
	cmd := exec.Command(binary(t), "build", "--builder", bk.Addr, "--progress", "plain")
	cmd.Stdin = bytes.NewReader(data)
	var out, errb testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(errb.String(), "sleep 60") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the RUN step never started:\n%s", errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	bk.Kill(t)
	err := cmd.Wait()
	if err == nil {
		t.Fatalf("build succeeded with buildkitd killed\n%s", errb.String())
	}
	var res result.Result
	if jerr := json.Unmarshal([]byte(out.String()), &res); jerr != nil || res.Failed == nil || res.Failed.Step != result.StepBuild {
		t.Fatalf("no failure result: %v\n%s\n%s", jerr, out.String(), errb.String())
	}
	if !strings.Contains(res.Failed.Error, bk.Addr) {
		t.Errorf("error does not name the endpoint: %s", res.Failed.Error)
	}
	noWorkspace(t, tmp)
}

// TestBuildOtherSources: a Dockerfile URL with a git build context that has a Dockerfile of its
// own (the downloaded one is built), and a gzip tarball; both through a real build.
func TestBuildOtherSources(t *testing.T) {
	env := testenv.Require(t, "IMAGEBUILDER_TEST_REGISTRY", "IMAGEBUILDER_TEST_BASE", "IMAGEBUILDER_TEST_BUILDKIT")
	reg, base := env["IMAGEBUILDER_TEST_REGISTRY"], env["IMAGEBUILDER_TEST_BASE"]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "df" || p != "df-secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "FROM %s\nCOPY sub/data.txt /data.txt\nRUN echo downloaded > /which\n", base)
	}))
	defer srv.Close()
	ctxRepo := testenv.GitRepoURL(t, map[string]string{
		"Dockerfile":        "FROM " + base + "\nRUN echo repo > /which\n",
		"ctx/sub/data.txt":  "from the context\n",
		"ctx/Dockerfile":    "FROM " + base + "\nRUN echo repo-subdir > /which\n",
		"outside/ignored.t": "x",
	})
	tag := testenv.UniqueTag("df")
	p := map[string]any{
		"source": map[string]any{
			"dockerfile":    map[string]any{"url": srv.URL + "/Dockerfile", "username": "df", "password": "df-secret"},
			"build_context": map[string]any{"url": ctxRepo, "version": "main", "subdir": "ctx"},
		},
		"target": map[string]any{"images": []map[string]any{{"image": "e2e/dockerfile-url", "tag": tag}}, "registry": map[string]any{"url": reg}},
	}
	r := ibBinary(t, t.TempDir(), p, "build", "--builder", env["IMAGEBUILDER_TEST_BUILDKIT"], "--progress", "plain")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "df-secret") {
		t.Fatal("the Dockerfile URL password appears in the output")
	}
	ref := r.res.Images[0].Ref
	if got := fileIn(t, ref, "", "/which"); got != "downloaded\n" {
		t.Errorf("built the context's own Dockerfile: /which = %q", got)
	}
	if got := fileIn(t, ref, "", "/data.txt"); got != "from the context\n" {
		t.Errorf("/data.txt = %q", got)
	}
	if r.res.Source.Kind != "dockerfile" || len(r.res.Source.Commit) != 40 {
		t.Errorf("source facts: %+v", r.res.Source)
	}

	// A gzip tarball with the Dockerfile in a subdirectory.
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range map[string]string{
		"build/Dockerfile": "FROM " + base + "\nCOPY app.txt /app.txt\n",
		"app.txt":          "from the tarball\n",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		tw.Write([]byte(content))
	}
	tw.Close()
	gz.Close()
	tarPath := filepath.Join(t.TempDir(), "context.tar.gz")
	if err := os.WriteFile(tarPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	p = map[string]any{
		"source": map[string]any{"tar": map[string]any{"path": tarPath, "dockerfile": "build/Dockerfile"}},
		"target": map[string]any{"images": []map[string]any{{"image": "e2e/tar", "tag": tag}}, "registry": map[string]any{"url": reg}},
	}
	r = ibBinary(t, t.TempDir(), p, "build", "--builder", env["IMAGEBUILDER_TEST_BUILDKIT"], "--progress", "plain")
	if r.code != 0 {
		t.Fatalf("tar: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := fileIn(t, r.res.Images[0].Ref, "", "/app.txt"); got != "from the tarball\n" {
		t.Errorf("/app.txt = %q", got)
	}
}
