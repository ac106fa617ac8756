package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// The test binary is also the fake plugin: run as imagebuilder-builder-NAME with the magic
// cookie set (as the host starts a plugin), it serves a fake builder whose behaviour the
// plugin's settings choose, instead of running the tests.
func TestMain(m *testing.M) {
	if os.Getenv(MagicCookieKey) != "" && strings.HasPrefix(filepath.Base(os.Args[0]), ProgramPrefix) {
		q := Query()
		version := uint(ProtocolVersion)
		if v, err := strconv.Atoi(q.Get("protocol")); err == nil {
			version = uint(v)
		}
		serve(&fake{mode: q.Get("mode"), ask: q["ask"], ignoreCancel: q.Get("ignore_cancel") != ""}, version)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fake is the builder the fake plugin serves. Its Info reports its process id as the endpoint,
// so that tests can check the process is gone.
type fake struct {
	mode         string
	ask          []string // hosts to ask credentials for (mode creds)
	ignoreCancel bool     // mode hang: keep hanging after the build is cancelled
}

func (f *fake) Selection() builder.Selection { return builder.Selection{Kind: "fake"} }
func (f *fake) Close() error                 { return nil }

func (f *fake) Info(context.Context) (builder.Info, error) {
	if f.mode == "info-error" {
		return builder.Info{}, errors.New("the fake engine is unreachable")
	}
	return builder.Info{
		Kind: "fake", Endpoint: "pid:" + strconv.Itoa(os.Getpid()), NativePlatform: "linux/amd64",
		Platforms: []string{"linux/amd64", "linux/arm64"}, MultiPlatform: true, Version: "0.0.1-fake",
	}, nil
}

// echo is what the fake reports having received, as a progress log line.
type echo struct {
	Request builder.Request   `json:"request"`
	Secrets map[string]string `json:"secrets"`
}

func (f *fake) Build(ctx context.Context, req builder.Request) (*builder.Built, error) {
	vtx := digest.FromString("fake-step")
	now := time.Now()
	logLine := func(s string) {
		req.Progress(&client.SolveStatus{Logs: []*client.VertexLog{{Vertex: vtx, Stream: 1, Data: []byte(s + "\n"), Timestamp: now}}})
	}
	req.Progress(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: vtx, Name: "[1/1] RUN fake", Started: &now}}})
	switch f.mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "fake: about to crash")
		time.Sleep(100 * time.Millisecond) // let the line reach the host before the process dies
		panic("fake plugin crashed mid-build")
	case "hang":
		logLine("hanging")
		<-ctx.Done()
		if f.ignoreCancel {
			select {}
		}
		return nil, ctx.Err()
	case "fail":
		return nil, &builder.Error{Step: builder.StepBuild, Repository: req.Repository, Platforms: []string{"linux/arm64"},
			Endpoint: "fake-engine", Vertex: "[1/1] RUN false", Output: "step output line", Err: errors.New("process exited with 1")}
	case "push-fail":
		return nil, &builder.Error{Step: builder.StepPush, Err: errors.New("registry said no")}
	case "plain-fail":
		return nil, errors.New("an error without a step")
	case "creds":
		for _, h := range f.ask {
			u, s, err := req.Credentials(h)
			logLine(fmt.Sprintf("creds %s=%s:%s err=%v", h, u, s, err))
		}
	case "echo":
		e := echo{Request: req, Secrets: map[string]string{}}
		for k, v := range req.Secrets {
			e.Secrets[k] = string(v)
		}
		data, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		logLine("echo " + string(data))
	}
	done := time.Now()
	req.Progress(&client.SolveStatus{
		Vertexes: []*client.Vertex{{Digest: vtx, Name: "[1/1] RUN fake", Started: &now, Completed: &done}},
		Statuses: []*client.VertexStatus{{ID: "pushing layers", Vertex: vtx, Current: 3, Total: 3, Timestamp: done}},
		Warnings: []*client.VertexWarning{{Vertex: vtx, Level: 1, Short: []byte("a fake warning")}},
	})
	return &builder.Built{Digest: "sha256:" + strings.Repeat("ab", 32), Platforms: []string{"linux/amd64"}, Endpoint: "fake-engine"}, nil
}
