package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/session/sshforward/sshprovider"
	"github.com/moby/buildkit/util/entitlements"
	digest "github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
)

const (
	dockerfileFrontend = "dockerfile.v0"
	// outputTailLines bounds how much of a failing step's output an Error carries.
	outputTailLines = 20
	outputTailBytes = 4096
)

// solveOpt turns a request into a Dockerfile-frontend solve for the given platforms
// (none: the endpoint's default) with the given exports. The session serves the request's
// registry credentials, build secrets and ssh forwards to BuildKit.
func solveOpt(req *normalizedRequest, plats []string, hostNetwork bool, exports []client.ExportEntry) (client.SolveOpt, error) {
	contextFS, err := fsutil.NewFS(req.ContextDir)
	if err != nil {
		return client.SolveOpt{}, fmt.Errorf("opening build context %q: %w", req.ContextDir, err)
	}
	dockerfileDir := filepath.Dir(req.Dockerfile)
	dockerfileFS, err := fsutil.NewFS(dockerfileDir)
	if err != nil {
		return client.SolveOpt{}, fmt.Errorf("opening dockerfile directory %q: %w", dockerfileDir, err)
	}
	attrs := frontendAttrs(req, plats, hostNetwork)
	var ents []string
	if hostNetwork {
		ents = append(ents, string(entitlements.EntitlementNetworkHost))
	}
	attachables := []session.Attachable{&authServer{creds: req.Credentials}}
	if len(req.Secrets) > 0 {
		attachables = append(attachables, secretsprovider.FromMap(req.Secrets))
	}
	if len(req.SSH) > 0 {
		confs := make([]sshprovider.AgentConfig, len(req.SSH))
		for i, f := range req.SSH {
			confs[i] = sshprovider.AgentConfig{ID: f.ID, Paths: f.Paths}
		}
		sp, err := sshprovider.NewSSHAgentProvider(confs)
		if err != nil {
			return client.SolveOpt{}, fmt.Errorf("forwarding ssh: %w", err)
		}
		attachables = append(attachables, sp)
	}
	return client.SolveOpt{
		Frontend:      dockerfileFrontend,
		FrontendAttrs: attrs,
		LocalMounts: map[string]fsutil.FS{
			"context":    contextFS,
			"dockerfile": dockerfileFS,
		},
		Exports:             exports,
		Session:             attachables,
		AllowedEntitlements: ents,
	}, nil
}

// frontendAttrs are the Dockerfile frontend's options for a request.
func frontendAttrs(req *normalizedRequest, plats []string, hostNetwork bool) map[string]string {
	attrs := map[string]string{"filename": filepath.Base(req.Dockerfile)}
	if len(plats) > 0 {
		attrs["platform"] = strings.Join(plats, ",")
	}
	for k, v := range req.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	for k, v := range req.Labels {
		attrs["label:"+k] = v
	}
	if req.Target != "" {
		attrs["target"] = req.Target
	}
	if req.NoCache {
		attrs["no-cache"] = ""
	}
	if req.Pull {
		attrs["image-resolve-mode"] = "pull"
	}
	if hostNetwork {
		attrs["force-network-mode"] = "host"
	}
	return attrs
}

// ProgressSink serializes status events from concurrent builds into a request's Progress
// callback (nil: events are dropped).
type ProgressSink struct {
	mu sync.Mutex
	fn func(*client.SolveStatus)
}

// NewProgressSink returns a sink feeding fn.
func NewProgressSink(fn func(*client.SolveStatus)) *ProgressSink { return &ProgressSink{fn: fn} }

// Send passes one event on.
func (p *ProgressSink) Send(s *client.SolveStatus) {
	if p == nil || p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fn(s)
}

// Step reports a synthetic vertex for work done outside BuildKit (e.g. a push), so the
// caller's progress display shows it like any other step. It returns the function that
// completes the vertex.
func (p *ProgressSink) Step(name string) func(error) {
	if p == nil || p.fn == nil {
		return func(error) {}
	}
	started := time.Now()
	v := &client.Vertex{Digest: digest.FromString(fmt.Sprintf("imagebuilder:%s:%d", name, started.UnixNano())), Name: name, Started: &started}
	p.Send(&client.SolveStatus{Vertexes: []*client.Vertex{v}})
	return func(err error) {
		done := time.Now()
		v2 := *v
		v2.Completed = &done
		if err != nil {
			v2.Error = err.Error()
		}
		p.Send(&client.SolveStatus{Vertexes: []*client.Vertex{&v2}})
	}
}

// FailureTracker remembers the last output lines of every vertex and which vertex failed,
// so a failed build's error can name the step and show its output (Error's Vertex and
// Output). Builders outside this package feed it the status events they report.
type FailureTracker struct {
	names  map[digest.Digest]string
	output map[digest.Digest][]byte
	failed digest.Digest
	errMsg string
}

// NewFailureTracker returns a tracker that has seen nothing.
func NewFailureTracker() *FailureTracker {
	return &FailureTracker{names: map[digest.Digest]string{}, output: map[digest.Digest][]byte{}}
}

// Observe records the vertex names, errors and logs of one status event.
func (f *FailureTracker) Observe(s *client.SolveStatus) {
	for _, v := range s.Vertexes {
		if v.Name != "" {
			f.names[v.Digest] = v.Name
		}
		// Cancellation marks every running vertex "context canceled"; keep the first real error.
		if v.Error != "" && f.failed == "" && !strings.Contains(v.Error, context.Canceled.Error()) {
			f.failed, f.errMsg = v.Digest, v.Error
		}
	}
	for _, l := range s.Logs {
		buf := append(f.output[l.Vertex], l.Data...)
		if len(buf) > 4*outputTailBytes {
			buf = slices.Clone(buf[len(buf)-outputTailBytes:])
		}
		f.output[l.Vertex] = buf
	}
}

// Describe returns the failed vertex's name and the tail of its output.
func (f *FailureTracker) Describe() (vertex, output string) {
	if f.failed == "" {
		return "", ""
	}
	return f.names[f.failed], tail(f.output[f.failed])
}

// tail returns the last lines of b, at most outputTailLines lines and outputTailBytes bytes.
func tail(b []byte) string {
	b = bytes.TrimRight(b, "\n")
	if len(b) > outputTailBytes {
		b = b[len(b)-outputTailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > outputTailLines {
		lines = lines[len(lines)-outputTailLines:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// exportVertexPrefix starts the name of BuildKit's exporter vertices ("exporting to image").
const exportVertexPrefix = "exporting to "

// solve runs one solve, forwarding status events to sink. On failure it returns an *Error
// naming the failing vertex and its output, for StepBuild, or StepPush when exportPushes and
// the exporter failed.
func solve(ctx context.Context, c *client.Client, opt client.SolveOpt, sink *ProgressSink, errInfo Error, exportPushes bool) (*client.SolveResponse, error) {
	ch := make(chan *client.SolveStatus)
	tracker := NewFailureTracker()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range ch {
			tracker.Observe(s)
			sink.Send(s)
		}
	}()
	resp, err := c.Solve(ctx, nil, opt, ch) // Solve closes ch
	<-done
	if err != nil {
		e := errInfo
		e.Step = StepBuild
		e.Vertex, e.Output = tracker.Describe()
		if exportPushes && strings.HasPrefix(e.Vertex, exportVertexPrefix) {
			e.Step = StepPush
		}
		e.Err = solveError(ctx, err)
		return nil, &e
	}
	return resp, nil
}

// solveError makes a solve error say plainly when the caller's context ended it.
func solveError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return err
}
