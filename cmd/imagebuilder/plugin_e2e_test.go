package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// buildKitPlugin builds the test plugin that serves the buildkit driver
// (imagebuilder-builder-buildkit) into a directory of its own and returns that directory.
func buildKitPlugin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "imagebuilder-builder-buildkit"),
		"../../internal/builder/plugin/testdata/imagebuilder-builder-buildkit").CombinedOutput()
	if err != nil {
		t.Fatalf("building the test plugin: %v\n%s", err, out)
	}
	return dir
}

// TestBuildThroughPlugin: the binary builds a two-platform image through --builder
// plugin:buildkit found in IMAGEBUILDER_PLUGIN_PATH, reports the plugin as its builder, and
// moves the tag. Then a plugin killed in the middle of a build fails the run within seconds at
// step build, with an error naming the plugin; no tag moves and no plugin process is left.
func TestBuildThroughPlugin(t *testing.T) {
	env := testenv.Require(t, testenv.BuildKit, testenv.Registry, testenv.Base)
	pluginDir := buildKitPlugin(t)
	endpoint := "plugin:buildkit?" + url.Values{"addr": {env[testenv.BuildKit]}}.Encode()
	ctxDir := t.TempDir()
	writeTestFile(t, filepath.Join(ctxDir, "hello.txt"), "hello")
	repo := fmt.Sprintf("plugin-e2e/app-%d", time.Now().UnixNano())
	params := func(dockerfile string) map[string]any {
		writeTestFile(t, filepath.Join(ctxDir, "Dockerfile"), dockerfile)
		return map[string]any{
			"source": map[string]any{"local": map[string]any{"path": ctxDir}},
			"target": map[string]any{
				"images": []map[string]any{{"image": repo, "tag": "v1", "platforms": []string{"linux/amd64", "linux/arm64"},
					"build_args": map[string]string{"BASE": env[testenv.Base]}}},
				"registry": map[string]any{"url": env[testenv.Registry]},
			},
		}
	}
	opts := binOpts{tmp: t.TempDir(), env: map[string]string{"IMAGEBUILDER_PLUGIN_PATH": pluginDir, "BUILDKIT_HOST": "", "DOCKER_HOST": ""}}
	tagRef := env[testenv.Registry] + "/" + repo + ":v1"

	t.Run("build", func(t *testing.T) {
		r := ibBinaryWith(t, opts, params("ARG BASE\nFROM ${BASE}\nCOPY hello.txt /hello.txt\nRUN uname -m > /machine\n"), "build", "--builder", endpoint, "--progress", "plain")
		if r.code != 0 {
			t.Fatalf("exit %d:\n%s", r.code, r.stderr)
		}
		if r.res.Builder == nil || r.res.Builder.Kind != "plugin" || !strings.HasPrefix(r.res.Builder.Endpoint, "plugin:buildkit?addr=unix:///") {
			t.Errorf("builder %+v", r.res.Builder)
		}
		if len(r.res.Images) != 1 || len(r.res.Images[0].Platforms) != 2 {
			t.Fatalf("images %+v", r.res.Images)
		}
		desc, err := remote.Head(mustRef(t, tagRef))
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest.String() != r.res.Images[0].Digest || !desc.MediaType.IsIndex() {
			t.Errorf("the tag points at %s (%s), the result says %s", desc.Digest, desc.MediaType, r.res.Images[0].Digest)
		}
		if !strings.Contains(r.stderr, "RUN uname -m") {
			t.Errorf("the plugin's progress did not reach the display:\n%s", r.stderr)
		}
	})

	t.Run("plugin killed mid-build", func(t *testing.T) {
		before, err := remote.Head(mustRef(t, tagRef))
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(params(fmt.Sprintf("ARG BASE\nFROM ${BASE}\nRUN echo %d && sleep 120\n", time.Now().UnixNano())))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary(t), "build", "--builder", endpoint, "--progress", "plain")
		cmd.Stdin = bytes.NewReader(data)
		cmd.Env = append(os.Environ(), "IMAGEBUILDER_PLUGIN_PATH="+pluginDir, "TMPDIR="+opts.tmp)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sleeping := make(chan struct{})
		var log strings.Builder
		go func() {
			sc := bufio.NewScanner(stderr)
			once := false
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if !once && strings.Contains(sc.Text(), "sleep 120") {
					once = true
					close(sleeping)
				}
			}
		}()
		select {
		case <-sleeping:
		case <-time.After(2 * time.Minute):
			t.Fatal("the sleeping step never started")
		}
		plugins := childrenNamed(cmd.Process.Pid, "imagebuilder-builder-buildkit")
		if len(plugins) != 1 {
			t.Fatalf("want one plugin process under imagebuilder, found %v", plugins)
		}
		if err := syscall.Kill(plugins[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		err = cmd.Wait()
		took := time.Since(killed)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit: %v, want status 1\n%s", err, log.String())
		}
		if took > 15*time.Second {
			t.Errorf("the run took %s to fail after the plugin was killed", took)
		}
		var res result.Result
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatalf("%v: %s", err, stdout.String())
		}
		if res.Failed == nil || res.Failed.Step != "build" || !strings.Contains(res.Failed.Error, `builder plugin "buildkit"`) {
			t.Errorf("failed %+v", res.Failed)
		}
		after, err := remote.Head(mustRef(t, tagRef))
		if err != nil {
			t.Fatal(err)
		}
		if after.Digest != before.Digest {
			t.Errorf("the tag moved from %s to %s", before.Digest, after.Digest)
		}
		if left := childrenNamed(cmd.Process.Pid, "imagebuilder-builder-buildkit"); len(left) > 0 || processAlive(plugins[0]) {
			t.Errorf("plugin processes left: %v", left)
		}
		t.Logf("failed %s after the kill: %s", took.Round(time.Millisecond), res.Failed.Error)
	})
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// childrenNamed lists the processes whose parent is ppid and whose command is name (from /proc).
func childrenNamed(ppid int, name string) []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm is cut to 15 characters.
		s := string(stat)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(ppid) {
			continue
		}
		if comm := s[open+1 : closing]; strings.HasPrefix(name, comm) {
			out = append(out, pid)
		}
	}
	return out
}

// processAlive reports whether pid exists (and is not a zombie).
func processAlive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}
