package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/moby/buildkit/client"
)

// installFake puts the test binary into a fresh directory as imagebuilder-builder-NAME and
// makes that directory the plugin search path.
func installFake(t *testing.T, name string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, ProgramPrefix+name)); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvPath, dir)
	return dir
}

// openFake starts the fake plugin with the given settings; it is closed when the test ends.
func openFake(t *testing.T, settings string) builder.Builder {
	t.Helper()
	installFake(t, "fake")
	q, err := url.ParseQuery(settings)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(context.Background(), "fake", q)
	if err != nil {
		t.Fatalf("opening the fake plugin: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// pluginPID is the fake plugin's process id, which its Info reports.
func pluginPID(t *testing.T, b builder.Builder) int {
	t.Helper()
	info, err := b.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(info.Endpoint, "pid:"))
	if err != nil {
		t.Fatalf("info endpoint %q: %v", info.Endpoint, err)
	}
	return pid
}

// processGone reports whether pid no longer exists, waiting up to a few seconds.
func processGone(pid int) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
	}
	return false
}

// request is a valid-looking request for the fake (which checks nothing).
func request() builder.Request {
	return builder.Request{ContextDir: "/ctx", Dockerfile: "/ctx/Dockerfile", Repository: "registry.example:5000/team/app", Platforms: []string{"linux/amd64"}}
}

// progressLog collects the progress events a build sends.
type progressLog struct {
	mu     sync.Mutex
	events []*client.SolveStatus
}

func (p *progressLog) add(s *client.SolveStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, s)
}

// logs returns the log lines of every event.
func (p *progressLog) logs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.events {
		for _, l := range e.Logs {
			out = append(out, strings.TrimSuffix(string(l.Data), "\n"))
		}
	}
	return out
}

func TestInfoAndClose(t *testing.T) {
	b := openFake(t, "")
	info, err := b.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != "fake" || info.Version != "0.0.1-fake" || !info.MultiPlatform || !slices.Equal(info.Platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("info %+v", info)
	}
	if sel := b.Selection(); sel.Kind != builder.KindPlugin || sel.Endpoint != "plugin:fake" || sel.Origin != builder.OriginExplicit {
		t.Errorf("selection %+v", sel)
	}
	pid := pluginPID(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Errorf("plugin process %d still runs after Close", pid)
	}
}

func TestInfoError(t *testing.T) {
	b := openFake(t, "mode=info-error")
	_, err := b.Info(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the fake engine is unreachable") || !strings.Contains(err.Error(), "plugin:fake") {
		t.Fatalf("error %v", err)
	}
}

func TestHandshakeMismatch(t *testing.T) {
	installFake(t, "fake")
	_, err := Open(context.Background(), "fake", url.Values{"protocol": {"2"}})
	if err == nil {
		t.Fatal("a plugin of protocol version 2 was accepted")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "version 2") || !strings.Contains(msg, "version 1") || !strings.Contains(msg, `"fake"`) {
		t.Fatalf("want one line naming the plugin and both versions, got %q", msg)
	}
}

func TestMissingPlugin(t *testing.T) {
	dir := installFake(t, "fake")
	_, err := Open(context.Background(), "nonesuch", nil)
	if err == nil {
		t.Fatal("opened a plugin that does not exist")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, ProgramPrefix+"nonesuch") || !strings.Contains(msg, dir) || !strings.Contains(msg, EnvPath) {
		t.Fatalf("want one line naming the program and where it was looked for, got %q", msg)
	}
	// builder.Select refuses it the same way, before anything runs.
	if _, err := builder.Select("plugin:nonesuch"); err == nil || err.Error() != msg && !strings.Contains(err.Error(), msg) {
		t.Fatalf("Select: %v", err)
	}
}

func TestCrashMidBuild(t *testing.T) {
	b := openFake(t, "mode=crash")
	pid := pluginPID(t, b)
	start := time.Now()
	_, err := b.Build(context.Background(), request())
	var be *builder.Error
	if !errors.As(err, &be) {
		t.Fatalf("want a *builder.Error, got %v", err)
	}
	if be.Step != builder.StepBuild {
		t.Errorf("step %q, want build", be.Step)
	}
	for _, want := range []string{`builder plugin "fake"`, "exited unexpectedly", "fake: about to crash", "panic: fake plugin crashed mid-build", "registry.example:5000/team/app"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	t.Log(err)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the crash took %s to be reported", d)
	}
	b.Close()
	if !processGone(pid) {
		t.Errorf("plugin process %d left behind", pid)
	}
}

func TestCancelHungBuild(t *testing.T) {
	for _, settings := range []string{"mode=hang", "mode=hang&ignore_cancel=1"} {
		t.Run(settings, func(t *testing.T) {
			b := openFake(t, settings)
			pid := pluginPID(t, b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := request()
			req.Progress = func(s *client.SolveStatus) {
				for _, l := range s.Logs {
					if strings.Contains(string(l.Data), "hanging") {
						cancel()
					}
				}
			}
			done := make(chan error, 1)
			go func() {
				_, err := b.Build(ctx, req)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("want a cancelled build, got %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the cancelled build did not return")
			}
			b.Close()
			if !processGone(pid) {
				t.Errorf("plugin process %d left behind", pid)
			}
		})
	}
}

func TestCredentialsOnlyForInvolvedHosts(t *testing.T) {
	var logged bytes.Buffer
	logOutput = &logged
	defer func() { logOutput = os.Stderr }()
	b := openFake(t, "mode=creds&ask=registry.example:5000&ask=Base.Example&ask=docker.io&ask=elsewhere.example")
	var mu sync.Mutex
	var asked []string
	req := request()
	req.Registries = []string{"base.example", "index.docker.io"}
	req.Credentials = func(host string) (string, string, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, host)
		return "user-" + host, "secret-" + host, nil
	}
	var p progressLog
	req.Progress = p.add
	if _, err := b.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"creds registry.example:5000=user-registry.example:5000:secret-registry.example:5000 err=<nil>",
		"creds Base.Example=user-base.example:secret-base.example err=<nil>",
		"creds docker.io=user-index.docker.io:secret-index.docker.io err=<nil>",
		"creds elsewhere.example=: err=<nil>",
	}
	if got := p.logs(); !slices.Equal(got, want) {
		t.Errorf("the plugin got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if slices.Contains(asked, "elsewhere.example") {
		t.Errorf("the host's credentials were consulted for a host the build does not involve: %v", asked)
	}
	if !strings.Contains(logged.String(), `"elsewhere.example"`) {
		t.Errorf("the refusal was not logged: %q", logged.String())
	}
}

func TestCredentialsError(t *testing.T) {
	b := openFake(t, "mode=creds&ask=registry.example:5000")
	req := request()
	req.Credentials = func(string) (string, string, error) {
		return "", "", errors.New("docker-credential-gone failed")
	}
	var p progressLog
	req.Progress = p.add
	if _, err := b.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := p.logs(); len(got) != 1 || got[0] != "creds registry.example:5000=: err=docker-credential-gone failed" {
		t.Errorf("the plugin got %q", got)
	}
}

// TestRequestCrossesTheWire checks that every field of a request reaches the plugin, and that
// progress events come back whole.
func TestRequestCrossesTheWire(t *testing.T) {
	b := openFake(t, "mode=echo")
	req := builder.Request{
		ContextDir: "/ctx", Dockerfile: "/df/Dockerfile", Platforms: []string{"linux/amd64", "linux/arm64"},
		BuildArgs: map[string]string{"A": "1", "B": ""}, Target: "final", Labels: map[string]string{"org.example": "x"},
		NoCache: true, Pull: true, Repository: "registry.example:5000/team/app", Insecure: true,
		SSH:        []builder.SSHForward{{ID: "default"}, {ID: "deploy", Paths: []string{"/k1", "/k2"}}},
		Registries: []string{"base.example"},
		Secrets:    map[string][]byte{"token": []byte("s3cret")},
	}
	var p progressLog
	req.Progress = p.add
	built, err := b.Build(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if built.Digest != "sha256:"+strings.Repeat("ab", 32) || !slices.Equal(built.Platforms, []string{"linux/amd64"}) || built.Endpoint != "plugin:fake?mode=echo (fake-engine)" {
		t.Errorf("built %+v", built)
	}
	var got echo
	for _, l := range p.logs() {
		if s, ok := strings.CutPrefix(l, "echo "); ok {
			if err := json.Unmarshal([]byte(s), &got); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := req
	want.Progress = nil
	want.Secrets = nil
	if !reflect.DeepEqual(got.Request, want) {
		t.Errorf("the plugin got\n%+v\nwant\n%+v", got.Request, want)
	}
	if !reflect.DeepEqual(got.Secrets, map[string]string{"token": "s3cret"}) {
		t.Errorf("the plugin got the secrets %v", got.Secrets)
	}
	// The progress: the vertex started, then completed with a status and a warning.
	p.mu.Lock()
	defer p.mu.Unlock()
	var started, completed, status, warning bool
	for _, e := range p.events {
		for _, v := range e.Vertexes {
			started = started || v.Name == "[1/1] RUN fake" && v.Started != nil
			completed = completed || v.Completed != nil
		}
		for _, s := range e.Statuses {
			status = status || s.ID == "pushing layers" && s.Current == 3 && s.Total == 3
		}
		for _, w := range e.Warnings {
			warning = warning || string(w.Short) == "a fake warning"
		}
	}
	if !started || !completed || !status || !warning {
		t.Errorf("progress: started %v completed %v status %v warning %v", started, completed, status, warning)
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		mode string
		want builder.Error
		msg  string
	}{
		{"fail", builder.Error{Step: builder.StepBuild, Repository: "registry.example:5000/team/app", Platforms: []string{"linux/arm64"},
			Endpoint: "plugin:fake?mode=fail (fake-engine)", Vertex: "[1/1] RUN false", Output: "step output line"}, "process exited with 1"},
		{"push-fail", builder.Error{Step: builder.StepPush, Repository: "registry.example:5000/team/app", Platforms: []string{"linux/amd64"},
			Endpoint: "plugin:fake?mode=push-fail"}, "registry said no"},
		{"plain-fail", builder.Error{Step: builder.StepBuild, Repository: "registry.example:5000/team/app", Platforms: []string{"linux/amd64"},
			Endpoint: "plugin:fake?mode=plain-fail"}, "an error without a step"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			b := openFake(t, "mode="+tt.mode)
			req := request()
			req.Progress = func(*client.SolveStatus) {}
			_, err := b.Build(context.Background(), req)
			var be *builder.Error
			if !errors.As(err, &be) {
				t.Fatalf("want a *builder.Error, got %v", err)
			}
			got := *be
			got.Err = nil
			if !reflect.DeepEqual(got, tt.want) || be.Err == nil || be.Err.Error() != tt.msg {
				t.Errorf("got %+v (%v)\nwant %+v (%s)", got, be.Err, tt.want, tt.msg)
			}
		})
	}
}

// TestBuilderNew opens the plugin through internal/builder, as the pipeline does.
func TestBuilderNew(t *testing.T) {
	installFake(t, "fake")
	sel, err := builder.Select("plugin:fake?mode=echo")
	if err != nil {
		t.Fatal(err)
	}
	if sel.Kind != builder.KindPlugin || sel.Endpoint != "plugin:fake?mode=echo" {
		t.Errorf("selection %+v", sel)
	}
	b, err := builder.New(context.Background(), "plugin:fake?mode=echo")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var p progressLog
	req := request()
	req.Progress = p.add
	if _, err := b.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(p.logs(), func(s string) bool { return strings.HasPrefix(s, "echo ") }) {
		t.Errorf("the settings did not reach the plugin: %q", p.logs())
	}
}
