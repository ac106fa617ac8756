// Package pipeline runs one build request: params -> source -> base injection -> build and push
// by digest -> tag moves, and returns the facts. It is the one place that knows the order of the
// steps; each step is a small method on the run state, and every front end (CLI, Ansible module,
// TOSCA playbook through the module) calls Run.
//
// Publishing is all-or-nothing: every image of the request is built and pushed by digest first;
// only when all of them succeeded do the tags move. If any image fails, no tag of the request
// moves. If moving the tags itself fails half-way, the tags already moved are put back where they
// were.
package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/dockerfile"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/progress"
	"github.com/imagebuilder/imagebuilder/internal/publish"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/schedule"
	"github.com/imagebuilder/imagebuilder/internal/source"
)

// Options control a run. The zero value builds for real on the default endpoint.
type Options struct {
	// Endpoint overrides the params' builder.endpoint ("" keeps it; both empty: auto).
	Endpoint string
	// DryRun resolves and checks everything that can be checked without side effects — the
	// source is reachable and the version exists, the Dockerfile parses, injection applies, the
	// builder answers, the registry answers and accepts the credentials, where each tag points —
	// and builds and pushes nothing.
	DryRun bool
	// Progress receives BuildKit status events to render (nil: discarded).
	Progress func(*client.SolveStatus)
	// Log receives one line per step ("fetching source ...") for humans (nil: discarded).
	Log func(string)
	// TempDir is where the workspace is created (default: os.TempDir()).
	TempDir string
	// NewBuilder opens the build engine (default: builder.New).
	NewBuilder func(ctx context.Context, endpoint string) (builder.Builder, error)
	// RegistryOptions are added to the registry client's (tests: transports, retries).
	RegistryOptions []registry.Option
	// Redactor masks secrets in everything the run emits: progress, log lines, the result and
	// the error. The run adds the request's secrets to it and those it learns on the way
	// (credentials from the Docker config, registry tokens), so a front end that passes its own
	// masks its output with the same knowledge. nil: the run uses one of its own.
	Redactor *redact.Redactor
	// BuilderOptions are added to the default NewBuilder's (a Docker context, say).
	BuilderOptions []builder.Option
	// Vars are the values of --var NAME=VALUE: the .Vars of target.registry.stage_tag.
	Vars map[string]string
}

// Error is a failed run: which image (if one), which step, why.
type Error struct {
	Image string
	Step  string
	Err   error
}

func (e *Error) Error() string {
	if e.Image != "" {
		return fmt.Sprintf("%s: %s: %v", e.Image, e.Step, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Step, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// DefaultJobs is how many images one engine builds at once unless told otherwise.
const DefaultJobs = 4

// run is the state of one request as it goes through the steps.
type run struct {
	p        params.BuildParams
	opts     Options
	red      *redact.Redactor
	endpoint string           // the engine chosen: --builder, else builder.endpoint ("": environment)
	bopts    []builder.Option // how to open it
	ws       string
	src      *source.Fetched
	images   []*imageRun
	reg      *registry.Client
	pool     *pool
	res      *result.Result
	// registryPointer is where the registry is in the input, for messages.
	registryPointer string
}

// imageRun is one image of a request or a family: what to build, and what became of it.
type imageRun struct {
	req        params.Image // the request's image (a family's images are translated into one)
	out        *result.Image
	contextDir string            // the build context
	dockerfile string            // the Dockerfile to build (the user's, or a rewritten copy)
	buildArgs  map[string]string // the user's plus those the injection needs
	labels     map[string]string
	inputs     string            // fingerprint of everything the image is built from ("" if unknown)
	current    map[string]string // tag -> digest it points at now ("" when absent)
	secrets    map[string][]byte // build secrets by id, resolved
	ssh        []builder.SSHForward
	registries []string                  // the registry hosts of the Dockerfile's base images
	progress   func(*client.SolveStatus) // where its build's progress goes (nil: the run's)
	split      bool                      // built one platform per task (see split.go)

	mu             sync.Mutex              // guards platformBuilds: a split image's platforms build at once
	platformBuilds []result.PlatformDigest // a split image's platform builds, as they finish
}

func (ir *imageRun) progressFunc(def func(*client.SolveStatus)) func(*client.SolveStatus) {
	if ir.progress != nil {
		return ir.progress
	}
	return def
}

// InputsLabel carries a fingerprint of a build's inputs (source revision, Dockerfile after
// injection, build args, target, labels, platforms). A dry run compares it with the label of
// the image a tag points at to tell whether the tag would move without building.
const InputsLabel = "org.imagebuilder.inputs"

type step struct {
	name string
	run  func(ctx context.Context) error
}

// Run executes the request. It always returns a result; on failure the result's Failed names the
// image, step and cause, and the error is an *Error.
func Run(ctx context.Context, p params.BuildParams, opts Options) (res *result.Result, err error) {
	opts, red, closeMasker := masked(opts, p.AddSecrets)
	defer closeMasker()
	r := &run{p: p.WithDefaults(), opts: opts, red: red, res: &result.Result{DryRun: opts.DryRun, Images: []result.Image{}}, registryPointer: "/target/registry"}
	for _, img := range r.p.Target.Images {
		out := &result.Image{
			Ref:        r.p.Target.Ref(img),
			Image:      img.Image,
			Tag:        img.Tag,
			Tags:       img.AllTags(),
			Repository: r.p.Target.Registry.Repository(img.Image),
			Platforms:  append([]string{}, img.Platforms...),
		}
		r.images = append(r.images, &imageRun{req: img, out: out})
	}
	defer func() {
		for _, ir := range r.images {
			r.res.Images = append(r.res.Images, *ir.out)
		}
		if err != nil {
			var f result.Failure
			f, err = failure(err, red)
			r.res.Failed = &f
			r.res.Changed = false
		}
		res = r.res
	}()

	steps := []step{
		{result.StepCheck, r.selectBuilder},
		{result.StepCheck, r.openRegistry},
		{result.StepSource, r.fetch},
		{result.StepInject, r.inject},
		{result.StepCheck, r.resolveSecrets},
		{result.StepCheck, r.connect},
	}
	if opts.DryRun {
		steps = append(steps, step{result.StepCheck, r.current}, step{result.StepCheck, r.plan})
	} else {
		// Where the tags point now is only needed to move them; it is looked up while the
		// images build. A registry that refuses the credentials (to read the tags) still stops
		// the builds; push access itself is proven by the push.
		steps = append(steps, step{result.StepBuild, concurrently(r.current, r.build)}, step{result.StepTag, r.tag})
	}
	return nil, r.execute(ctx, "imagebuilder-", steps)
}

// masked returns the options with everything the run emits — progress events, log lines —
// masked by the run's redactor (the caller's, else a new one), which first learns the request's
// secrets through addSecrets. The returned func flushes the progress still held back.
func masked(opts Options, addSecrets func(*redact.Redactor)) (Options, *redact.Redactor, func()) {
	red := opts.Redactor
	if red == nil {
		red = redact.New()
	}
	addSecrets(red)
	masker := progress.NewMasker(red, opts.Progress)
	if opts.Progress != nil {
		opts.Progress = masker.Status
	}
	if log := opts.Log; log != nil {
		opts.Log = func(line string) { log(red.String(line)) }
	}
	return opts, red, masker.Close
}

// execute runs the steps in a fresh workspace (named with prefix, removed at the end), closing
// the engines they opened; the first failure stops the run and is returned as an *Error naming
// its step.
func (r *run) execute(ctx context.Context, prefix string, steps []step) error {
	ws, err := os.MkdirTemp(r.opts.TempDir, prefix)
	if err != nil {
		return &Error{Step: result.StepSource, Err: fmt.Errorf("creating workspace: %w", err)}
	}
	r.ws = ws
	defer os.RemoveAll(ws)
	defer func() {
		if r.pool != nil {
			r.pool.close()
		}
	}()
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return &Error{Step: s.name, Err: err}
		}
		if err := s.run(ctx); err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				return err
			}
			return &Error{Step: s.name, Err: err}
		}
	}
	return nil
}

// failure makes a run's error an *Error (one that names no step is the run's own) and the
// failure it reports, both masked.
func failure(err error, red *redact.Redactor) (result.Failure, error) {
	var pe *Error
	if !errors.As(err, &pe) {
		pe = &Error{Step: "run", Err: err}
		err = pe
	}
	return result.Failure{Image: pe.Image, Step: pe.Step, Error: red.String(pe.Err.Error())}, red.Error(err)
}

// concurrently runs steps at the same time; the first error cancels the others and is
// returned.
func concurrently(steps ...func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		for _, s := range steps {
			g.Go(func() error { return s(ctx) })
		}
		return g.Wait()
	}
}

func (r *run) log(format string, args ...any) {
	if r.opts.Log != nil {
		r.opts.Log(fmt.Sprintf(format, args...))
	}
}

// fetch turns the source into a build context inside the workspace.
func (r *run) fetch(ctx context.Context) error {
	r.log("fetching %s source", r.p.Source.Kind())
	src, err := source.Fetch(ctx, r.p.Source, r.ws, source.WithLogger(func(line string) { r.log("%s", line) }))
	if err != nil {
		return err
	}
	r.src = src
	r.res.Source = &result.Source{Kind: src.Kind, URL: src.URL, Commit: src.Commit, Ref: src.Ref, Clean: src.Clean}
	return nil
}

// inject writes, for each variant, a copy of the Dockerfile with its bases replaced. Every
// image is prepared before anything is built, so a bad key fails the request up front.
func (r *run) inject(_ context.Context) error {
	data, err := r.src.ReadFile(r.src.Dockerfile)
	if err != nil {
		return fmt.Errorf("reading the Dockerfile: %w", err)
	}
	// A .dockerignore beside the Dockerfile (Dockerfile.dockerignore) must follow an injected
	// copy; it is read through the source's containment like the Dockerfile.
	ignore, err := r.src.ReadFile(r.src.Dockerfile + ".dockerignore")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s.dockerignore: %w", filepath.Base(r.src.Dockerfile), err)
	}
	for i, ir := range r.images {
		ir.contextDir = r.src.ContextDir
		ir.dockerfile = r.src.Dockerfile
		ir.buildArgs = copyMap(ir.req.BuildArgs)
		if ir.req.Base == "" && len(ir.req.Bases) == 0 {
			// Parse anyway: a Dockerfile that does not parse fails here, not in the builder.
			f, err := dockerfile.Parse(data, ir.req.BuildArgs)
			if err != nil {
				return &Error{Image: ir.out.Ref, Step: result.StepInject, Err: err}
			}
			ir.registries = baseRegistries(f)
		} else {
			inj, err := dockerfile.Inject(data, dockerfile.Injection{Base: ir.req.Base, Bases: ir.req.Bases}, ir.req.BuildArgs)
			if err != nil {
				return &Error{Image: ir.out.Ref, Step: result.StepInject, Err: err}
			}
			dir := filepath.Join(r.ws, "dockerfiles", strconv.Itoa(i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			ir.dockerfile = filepath.Join(dir, "Dockerfile")
			if err := os.WriteFile(ir.dockerfile, inj.Dockerfile, 0o644); err != nil {
				return fmt.Errorf("writing the injected Dockerfile: %w", err)
			}
			if ignore != nil {
				if err := os.WriteFile(ir.dockerfile+".dockerignore", ignore, 0o644); err != nil {
					return err
				}
			}
			for k, v := range inj.BuildArgs {
				ir.buildArgs[k] = v
			}
			f, err := dockerfile.Parse(inj.Dockerfile, ir.buildArgs)
			if err != nil {
				return &Error{Image: ir.out.Ref, Step: result.StepInject, Err: err}
			}
			ir.registries = baseRegistries(f)
			for _, c := range inj.Changes {
				stage := c.StageName
				if stage == "" {
					stage = strconv.Itoa(c.Stage)
				}
				bc := result.BaseChange{Stage: stage, From: c.From, To: c.To}
				if ir.out.Base == nil {
					ir.out.Base = &bc
				}
				ir.out.Bases = append(ir.out.Bases, bc)
			}
			if len(ir.out.Bases) < 2 {
				ir.out.Bases = nil
			}
			r.log("%s: base %s", ir.out.Ref, describeChanges(inj.Changes))
		}
		ir.labels = r.labels(ir)
		if ir.inputs = r.fingerprint(ir); ir.inputs != "" {
			ir.labels[InputsLabel] = ir.inputs
		}
	}
	return nil
}

// fingerprint hashes every input of an image's build, or returns "" when the source has no
// stable identity (a local directory with uncommitted changes, say).
func (r *run) fingerprint(ir *imageRun) string {
	src := r.src
	var id string
	switch {
	case src.Clean != nil && !*src.Clean:
		return ""
	case src.Kind == source.KindLocal && src.Commit == "":
		return ""
	default:
		id = strings.Join([]string{src.Kind, src.URL, src.ContextURL, src.Commit, src.SHA256}, "\x00")
	}
	df, err := os.ReadFile(ir.dockerfile)
	if err != nil {
		return ""
	}
	platforms := append([]string{}, ir.req.Platforms...)
	sort.Strings(platforms)
	return hashJSON(struct {
		Source     string
		Workdir    string
		Dockerfile []byte
		BuildArgs  map[string]string
		Target     string
		Labels     map[string]string
		Platforms  []string
		Secrets    []string // ids only: a secret's value never enters the fingerprint
		SSH        []string
	}{id, r.p.Source.ContextPath(), df, ir.buildArgs, ir.req.Target, ir.labels, platforms, secretIDs(r.p.BuildSecrets(ir.req)), sshIDs(r.p.SSHForwards(ir.req))})
}

// hashJSON is the digest of v's JSON encoding ("" if it has none).
func hashJSON(v any) string {
	doc, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return digest.FromBytes(doc).String()
}

func secretIDs(m map[string]params.Secret) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func sshIDs(specs []string) []string {
	ids := make([]string, len(specs))
	for i, s := range specs {
		ids[i], _, _ = strings.Cut(s, "=")
	}
	sort.Strings(ids)
	return ids
}

func describeChanges(cs []dockerfile.Change) string {
	s := ""
	for i, c := range cs {
		if i > 0 {
			s += ", "
		}
		s += c.From + " -> " + c.To
	}
	return s
}

// labels are the OCI labels added to every image; the user's labels win.
func (r *run) labels(ir *imageRun) map[string]string {
	l := map[string]string{}
	if r.src.URL != "" {
		l["org.opencontainers.image.source"] = r.src.URL
	}
	if r.src.Commit != "" {
		l["org.opencontainers.image.revision"] = r.src.Commit
	}
	if !r.src.CommitTime.IsZero() {
		// The commit time, not the build time: a rebuild of the same commit yields the same
		// image, so an unchanged request reports changed: false.
		l["org.opencontainers.image.created"] = r.src.CommitTime.UTC().Format(time.RFC3339)
	}
	if ir.out.Base != nil {
		l["org.opencontainers.image.base.name"] = ir.out.Base.To
	}
	for k, v := range ir.req.Labels {
		l[k] = v
	}
	return l
}

// resolveSecrets reads every image's build secrets (from the environment, files or the params)
// and parses its ssh forwards, so that a missing one fails the request before anything builds
// (and a dry run reports it). The values join the redactor; only their ids enter the inputs
// fingerprint.
func (r *run) resolveSecrets(context.Context) error {
	for i, ir := range r.images {
		fail := func(ptr string, err error) error {
			return &Error{Image: ir.out.Ref, Step: result.StepCheck, Err: fmt.Errorf("%s: %w", ptr, err)}
		}
		for id, sec := range r.p.BuildSecrets(ir.req) {
			ptr := "/secrets/" + id
			if _, own := ir.req.Secrets[id]; own {
				ptr = fmt.Sprintf("/target/images/%d/secrets/%s", i, id)
			}
			v, err := readSecret(sec)
			if err != nil {
				return fail(ptr, err)
			}
			r.red.Add(string(v))
			if ir.secrets == nil {
				ir.secrets = map[string][]byte{}
			}
			ir.secrets[id] = v
		}
		for _, spec := range r.p.SSHForwards(ir.req) {
			f, err := parseSSH(spec)
			if err != nil {
				return fail("ssh", err)
			}
			ir.ssh = append(ir.ssh, f)
		}
	}
	return nil
}

// readSecret returns the value of a build secret.
func readSecret(s params.Secret) ([]byte, error) {
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return []byte(v), nil
	case s.File != "":
		v, err := os.ReadFile(s.File)
		if err != nil {
			return nil, fmt.Errorf("reading the secret file: %w", err)
		}
		return v, nil
	}
	return []byte(s.Value), nil
}

// parseSSH parses an ssh forward as docker buildx build --ssh takes it: ID or ID=PATH[,PATH].
// "default" without paths is the agent at SSH_AUTH_SOCK, which must then be set.
func parseSSH(spec string) (builder.SSHForward, error) {
	id, paths, _ := strings.Cut(spec, "=")
	f := builder.SSHForward{ID: id}
	if paths != "" {
		f.Paths = strings.Split(paths, ",")
	}
	for _, p := range f.Paths {
		if _, err := os.Stat(p); err != nil {
			return f, fmt.Errorf("%q: %w", spec, err)
		}
	}
	if len(f.Paths) == 0 && os.Getenv("SSH_AUTH_SOCK") == "" {
		return f, fmt.Errorf("%q forwards the ssh agent, but SSH_AUTH_SOCK is not set", spec)
	}
	return f, nil
}

// selectBuilder decides which engines build (--builder, else builder.endpoint or the pool of
// builder.endpoints, else the environment) before any work, so that a bad choice fails first and
// the result names the engine even when a later step fails. Nothing is contacted yet.
func (r *run) selectBuilder(ctx context.Context) error {
	var err error
	if r.pool, err = r.newPool(r.p.Builder, 0); err != nil {
		return err
	}
	// The engine a request builds on opens while the source is fetched: a plugin's process
	// start and handshake, or a remote daemon's dial, then cost no time of their own. connect
	// gets the same engine (or, when opening failed, opens it again and reports why).
	go r.pool.get(ctx, r.pool.endpoints[0].Name) //nolint:errcheck // connect reports it
	return nil
}

// newPool prepares the engines a run builds on, from --builder and the builder settings.
func (r *run) newPool(b *params.Builder, jobs int) (*pool, error) {
	r.endpoint = r.opts.Endpoint
	if r.endpoint == "" && b != nil {
		r.endpoint = b.Endpoint
	}
	if b != nil && b.TLS != nil {
		r.bopts = append(r.bopts, builder.WithTLS(builder.TLSConfig{
			CACert: b.TLS.CACert, Cert: b.TLS.Cert, Key: b.TLS.Key, ServerName: b.TLS.ServerName,
		}))
	}
	r.bopts = append(r.bopts, r.opts.BuilderOptions...)
	open := r.opts.NewBuilder
	if open == nil {
		open = func(ctx context.Context, endpoint string) (builder.Builder, error) {
			return builder.New(ctx, endpoint, r.bopts...)
		}
	}
	// One engine builds several images at once (BuildKit and the Docker daemon run concurrent
	// builds); --jobs raises or lowers that.
	endpoints := []schedule.Endpoint{{Name: r.endpoint, Jobs: cmp.Or(jobs, DefaultJobs)}}
	if r.opts.Endpoint == "" && b != nil && len(b.Endpoints) > 0 {
		endpoints = endpoints[:0]
		for _, e := range b.Endpoints {
			endpoints = append(endpoints, schedule.Endpoint{Name: e.Endpoint, Jobs: max(e.Jobs, 1), Platforms: e.Platforms})
		}
	}
	p := &pool{endpoints: endpoints, open: open}
	if r.opts.NewBuilder != nil {
		return p, nil // the caller's engines describe themselves once opened
	}
	for i, e := range endpoints {
		sel, err := builder.Select(e.Name, r.bopts...)
		if err != nil {
			if len(endpoints) > 1 {
				err = fmt.Errorf("/builder/endpoints/%d: %w", i, err)
			}
			return nil, err
		}
		if i == 0 {
			r.res.Builder = &result.Builder{Kind: string(sel.Kind), Endpoint: sel.Endpoint}
		}
	}
	return p, nil
}

// openRegistry opens the registry client (nothing is contacted yet), names the stage tags of a
// staged upload, and refuses, before any work, an image its credentials may not write.
func (r *run) openRegistry(context.Context) error {
	reg, err := r.registryClient(r.p.Target.Registry)
	if err != nil {
		return err
	}
	r.reg = reg
	for _, ir := range r.images {
		if ir.out.StageTags, err = r.p.Target.Registry.StageTags(ir.out.Tags, r.opts.Vars); err != nil {
			return &Error{Image: ir.out.Ref, Step: result.StepCheck, Err: fmt.Errorf("/target/registry/%w", err)}
		}
		if err := reg.CheckWrite(ir.out.Repository); err != nil {
			return &Error{Image: ir.out.Ref, Step: result.StepCheck, Err: err}
		}
	}
	return nil
}

// connect opens the build engine (the first of a pool; the others open when they get their
// first image).
func (r *run) connect(ctx context.Context) error {
	bld, err := r.pool.get(ctx, r.pool.endpoints[0].Name)
	if err != nil {
		return err
	}
	sel := bld.Selection()
	r.res.Builder = &result.Builder{Kind: string(sel.Kind), Endpoint: sel.Endpoint}
	r.log("builder: %s %s (%s)", sel.Kind, sel.Endpoint, sel.Origin)
	// The engine's native platform is needed for images that name none; a dry run asks in any
	// case, to check that the engine answers. Otherwise the build itself finds out.
	needInfo := r.opts.DryRun
	for _, ir := range r.images {
		needInfo = needInfo || len(ir.out.Platforms) == 0
	}
	if !needInfo {
		return nil
	}
	info, err := bld.Info(ctx)
	if err != nil {
		return err
	}
	for _, ir := range r.images {
		if len(ir.out.Platforms) == 0 {
			ir.out.Platforms = []string{info.NativePlatform}
		}
	}
	return nil
}

// registryClient opens the one registry client of a run: the target registry's credentials and
// TLS rules, the Docker config for every other host, the run's redactor and the push cache.
func (r *run) registryClient(reg params.Registry) (*registry.Client, error) {
	ropts, err := RegistryOptions(reg, r.registryPointer)
	if err != nil {
		return nil, err
	}
	ropts = append(ropts, registry.WithRedactor(r.red))
	if dir, err := os.UserCacheDir(); err == nil {
		// What this machine pushed where: an unchanged image pushed again costs a manifest
		// check instead of an export and a recompression (the Docker endpoint's case).
		ropts = append(ropts, registry.WithPushCache(filepath.Join(dir, "imagebuilder", "push-cache.json")))
	}
	return registry.New(append(ropts, r.opts.RegistryOptions...)...)
}

// RegistryOptions are the registry client options of a target registry as build params and
// family files give it (pointer is where it is in the input: "/target/registry", "/registry"):
// its credentials, its TLS rule, and its repositories as a write scope.
func RegistryOptions(reg params.Registry, pointer string) ([]registry.Option, error) {
	host, err := registry.Host(reg.URL)
	if err != nil {
		return nil, err
	}
	var ropts []registry.Option
	if reg.Username != "" || reg.Password != "" {
		ropts = append(ropts, registry.WithCredentials(host, registry.Credentials{Username: reg.Username, Password: reg.Password}))
	}
	if reg.Insecure {
		ropts = append(ropts, registry.WithInsecure(host))
	}
	if len(reg.Repositories) > 0 {
		ropts = append(ropts, registry.WithScopes(registry.Scope{Registry: host, Repositories: reg.Repositories, Origin: pointer + "/repositories"}))
	}
	return ropts, nil
}

// current records where every requested tag points now. In a dry run it first checks that the
// registry accepts a push from these credentials (without writing anything); a real run needs
// no such check, its push is the proof, and the check's round trips would only compete with
// the build.
func (r *run) current(ctx context.Context) error {
	checked := map[string]bool{}
	for _, ir := range r.images {
		if r.opts.DryRun && !checked[ir.out.Repository] {
			checked[ir.out.Repository] = true
			if err := r.reg.CheckPush(ctx, ir.out.Repository); err != nil {
				return &Error{Image: ir.out.Ref, Step: result.StepCheck, Err: err}
			}
		}
		ir.current = map[string]string{}
		for _, tag := range ir.out.PushedTags() {
			ref := ir.out.Repository + ":" + tag
			d, err := r.reg.Resolve(ctx, ref)
			switch {
			case errors.Is(err, registry.ErrNotFound):
				ir.current[tag] = ""
			case err != nil:
				return &Error{Image: ir.out.Ref, Step: result.StepCheck, Err: err}
			default:
				ir.current[tag] = d.Digest
			}
		}
	}
	return nil
}

// plan reports, in a dry run, what would change. An image is unchanged when all its tags
// already point at one image whose inputs fingerprint equals this request's; anything else
// (a missing tag, another fingerprint, a source without a stable identity) would change.
// A base image that moved under the same tag is not seen without a build.
func (r *run) plan(ctx context.Context) error {
	for _, ir := range r.images {
		ir.out.Previous = previous(ir.current)
		if r.unchanged(ctx, ir) {
			ir.out.Digest = ir.current[ir.out.PushedTags()[0]]
			r.log("%s: up to date (%s)", ir.out.Ref, ir.out.Digest)
			continue
		}
		ir.out.Changed = true
		r.res.Changed = true
		r.log("%s: would build %v and push %d tag(s)", ir.out.Ref, ir.out.Platforms, len(ir.out.PushedTags()))
	}
	return nil
}

func (r *run) unchanged(ctx context.Context, ir *imageRun) bool {
	d := ir.current[ir.out.PushedTags()[0]]
	if ir.inputs == "" || d == "" {
		return false
	}
	for _, t := range ir.out.PushedTags() {
		if ir.current[t] != d {
			return false
		}
	}
	labels, err := r.reg.Labels(ctx, ir.out.Repository+"@"+d)
	return err == nil && labels[InputsLabel] == ir.inputs
}

// build builds and pushes every image by digest, each on a free engine of the pool, at the same
// time as far as the pool allows; no tag moves here. The first failure stops the others.
func (r *run) build(ctx context.Context) error {
	var tasks []schedule.Task
	byID := map[string]*imageRun{}
	for i, ir := range r.images {
		id := strconv.Itoa(i)
		tasks = append(tasks, r.imageTasks(id, ir, nil)...)
		byID[id] = ir
	}
	outcomes := schedule.Run(ctx, tasks, r.scheduleOptions(false, 0), func(ctx context.Context, t schedule.Task, endpoint string) error {
		id, platform := platformTask(t.ID)
		ir := byID[id]
		switch {
		case platform != "":
			return r.buildPlatform(ctx, ir, platform, endpoint)
		case ir.split:
			return r.joinPlatforms(ctx, ir)
		}
		return r.buildImage(ctx, ir, endpoint)
	})
	// The first failure in request order is the request's: the others were stopped by it.
	if err := firstFailure(tasks, outcomes); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, t := range tasks {
		if o := outcomes[t.ID]; o == nil || o.State != schedule.Done {
			id, _ := platformTask(t.ID)
			return &Error{Image: byID[id].out.Ref, Step: result.StepBuild, Err: errNotBuilt}
		}
	}
	return nil
}

// scheduleOptions are the scheduler's settings for this run's pool.
func (r *run) scheduleOptions(keepGoing bool, jobs int) schedule.Options {
	return schedule.Options{
		Endpoints: r.pool.endpoints,
		Jobs:      jobs,
		KeepGoing: keepGoing,
		Event:     r.scheduleEvent,
	}
}

// scheduleEvent logs what the scheduler does about failures: a retry, an image moved to another
// engine, an engine lost.
func (r *run) scheduleEvent(e schedule.Event) {
	switch e.Kind {
	case schedule.EventRetrying:
		r.log("%s: retrying in %s (attempt %d): %v", e.Task, e.Delay, e.Attempt, e.Err)
	case schedule.EventRequeued:
		r.log("%s: back in the queue after losing %s: %v", e.Task, r.pool.describe(e.Endpoint), e.Err)
	case schedule.EventEndpointLost:
		r.log("engine %s lost: %v", r.pool.describe(e.Endpoint), e.Err)
	}
}

// buildImage builds one image, all its platforms, on an engine of the pool and pushes it by
// digest.
func (r *run) buildImage(ctx context.Context, ir *imageRun, endpoint string) error {
	r.log("building %s for %v on %s", ir.out.Ref, ir.out.Platforms, r.pool.describe(endpoint))
	br, err := r.buildOn(ctx, ir, ir.req.Platforms, endpoint)
	if err != nil {
		return err
	}
	ir.out.Digest = br.Digest
	ir.out.Platforms = br.Platforms
	ir.out.PlatformBuilds = nil
	if len(br.Platforms) == 1 {
		// One platform: the digest is its manifest's; asking the registry would cost a
		// repository ping and a manifest fetch (≈ 10 ms of a cached build's 80).
		ir.out.PlatformBuilds = []result.PlatformDigest{{Platform: br.Platforms[0], Endpoint: r.pool.describe(endpoint), Digest: br.Digest}}
	} else if ms, err := r.reg.Manifests(ctx, ir.out.Repository+"@"+br.Digest); err == nil {
		for _, m := range ms {
			ir.out.PlatformBuilds = append(ir.out.PlatformBuilds, result.PlatformDigest{Platform: m.Platform, Endpoint: r.pool.describe(endpoint), Digest: m.Digest})
		}
	}
	r.log("%s: pushed %s", ir.out.Ref, br.Digest)
	return nil
}

// buildStep names the step of a builder failure: push when the image was built but could not
// be pushed (or its index could not), build otherwise.
func buildStep(err error) string {
	var be *builder.Error
	if errors.As(err, &be) && (be.Step == builder.StepPush || be.Step == builder.StepIndex) {
		return result.StepPush
	}
	return result.StepBuild
}

// credentials answers the builder's credential requests (pulls of base images, a buildkit
// endpoint's push) from the registry client: the params' credentials for their registry, else
// the Docker config and its credential helpers — one keychain for every path. A helper that
// fails is an error that fails the pull, naming the helper.
func (r *run) credentials(ctx context.Context) func(host string) (string, string, error) {
	return func(host string) (string, string, error) {
		c, ok, err := r.reg.Auth(ctx, host)
		switch {
		case err != nil:
			return "", "", err
		case !ok:
			return "", "", nil
		case c.IdentityToken != "":
			return "", c.IdentityToken, nil
		case c.RegistryToken != "" && c.Password == "":
			return "", "", fmt.Errorf("the Docker config holds a registry token for %s, which BuildKit cannot use; log in with a user name and password or an identity token", host)
		}
		return c.Username, c.Password, nil
	}
}

// tag moves every tag that does not already point at the built digest, all together: if a move
// fails, the moves already made are undone (see publish.Apply).
func (r *run) tag(ctx context.Context) error {
	var moves []publish.Move
	var owners []*imageRun
	for _, ir := range r.images {
		ir.out.Previous = previous(ir.current)
		for _, tag := range ir.out.PushedTags() {
			if ir.current[tag] == ir.out.Digest {
				continue
			}
			moves = append(moves, publish.Move{Repository: ir.out.Repository, Tag: tag, Source: ir.out.Repository + "@" + ir.out.Digest, Previous: ir.current[tag]})
			owners = append(owners, ir)
		}
	}
	err := publish.Apply(ctx, r.reg, moves, func(i int) {
		owners[i].out.Changed = true
		r.res.Changed = true
		r.log("%s -> %s", moves[i].Ref(), owners[i].out.Digest)
	})
	var pe *publish.Error
	if errors.As(err, &pe) {
		for _, ir := range owners[:pe.Index] {
			ir.out.Changed = false
		}
		return &Error{Image: owners[pe.Index].out.Ref, Step: result.StepTag, Err: err}
	}
	return err
}

func previous(current map[string]string) map[string]string {
	out := map[string]string{}
	for t, d := range current {
		if d != "" {
			out[t] = d
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
