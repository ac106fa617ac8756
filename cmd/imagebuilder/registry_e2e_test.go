package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebuilder/imagebuilder/internal/regserve"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// serveRegistry runs `imagebuilder registry serve ARGS` (the built binary) until the test
// ends, and returns what it printed when ready. At the end it is stopped with SIGTERM and must
// exit 0.
func serveRegistry(t *testing.T, args ...string) (regserve.Ready, *testenv.SyncBuffer) {
	t.Helper()
	line, stderr := startDaemon(t, append([]string{"registry", "serve", "--listen", "127.0.0.1:0", "--root", t.TempDir()}, args...)...)
	var ready regserve.Ready
	if err := json.Unmarshal([]byte(line), &ready); err != nil || ready.Listen == "" {
		t.Fatalf("readiness line %q: %v\nstderr:\n%s", line, err, stderr)
	}
	return ready, stderr
}

// startDaemon runs the built binary with args until the test ends and returns the line it
// printed on stdout when ready. At the end it is stopped with SIGTERM and must exit 0.
func startDaemon(t *testing.T, args ...string) (string, *testenv.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	var line string
	select {
	case line = <-lines:
		if line == "" {
			cmd.Process.Kill()
			t.Fatalf("%s printed nothing\nstderr:\n%s", args[:2], stderr)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s printed nothing in 30s\nstderr:\n%s", args[:2], stderr)
	}
	t.Logf("%s ready in %v: %s", args[:2], time.Since(start).Round(time.Millisecond), strings.TrimSpace(line))
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s after SIGTERM: %v\nstderr:\n%s", args[:2], err, stderr)
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Errorf("%s did not stop within 60s of SIGTERM", args[:2])
		}
	})
	return line, stderr
}

// TestRegistryServeBuildset: a BuildKit build whose base exists only upstream resolves through
// `registry serve` and pushes to it; the pushed image is then served from it without a
// request to the upstream, the base's blobs were cached, and a push to a repository that also
// exists upstream shadows it.
func TestRegistryServeBuildset(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base)
	upstream := testenv.StartRegistryProxy(t, env[testenv.Registry])
	ready, stderr := serveRegistry(t, "--upstream", "http://"+upstream.Host, "--upstream", "mirror/=http://"+upstream.Host+"/base")
	reg := ready.Listen
	bk := testenv.StartBuildkitd(t, reg)

	// base/busybox:latest is only upstream; the build names it through the embedded registry.
	baseRepo := strings.TrimPrefix(strings.SplitN(env[testenv.Base], ":", 3)[1], "5000/")
	baseRepo = strings.TrimSuffix(baseRepo, ":latest")
	if baseRepo != "base/busybox" {
		t.Fatalf("unexpected test base %q", env[testenv.Base])
	}
	tag := testenv.UniqueTag("rs")
	repo := testenv.GitRepoURL(t, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s/mirror/busybox:latest\nRUN echo built > /built\n", reg),
	})
	r := ibBinary(t, t.TempDir(), request(repo, reg, map[string]any{"image": "team/app", "tag": tag}),
		"build", "--builder", bk.Addr, "--progress", "plain")
	if r.code != 0 {
		t.Fatalf("build exit %d\n%s\nregistry log:\n%s", r.code, r.stderr, stderr)
	}
	if got := upstream.Matching("/v2/base/busybox/manifests/latest"); len(got) == 0 {
		t.Errorf("the upstream was never asked for base/busybox:latest (mirror/busybox): %v", upstream.Requests())
	}
	if got := upstream.Matching("/v2/base/busybox/blobs/"); len(got) == 0 {
		t.Errorf("the base's blobs were not pulled through the upstream: %v", upstream.Requests())
	}
	if got := upstream.Matching("/team/app/blobs/"); len(got) != 0 {
		t.Errorf("pushing team/app asked the upstream for blobs: %v", got)
	}

	// The pushed image is served by the embedded registry; the upstream is not asked.
	upstream.Reset()
	ref := reg + "/team/app:" + tag
	if d := testenv.RegistryDigest(t, ref, nil); d != r.res.Images[0].Digest {
		t.Errorf("%s serves %q, the build reported %q", ref, d, r.res.Images[0].Digest)
	}
	if got := fileIn(t, ref, "", "/built"); got != "built\n" {
		t.Errorf("/built in %s = %q", ref, got)
	}
	if got := upstream.Requests(); len(got) != 0 {
		t.Errorf("serving the pushed image asked the upstream: %v", got)
	}

	// The base's blobs were cached: pulling it again fetches no blob upstream (the tag is asked
	// again: an upstream tag may move).
	upstream.Reset()
	if got := fileIn(t, reg+"/mirror/busybox:latest", "linux/amd64", "/etc/imagebuilder-base"); !strings.Contains(got, "busybox") {
		t.Errorf("/etc/imagebuilder-base in mirror/busybox = %q", got)
	}
	if got := upstream.Matching("/blobs/"); len(got) != 0 {
		t.Errorf("pulling the base again fetched blobs upstream: %v", got)
	}

	// A push to a repository and tag that exist upstream shadows them, without asking upstream.
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	shadow, _ := name.ParseReference(reg+"/base/busybox:latest", name.Insecure)
	if err := remote.Write(shadow, img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	upstream.Reset()
	if got := testenv.RegistryDigest(t, shadow.String(), nil); got != want.String() {
		t.Errorf("%s after the push serves %s, want the pushed %s", shadow, got, want)
	}
	if got := upstream.Requests(); len(got) != 0 {
		t.Errorf("serving the pushed base/busybox:latest asked the upstream: %v", got)
	}
	if upstreamDigest := testenv.RegistryDigest(t, env[testenv.Base], nil); upstreamDigest == want.String() {
		t.Errorf("the push reached the upstream")
	}
}

// TestRegistryServeUsage: bad flags are usage errors (exit 2) found before anything listens; a
// listen failure is a runtime failure (exit 1); neither prints the readiness line.
func TestRegistryServeUsage(t *testing.T) {
	serverOnPath(t)
	root := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"registry", "serve"}, 2, "--root: a storage directory is required"},
		{[]string{"registry", "serve", "--root", root, "--upstream", "https://user:hunter2pw@quay.io"}, 2, "must not carry user information"},
		{[]string{"registry", "serve", "--root", root, "--listen", "0.0.0.0:0", "--htpasswd", "/etc/hostname"}, 2, "passwords in clear"},
		{[]string{"registry", "serve", "--root", root, "extra"}, 2, "unknown command"},
		{[]string{"registry", "serve", "--root", root, "--log-level", "loud"}, 2, `--log-level "loud"`},
		{[]string{"registry", "serve", "--root", root, "--listen", busy.Addr().String()}, 1, "listening on " + busy.Addr().String()},
	} {
		code, stdout, stderr := ib(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) || stdout != "" {
			t.Errorf("%q: exit %d (want %d), stdout %q, stderr %q (want %q)", tc.args, code, tc.code, stdout, stderr, tc.msg)
		}
		if strings.Contains(stderr, "hunter2pw") {
			t.Errorf("%q: stderr shows the password: %s", tc.args, stderr)
		}
	}
}
