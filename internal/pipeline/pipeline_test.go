package pipeline

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/result"
)

// fakeBuilder "builds" an image whose config holds the request's labels and build args, and
// pushes it by digest, as the real drivers do. It fails for targets named "fail".
type fakeBuilder struct {
	builds  atomic.Int32
	mu      sync.Mutex
	ignores []string // the .dockerignore beside each built Dockerfile ("" when none)
	// registries are the Registries of each request.
	registries [][]string
}

func (f *fakeBuilder) Selection() builder.Selection {
	return builder.Selection{Kind: "buildkit", Endpoint: "fake://", Origin: builder.OriginExplicit}
}

func (f *fakeBuilder) Info(context.Context) (builder.Info, error) {
	return builder.Info{Kind: "buildkit", Endpoint: "fake://", NativePlatform: "linux/amd64"}, nil
}

func (f *fakeBuilder) Build(_ context.Context, req builder.Request) (*builder.Built, error) {
	f.builds.Add(1)
	ign, _ := os.ReadFile(req.Dockerfile + ".dockerignore")
	f.mu.Lock()
	f.ignores = append(f.ignores, string(ign))
	f.registries = append(f.registries, req.Registries)
	f.mu.Unlock()
	switch req.Target {
	case "leak":
		// A build whose output and error quote the secrets it was given.
		leak := string(req.Secrets["tok"])
		if req.Progress != nil {
			d := digest.FromString("leak")
			req.Progress(&client.SolveStatus{
				Vertexes: []*client.Vertex{{Digest: d, Name: "RUN echo " + leak}},
				Logs:     []*client.VertexLog{{Vertex: d, Data: []byte("token " + leak[:3])}, {Vertex: d, Data: []byte(leak[3:] + "\n")}},
			})
		}
		return nil, errors.New("step failed: " + leak)
	case "fail":
		return nil, errors.New("RUN false: exit code 1")
	case "push":
		return nil, &builder.Error{Step: builder.StepPush, Repository: req.Repository, Err: errors.New("401 Unauthorized")}
	}
	cfg, _ := empty.Image.ConfigFile()
	cfg.Config.Labels = req.Labels
	for k, v := range req.BuildArgs {
		cfg.Config.Env = append(cfg.Config.Env, k+"="+v)
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	ref, err := name.NewDigest(req.Repository+"@"+d.String(), name.Insecure)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(ref, img); err != nil {
		return nil, err
	}
	return &builder.Built{Digest: d.String(), Platforms: []string{"linux/amd64"}, Endpoint: "fake://"}, nil
}

func (f *fakeBuilder) Close() error { return nil }

type fixture struct {
	host    string
	bld     *fakeBuilder
	failTag atomic.Value // a tag whose manifest PUT fails
	dir     string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{bld: &fakeBuilder{}, dir: t.TempDir()}
	f.failTag.Store("")
	reg := ggcrregistry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ft := f.failTag.Load().(string); ft != "" && r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/"+ft) {
			http.Error(w, "injected failure", http.StatusBadRequest)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.host = strings.TrimPrefix(srv.URL, "http://")
	os.WriteFile(filepath.Join(f.dir, "Dockerfile"), []byte("FROM busybox AS ok\nFROM busybox AS fail\n"), 0o644)
	return f
}

func (f *fixture) params(images ...params.Image) params.BuildParams {
	return params.BuildParams{
		Source: params.Source{Local: &params.Local{Path: f.dir}},
		Target: params.Target{Images: images, Registry: params.Registry{URL: f.host}},
	}
}

func (f *fixture) run(t *testing.T, p params.BuildParams, dryRun bool) (*result.Result, error) {
	t.Helper()
	tmp := t.TempDir()
	res, err := Run(context.Background(), p, Options{
		DryRun:     dryRun,
		TempDir:    tmp,
		NewBuilder: func(context.Context, string) (builder.Builder, error) { return f.bld, nil },
	})
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("workspace left behind: %v", left)
	}
	return res, err
}

// digest is what image:tag points at, "" when the tag does not exist; any other registry
// error fails the test (so "the tag did not move" cannot hold because the registry is down).
func (f *fixture) digest(t *testing.T, image, tag string) string {
	t.Helper()
	ref, err := name.ParseReference(f.host+"/"+image+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(ref)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return ""
	}
	if err != nil {
		t.Fatalf("resolving %s: %v", ref, err)
	}
	return d.Digest.String()
}

func TestAllOrNothing(t *testing.T) {
	f := newFixture(t)
	res, err := f.run(t, f.params(
		params.Image{Image: "app", Tag: "one", Target: "ok"},
		params.Image{Image: "app", Tag: "two", Target: "fail"},
	), false)
	var pe *Error
	if !errors.As(err, &pe) || pe.Step != result.StepBuild || pe.Image != f.host+"/app:two" {
		t.Fatalf("error %v", err)
	}
	if res.Failed == nil || res.Failed.Image != f.host+"/app:two" || res.Changed {
		t.Fatalf("result %+v", res)
	}
	// A failed request still names the engine it ran on.
	if res.Builder == nil || *res.Builder != (result.Builder{Kind: "buildkit", Endpoint: "fake://"}) {
		t.Errorf("builder %+v, want the fake's selection", res.Builder)
	}
	if d := f.digest(t, "app", "one"); d != "" {
		t.Fatalf("tag one moved although two failed: %s", d)
	}
	// A builder failure after the build, in the push, is named as such.
	_, err = f.run(t, f.params(params.Image{Image: "app", Tag: "three", Target: "push"}), false)
	if !errors.As(err, &pe) || pe.Step != result.StepPush {
		t.Fatalf("push failure reported as %v", err)
	}
}

func TestIdempotentAndDryRun(t *testing.T) {
	f := newFixture(t)
	p := f.params(params.Image{Image: "app", Tag: "v1", Tags: []string{"latest"}, BuildArgs: map[string]string{"A": "1"}})
	// A dry run on new tags: would change, pushes nothing, builds nothing.
	res, err := f.run(t, p, true)
	if err != nil || !res.Changed || !res.DryRun || f.bld.builds.Load() != 0 || f.digest(t, "app", "v1") != "" {
		t.Fatalf("dry run: %v %+v, builds %d", err, res, f.bld.builds.Load())
	}
	if res.Builder == nil || res.Builder.Kind != "buildkit" || res.Builder.Endpoint != "fake://" {
		t.Errorf("dry run: builder %+v", res.Builder)
	}
	res, err = f.run(t, p, false)
	if err != nil || !res.Changed || res.Images[0].Digest == "" {
		t.Fatalf("first build: %v %+v", err, res)
	}
	first := res.Images[0].Digest
	if f.digest(t, "app", "v1") != first || f.digest(t, "app", "latest") != first {
		t.Fatal("tags do not point at the built digest")
	}
	// One platform: its build is the image's manifest, named without asking the registry.
	if pb := res.Images[0].PlatformBuilds; len(pb) != 1 || pb[0] != (result.PlatformDigest{Platform: "linux/amd64", Endpoint: "fake://", Digest: first}) {
		t.Errorf("platform builds %+v, want linux/amd64 on fake:// at %s", pb, first)
	}
	res, err = f.run(t, p, false)
	if err != nil || res.Changed || res.Images[0].Changed || res.Images[0].Previous["v1"] != first {
		t.Fatalf("unchanged rebuild: %v %+v", err, res)
	}
	// The local source is not a git checkout: no stable identity, so a dry run cannot prove
	// nothing changed and says it would.
	if res, err = f.run(t, p, true); err != nil || !res.Changed {
		t.Fatalf("dry run without a stable source identity: %v %+v", err, res)
	}
}

func TestTagRollback(t *testing.T) {
	f := newFixture(t)
	p := f.params(params.Image{Image: "app", Tag: "a", Tags: []string{"b"}, BuildArgs: map[string]string{"V": "1"}})
	if _, err := f.run(t, p, false); err != nil {
		t.Fatal(err)
	}
	old := f.digest(t, "app", "a")
	// A new build whose second tag cannot be written: the first tag goes back where it was.
	p.Target.Images[0].BuildArgs["V"] = "2"
	f.failTag.Store("b")
	res, err := f.run(t, p, false)
	var pe *Error
	if !errors.As(err, &pe) || pe.Step != result.StepTag {
		t.Fatalf("error %v", err)
	}
	if got := f.digest(t, "app", "a"); got != old {
		t.Fatalf("tag a not rolled back: %s, was %s", got, old)
	}
	if res.Changed || res.Images[0].Changed {
		t.Fatalf("rolled-back request reports changed: %+v", res)
	}
	// Tags that did not exist before are removed again.
	p.Target.Images[0].Tags = []string{"new", "b"}
	if _, err := f.run(t, p, false); err == nil {
		t.Fatal("want the tag failure again")
	}
	if got := f.digest(t, "app", "new"); got != "" {
		t.Fatalf("new tag left after rollback: %s", got)
	}
	if got := f.digest(t, "app", "a"); got != old {
		t.Fatalf("tag a moved: %s, was %s", got, old)
	}
}

func TestInjectErrorBeforeBuild(t *testing.T) {
	f := newFixture(t)
	_, err := f.run(t, f.params(
		params.Image{Image: "app", Tag: "one"},
		params.Image{Image: "app", Tag: "two", Bases: map[string]string{"nosuch": "alpine"}},
	), false)
	var pe *Error
	if !errors.As(err, &pe) || pe.Step != result.StepInject || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("error %v", err)
	}
	if f.bld.builds.Load() != 0 {
		t.Fatal("built although an injection failed")
	}
}

// TestEvilSources: files read from a source keep to it. A Dockerfile.dockerignore that is an
// absolute symlink (testdata/evil) must not make the run read a host file.
func TestEvilSources(t *testing.T) {
	f := newFixture(t)
	evil, _ := filepath.Abs("testdata/evil/dockerignore-abs-symlink")
	p := f.params(params.Image{Image: "evil", Tag: "v", Base: "alpine"})
	p.Source.Local.Path = evil
	res, err := f.run(t, p, false)
	if err == nil || res.Failed == nil || res.Failed.Step != result.StepInject || !strings.Contains(err.Error(), "Dockerfile.dockerignore") {
		t.Fatalf("want an inject failure naming Dockerfile.dockerignore, got %v (%+v)", err, res.Failed)
	}
	if f.bld.builds.Load() != 0 {
		t.Fatal("built although the source is hostile")
	}

	fine, _ := filepath.Abs("testdata/evil/dockerignore-rel-symlink")
	p = f.params(params.Image{Image: "fine", Tag: "v", Base: "alpine"})
	p.Source.Local.Path = fine
	if _, err := f.run(t, p, false); err != nil {
		t.Fatal(err)
	}
	if len(f.bld.ignores) != 1 || f.bld.ignores[0] != "secret.txt\n" {
		t.Fatalf("the injected Dockerfile's .dockerignore = %q, want the source's", f.bld.ignores)
	}
}

// TestRunMasksEverything: whatever the builder reports (progress, log lines, errors) reaches the
// caller masked, also through a callback that is not a redacting writer (the TTY display).
func TestRunMasksEverything(t *testing.T) {
	f := newFixture(t)
	const secret = "s3cret-value-91"
	p := f.params(params.Image{Image: "leak", Tag: "v", Target: "leak"})
	p.Secrets = map[string]params.Secret{"tok": {Value: secret}}
	var events []*client.SolveStatus
	var lines []string
	res, err := Run(context.Background(), p, Options{
		TempDir:    t.TempDir(),
		NewBuilder: func(context.Context, string) (builder.Builder, error) { return f.bld, nil },
		Progress:   func(s *client.SolveStatus) { events = append(events, s) },
		Log:        func(l string) { lines = append(lines, l) },
	})
	if err == nil {
		t.Fatal("the leaking build succeeded")
	}
	var all strings.Builder
	for _, e := range events {
		for _, v := range e.Vertexes {
			all.WriteString(v.Name + "\n")
		}
		for _, l := range e.Logs {
			all.Write(l.Data)
		}
	}
	all.WriteString(strings.Join(lines, "\n") + err.Error() + res.Failed.Error)
	if strings.Contains(all.String(), secret) || strings.Contains(all.String(), "s3c") && strings.Contains(all.String(), "ret-value-91") {
		t.Fatalf("secret passed the run:\n%s", all.String())
	}
	if !strings.Contains(all.String(), "RUN echo ********") || !strings.Contains(all.String(), "token ********") {
		t.Fatalf("the events did not arrive masked:\n%s", all.String())
	}
}

// TestBadEndpointFailsFirst: an engine that cannot be chosen fails the run before the source is
// fetched (the module and TOSCA get the CLI's early refusal too), and a failure in a later step
// still names the chosen engine.
func TestBadEndpointFailsFirst(t *testing.T) {
	f := newFixture(t)
	p := f.params(params.Image{Image: "app", Tag: "v"})
	p.Source.Local.Path = filepath.Join(f.dir, "does-not-exist") // fetching would fail at source
	p.Builder = &params.Builder{Endpoint: "mybuilder"}
	res, err := Run(context.Background(), p, Options{TempDir: t.TempDir()})
	if err == nil || res.Failed == nil || res.Failed.Step != result.StepCheck || !strings.Contains(err.Error(), "mybuilder") {
		t.Fatalf("want a check failure naming the endpoint before the source step, got %v (%+v)", err, res.Failed)
	}
	p.Builder.Endpoint = "tcp://127.0.0.1:1"
	res, err = Run(context.Background(), p, Options{TempDir: t.TempDir()})
	if err == nil || res.Failed.Step != result.StepSource || res.Builder == nil || res.Builder.Endpoint != "tcp://127.0.0.1:1" {
		t.Fatalf("a source failure: %v, builder %+v", err, res.Builder)
	}
}
