package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/client"
	"golang.org/x/sync/errgroup"

	"github.com/imagebuilder/imagebuilder/internal/dockerfile"
	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/graph"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/progress"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/schedule"
	"github.com/imagebuilder/imagebuilder/internal/source"
)

// FamilyOptions control a family run. Options.DryRun makes it a plan.
type FamilyOptions struct {
	Options
	// Select names images (exact names, else regular expressions) to build with their
	// ancestors; empty: all.
	Select []string
	// Exclude names images (or regular expressions) not to build.
	Exclude []string
	// SkipParents builds only the selected images, on their parents as the registry serves them.
	SkipParents bool
	// KeepGoing builds everything whose ancestry succeeded and publishes it; the default is
	// all-or-nothing.
	KeepGoing bool
	// Rebuild builds every selected image, even when the registry serves identical inputs.
	Rebuild bool
	// Jobs caps the images built at once (0: the pool's capacity).
	Jobs int
	// LogsDir receives one build log per image, and FAILED_<name>.log for each failure.
	LogsDir string
	// Graph, when set, receives the family's dependency graph once it is known.
	Graph func(*graph.Graph)
}

// errImagesFailed is the run's error when images failed (each is in the report's failed list).
var errImagesFailed = errors.New("image(s) failed")

// familyRun is a family as it goes through the steps; it shares a request's run for the
// registry client, the pool, building by digest and publishing.
type familyRun struct {
	*run
	fam     *family.Family
	fopts   FamilyOptions
	fetched map[string]*source.Fetched
	images  map[string]*member // by name
	order   []string           // the selected images, parents first
	g       *graph.Graph
	pulled  map[string]string // external reference -> digest ("" when it could not be resolved)
	pullErr map[string]error
	rep     *result.Report
	mu      sync.Mutex
}

// member is one image of the family.
type member struct {
	img      family.Image
	ir       *imageRun
	dir      string // its workspace
	data     []byte // its Dockerfile after templates, header/footer and bases
	args     map[string]string
	refs     []dockerfile.Reference
	ctxHash  string
	ignore   []byte
	selected bool
	out      *result.FamilyImage
	served   *registry.Image // what its tag served before the run (nil: nothing)

	decided   sync.Once // its decision once its parents are done (a split image's tasks share it)
	decideErr error
	logOnce   sync.Once
	logErr    error
	closeLog  func() // closes its build log (nil without one)
}

// RunFamily builds a family: every selected image in dependency order, each FROM its parents'
// fresh digests, only what is stale, across the pool; tags move at the end, all together. It
// always returns a report; the error is an *Error for the run's own failures, or names the
// failed images.
func RunFamily(ctx context.Context, fam *family.Family, opts FamilyOptions) (rep *result.Report, err error) {
	var red *redact.Redactor
	var closeMasker func()
	opts.Options, red, closeMasker = masked(opts.Options, fam.AddSecrets)
	defer closeMasker()
	bp := params.BuildParams{Builder: fam.Builder, Secrets: fam.Secrets, Target: params.Target{Registry: fam.Registry}}
	fr := &familyRun{
		run:   &run{p: bp, opts: opts.Options, red: red, res: &result.Result{}, registryPointer: "/registry"},
		fam:   fam,
		fopts: opts,
		rep:   &result.Report{DryRun: opts.DryRun, Images: []result.FamilyImage{}, Failed: []result.Failure{}},
	}
	defer func() {
		fr.report()
		if err != nil {
			imagesFailed := errors.Is(err, errImagesFailed) // each is in the report already
			var f result.Failure
			if f, err = failure(err, red); !imagesFailed {
				fr.rep.Failed = append(fr.rep.Failed, f)
			}
		}
		fr.rep.Builder = fr.res.Builder
		rep = fr.rep
	}()
	steps := []step{
		{result.StepCheck, fr.selectBuilder},
		{result.StepSource, fr.fetch},
		{result.StepInject, fr.prepare},
		{result.StepCheck, fr.resolveGraph},
		{result.StepCheck, fr.resolveSecrets},
		{result.StepCheck, fr.openRegistry},
		{result.StepCheck, concurrently(fr.current, fr.pull)},
		{result.StepCheck, fr.plan},
	}
	if !opts.DryRun {
		steps = append(steps, step{result.StepBuild, fr.build}, step{result.StepTag, fr.publish})
	}
	if err := fr.execute(ctx, "imagebuilder-family-", steps); err != nil {
		return nil, err
	}
	if len(fr.rep.Failed) > 0 {
		names := make([]string, len(fr.rep.Failed))
		for i, f := range fr.rep.Failed {
			names[i] = f.Image
		}
		return nil, &Error{Step: result.StepBuild, Err: fmt.Errorf("%w: %s", errImagesFailed, strings.Join(names, ", "))}
	}
	return nil, nil
}

func (fr *familyRun) selectBuilder(context.Context) error {
	var err error
	fr.pool, err = fr.newPool(fr.fam.Builder, fr.fopts.Jobs)
	return err
}

// fetch fetches every source an image or a component uses, once, a few at a time.
func (fr *familyRun) fetch(ctx context.Context) error {
	fr.fetched = map[string]*source.Fetched{}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range fr.fam.Sources {
			if !yield(n) {
				return
			}
		}
	})
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, name := range names {
		g.Go(func() error {
			fr.log("fetching source %s (%s)", name, fr.fam.Sources[name].Kind())
			dir := filepath.Join(fr.ws, "sources", strconv.Itoa(i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			f, err := source.Fetch(gctx, fr.fam.Sources[name], dir, source.ContextsOnly(), source.WithLogger(func(line string) { fr.log("%s: %s", name, line) }))
			if err != nil {
				return fmt.Errorf("source %s: %w", name, err)
			}
			mu.Lock()
			fr.fetched[name] = f
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// prepare renders every image's Dockerfile, applies its bases, hashes its context and finds the
// images it uses.
func (fr *familyRun) prepare(context.Context) error {
	fr.images = map[string]*member{}
	for i, img := range fr.fam.Images {
		m := &member{img: img, dir: filepath.Join(fr.ws, "images", strconv.Itoa(i))}
		fail := func(err error) error { return &Error{Image: img.Name, Step: result.StepInject, Err: err} }
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		prep, err := fr.fam.Prepare(img, fr.fetched, m.dir)
		if err != nil {
			return fail(err)
		}
		m.args = copyMap(img.BuildArgs)
		m.data = prep.Data
		if len(img.Bases) > 0 {
			inj, err := dockerfile.Inject(m.data, dockerfile.Injection{Bases: img.Bases}, m.args)
			if err != nil {
				return fail(err)
			}
			m.data = inj.Dockerfile
			for k, v := range inj.BuildArgs {
				m.args[k] = v
			}
		}
		f, err := dockerfile.Parse(m.data, m.args)
		if err != nil {
			return fail(err)
		}
		m.refs = f.References()
		registries := baseRegistries(f)
		// The .dockerignore in force: the Dockerfile's own, else the context's.
		for _, name := range []string{prep.Dockerfile + ".dockerignore", filepath.Join(prep.ContextDir, ".dockerignore")} {
			data, err := os.ReadFile(name)
			if err == nil {
				m.ignore = data
				break
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return fail(err)
			}
		}
		if m.ctxHash, err = source.HashContext(prep.ContextDir, m.ignore); err != nil {
			return fail(err)
		}
		m.ir = &imageRun{
			req:        params.Image{Image: img.Name, Tag: img.Tag, Platforms: img.Platforms, Target: img.Target},
			contextDir: prep.ContextDir,
			registries: registries,
			out: &result.Image{
				Ref:        img.Repository + ":" + img.Tag,
				Image:      img.Name,
				Tag:        img.Tag,
				Tags:       img.Tags,
				Repository: img.Repository,
				Platforms:  slices.Clone(img.Platforms),
			},
		}
		m.out = &result.FamilyImage{
			Name: img.Name, Ref: m.ir.out.Ref, Repository: img.Repository, Tags: img.Tags,
			Platforms: platformList(img.Platforms), Parents: []result.Parent{},
		}
		fr.images[img.Name] = m
	}
	return nil
}

func platformList(ps []string) []result.PlatformDigest {
	out := make([]result.PlatformDigest, len(ps))
	for i, p := range ps {
		out[i] = result.PlatformDigest{Platform: p}
	}
	return out
}

// resolveGraph builds the dependency graph (a cycle fails here) and selects the images to
// consider.
func (fr *familyRun) resolveGraph(context.Context) error {
	nodes := make([]graph.Node, len(fr.fam.Images))
	for i, img := range fr.fam.Images {
		nodes[i] = graph.Node{Name: img.Name, Repository: img.Repository, Path: repoPath(img.Repository), Refs: fr.images[img.Name].refs}
	}
	g, err := graph.New(nodes)
	if err != nil {
		return err
	}
	fr.g = g
	if fr.fopts.Graph != nil {
		fr.fopts.Graph(g)
	}
	sel, err := g.Select(fr.fopts.Select, fr.fopts.Exclude, fr.fopts.SkipParents)
	if err != nil {
		return err
	}
	for _, n := range sel {
		fr.images[n].selected = true
	}
	for _, n := range g.Order() {
		if fr.images[n].selected {
			fr.order = append(fr.order, n)
		}
	}
	for _, n := range fr.order {
		m := fr.images[n]
		for _, e := range g.Parents(n) {
			if !slices.ContainsFunc(m.out.Parents, func(p result.Parent) bool { return p.Name == e.Parent }) {
				m.out.Parents = append(m.out.Parents, result.Parent{Name: e.Parent})
			}
		}
	}
	return nil
}

// repoPath is a repository without its registry: "ns/name".
func repoPath(repo string) string {
	if n, err := reference.ParseNormalizedNamed(repo); err == nil {
		return reference.Path(n)
	}
	return repo
}

// resolveSecrets reads the selected images' build secrets, so that a missing one fails before
// anything builds.
func (fr *familyRun) resolveSecrets(context.Context) error {
	for _, n := range fr.order {
		m := fr.images[n]
		for id, sec := range m.img.Secrets {
			v, err := readSecret(sec)
			if err != nil {
				return &Error{Image: n, Step: result.StepCheck, Err: fmt.Errorf("%s/secrets/%s: %w", m.img.Pointer, id, err)}
			}
			fr.red.Add(string(v))
			if m.ir.secrets == nil {
				m.ir.secrets = map[string][]byte{}
			}
			m.ir.secrets[id] = v
		}
		for _, spec := range m.img.SSH {
			f, err := parseSSH(spec)
			if err != nil {
				return &Error{Image: n, Step: result.StepCheck, Err: fmt.Errorf("%s/ssh: %w", m.img.Pointer, err)}
			}
			m.ir.ssh = append(m.ir.ssh, f)
		}
	}
	return nil
}

// openRegistry opens the registry client (the engines open when they get their first image, so
// a family where nothing is stale contacts none), names the stage tags of a staged upload, and
// refuses, before anything builds, an image the credentials may not write.
func (fr *familyRun) openRegistry(context.Context) error {
	reg, err := fr.registryClient(fr.fam.Registry)
	if err != nil {
		return err
	}
	fr.reg = reg
	vars := maps.Clone(fr.fam.Variables)
	if vars == nil {
		vars = map[string]string{}
	}
	maps.Copy(vars, fr.opts.Vars)
	for _, n := range fr.order {
		m := fr.images[n]
		if m.ir.out.StageTags, err = fr.fam.Registry.StageTags(m.ir.out.Tags, vars); err != nil {
			return &Error{Image: n, Step: result.StepCheck, Err: fmt.Errorf("/registry/%w", err)}
		}
		m.out.StageTags = m.ir.out.StageTags
		if err := reg.CheckWrite(m.img.Repository); err != nil {
			return &Error{Image: n, Step: result.StepCheck, Err: err}
		}
	}
	return nil
}

// current records where the tags of every selected image point, and resolves the parents that
// are not selected (--skip-parents, --exclude) to the digests their tags serve.
func (fr *familyRun) current(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, m := range fr.images {
		needed := m.selected
		if !needed {
			for _, c := range fr.g.Children(m.img.Name) {
				needed = needed || fr.images[c].selected
			}
		}
		if !needed {
			continue
		}
		g.Go(func() error {
			cur := map[string]string{}
			for i, tag := range m.ir.out.PushedTags() {
				ref := m.img.Repository + ":" + tag
				var d string
				var err error
				if i == 0 && m.selected {
					// The image's own tag is read whole: one fetch tells where it points
					// and, for the decision, what it serves.
					var img *registry.Image
					if img, err = fr.reg.Inspect(gctx, ref); err == nil {
						d, m.served = img.Digest, img
					}
				} else {
					var desc registry.Descriptor
					desc, err = fr.reg.Resolve(gctx, ref)
					d = desc.Digest
				}
				if err != nil && !errors.Is(err, registry.ErrNotFound) {
					return &Error{Image: m.img.Name, Step: result.StepCheck, Err: err}
				}
				cur[tag] = d
			}
			m.ir.current = cur
			return nil
		})
	}
	return g.Wait()
}

// pull resolves every external image the selected images use, and the family's pull list, to
// digests, once each.
func (fr *familyRun) pull(ctx context.Context) error {
	refs := slices.Clone(fr.fam.Pull)
	for _, n := range fr.order {
		for _, r := range fr.g.Externals(n) {
			if !slices.Contains(refs, r.Ref) {
				refs = append(refs, r.Ref)
			}
		}
	}
	fr.pulled, fr.pullErr = map[string]string{}, map[string]error{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, ref := range refs {
		g.Go(func() error {
			d, err := fr.reg.Resolve(gctx, ref)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fr.pullErr[ref] = err
				return nil
			}
			fr.pulled[ref] = d.Ref()
			return nil
		})
	}
	return g.Wait()
}

// plan decides, parents first, what each selected image needs. An image whose parent builds
// builds too (decided again once the parent's digest is known); the others are compared with
// what the registry serves.
func (fr *familyRun) plan(ctx context.Context) error {
	for _, ref := range fr.fam.Pull {
		if err := fr.pullErr[ref]; err != nil {
			return &Error{Image: ref, Step: result.StepCheck, Err: fmt.Errorf("resolving the pulled image: %w", err)}
		}
	}
	// Level by level: the images of a level depend only on earlier levels, so they are decided
	// at the same time.
	for _, level := range fr.g.Levels() {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(16)
		for _, n := range level {
			m := fr.images[n]
			if !m.selected {
				continue
			}
			if waiting := fr.waitingOn(m); waiting != "" {
				m.out.Decision, m.out.Reason = result.DecisionBuild, "parent "+waiting+" builds"
				continue
			}
			g.Go(func() error {
				return fr.decide(gctx, m)
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	for _, m := range fr.images {
		if m.selected && m.out.Decision == result.DecisionBuild {
			m.out.Changed = true
			fr.rep.Changed = true
		}
	}
	return nil
}

// waitingOn names a parent whose digest is not known yet (it builds), or "".
func (fr *familyRun) waitingOn(m *member) string {
	for _, e := range fr.g.Parents(m.img.Name) {
		p := fr.images[e.Parent]
		if fr.parentDigest(p) == "" {
			return e.Parent
		}
	}
	return ""
}

// parentDigest is the digest a child builds on: what the parent built or skipped to, or, for a
// parent that is not selected, what its tag serves.
func (fr *familyRun) parentDigest(p *member) string {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if p.selected {
		if p.out.Decision == result.DecisionSkip || (p.out.Decision == result.DecisionBuild && p.ir.out.Digest != "" && !fr.rep.DryRun) {
			return p.ir.out.Digest
		}
		return ""
	}
	return p.ir.current[p.img.Tag]
}

// decide computes an image's inputs with its parents' digests and compares them with what the
// registry serves: skip when every tag points at one image carrying the same inputs label.
func (fr *familyRun) decide(ctx context.Context, m *member) error {
	pins := map[string]string{}
	for _, e := range fr.g.Parents(m.img.Name) {
		d := fr.parentDigest(fr.images[e.Parent])
		if d == "" {
			return &Error{Image: m.img.Name, Step: result.StepCheck, Err: fmt.Errorf("parent %s: %s is not in the registry", e.Parent, fr.images[e.Parent].ir.out.Ref)}
		}
		pins[e.Ref.Ref] = fr.images[e.Parent].img.Repository + "@" + d
		for i := range m.out.Parents {
			if m.out.Parents[i].Name == e.Parent {
				m.out.Parents[i].Digest = d
			}
		}
	}
	for _, r := range fr.g.Externals(m.img.Name) {
		if d := fr.pulled[r.Ref]; d != "" {
			pins[r.Ref] = d
		}
	}
	pinned, err := dockerfile.Pin(m.data, pins, m.args)
	if err != nil {
		return &Error{Image: m.img.Name, Step: result.StepInject, Err: err}
	}
	ir := m.ir
	ir.buildArgs = copyMap(m.args)
	for k, v := range pinned.BuildArgs {
		ir.buildArgs[k] = v
	}
	ir.dockerfile = filepath.Join(m.dir, "Dockerfile")
	if err := os.WriteFile(ir.dockerfile, pinned.Dockerfile, 0o644); err != nil {
		return err
	}
	if m.ignore != nil {
		if err := os.WriteFile(ir.dockerfile+".dockerignore", m.ignore, 0o644); err != nil {
			return err
		}
	}
	ir.labels = fr.labels(m)
	ir.inputs = fr.inputs(m, pinned.Dockerfile)
	ir.labels[InputsLabel] = ir.inputs
	m.out.Inputs = ir.inputs
	if fr.fopts.Rebuild {
		m.out.Decision, m.out.Reason = result.DecisionBuild, "--rebuild"
		return nil
	}
	tags := ir.out.PushedTags()
	d := ir.current[tags[0]]
	if d == "" {
		m.out.Decision, m.out.Reason = result.DecisionBuild, "tag "+tags[0]+" is not in the registry"
		return nil
	}
	for _, t := range tags {
		if ir.current[t] != d {
			m.out.Decision, m.out.Reason = result.DecisionBuild, "tag "+t+" is missing or points elsewhere"
			return nil
		}
	}
	// One manifest and one config fetch tell both whether the inputs match and, if they do,
	// the platforms the image serves.
	img := m.served
	if img == nil || img.Digest != d {
		var err error
		if img, err = fr.reg.Inspect(ctx, ir.out.Repository+"@"+d); err != nil {
			img = nil
		}
	}
	if img == nil || img.Labels[InputsLabel] != ir.inputs {
		m.out.Decision, m.out.Reason = result.DecisionBuild, "inputs changed"
		return nil
	}
	fr.mu.Lock()
	ir.out.Digest = d
	m.out.Platforms = platformDigests(img.Manifests)
	fr.mu.Unlock()
	m.out.Decision, m.out.Reason = result.DecisionSkip, "the registry serves "+d+" with identical inputs"
	return nil
}

// labels are the OCI labels of a family image: its source's, then the user's.
func (fr *familyRun) labels(m *member) map[string]string {
	l := map[string]string{}
	if src := fr.fetched[m.img.Source]; src != nil {
		if src.URL != "" {
			l["org.opencontainers.image.source"] = src.URL
		}
		if src.Commit != "" {
			l["org.opencontainers.image.revision"] = src.Commit
		}
	}
	for k, v := range m.img.Labels {
		l[k] = v
	}
	return l
}

// inputs hashes what the image is built from: the pinned Dockerfile (which names the parents'
// and externals' digests), the context's files, build args, target, platforms, labels and
// secrets by id.
//
// The proxy variables (proxy_from_env) are left out: where the build machine reaches the network
// through does not change what the image is, and a family built behind another proxy is not stale.
func (fr *familyRun) inputs(m *member, pinned []byte) string {
	platforms := slices.Clone(m.img.Platforms)
	slices.Sort(platforms)
	args := maps.Clone(m.ir.buildArgs)
	for _, k := range family.ProxyVars {
		delete(args, k)
	}
	return hashJSON(struct {
		Dockerfile []byte
		Context    string
		BuildArgs  map[string]string
		Target     string
		Labels     map[string]string
		Platforms  []string
		Secrets    []string
		SSH        []string
	}{pinned, m.ctxHash, args, m.img.Target, m.ir.labels, platforms, secretIDs(m.img.Secrets), sshIDs(m.img.SSH)})
}

// build schedules the images that do not skip over the pool, parents first; each decides again
// once its parents are done, with their new digests.
func (fr *familyRun) build(ctx context.Context) error {
	// What the plan skips is done: only the rest is scheduled, after its parents that build.
	var tasks []schedule.Task
	var scheduled []*member
	building := func(m *member) bool { return m.selected && m.out.Decision != result.DecisionSkip }
	for _, n := range fr.order {
		m := fr.images[n]
		if !building(m) {
			continue
		}
		var deps []string
		for _, e := range fr.g.Parents(n) {
			if building(fr.images[e.Parent]) && !slices.Contains(deps, e.Parent) {
				deps = append(deps, e.Parent)
			}
		}
		tasks = append(tasks, fr.imageTasks(n, m.ir, deps)...)
		scheduled = append(scheduled, m)
	}
	opts := fr.scheduleOptions(fr.fopts.KeepGoing, fr.fopts.Jobs)
	opts.Event = fr.progressEvent(len(scheduled), opts.Event)
	outcomes := schedule.Run(ctx, tasks, opts, func(ctx context.Context, t schedule.Task, endpoint string) error {
		name, platform := platformTask(t.ID)
		m := fr.images[name]
		// The parents are done: decide with their digests (once, for all of a split image's
		// tasks).
		m.decided.Do(func() { m.decideErr = fr.decide(ctx, m) })
		if m.decideErr != nil || m.out.Decision == result.DecisionSkip {
			return m.decideErr
		}
		if err := fr.openLog(m); err != nil {
			return err
		}
		switch {
		case platform != "":
			return fr.buildPlatform(ctx, m.ir, platform, endpoint)
		case m.ir.split:
			if err := fr.joinPlatforms(ctx, m.ir); err != nil {
				return err
			}
		default:
			if err := fr.buildImage(ctx, m.ir, endpoint); err != nil {
				return err
			}
		}
		fr.mu.Lock()
		m.out.Platforms = m.ir.out.PlatformBuilds
		fr.mu.Unlock()
		return nil
	})
	for _, m := range scheduled {
		if m.closeLog != nil {
			m.closeLog()
		}
		fr.record(m, combine(outcomes, m.img.Name, m.img.Platforms, m.ir.split))
	}
	return ctx.Err()
}

// progressEvent shows the family's progress on every start and finish — how many images are
// done, running and queued, and which are running — then passes the event on.
func (fr *familyRun) progressEvent(total int, next func(schedule.Event)) func(schedule.Event) {
	var running []string
	done := 0
	return func(e schedule.Event) {
		image, platform := platformTask(e.Task)
		switch e.Kind {
		case schedule.EventStarted:
			if !slices.Contains(running, e.Task) {
				running = append(running, e.Task)
			}
		case schedule.EventFinished:
			running = slices.DeleteFunc(running, func(n string) bool { return n == e.Task })
			if platform != "" {
				fr.log("%s: %s", e.Task, e.State) // one platform of a split image
				return
			}
			done++
			what := string(e.State)
			if e.State == schedule.Done {
				what = fr.images[image].out.Decision
			}
			fr.log("%s: %s", image, what)
		default:
			next(e)
			return
		}
		images := map[string]bool{}
		for _, n := range running {
			image, _ := platformTask(n)
			images[image] = true
		}
		fr.log("family: %d/%d done, %d running, %d queued%s", done, total, len(images), total-done-len(images), runningList(running))
	}
}

func runningList(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// openLog opens the image's build log, once, when --logs asks for one: its builds' progress goes
// there too.
func (fr *familyRun) openLog(m *member) error {
	m.logOnce.Do(func() {
		ir := m.ir
		ir.progress = fr.opts.Progress
		dir := fr.fopts.LogsDir
		if dir == "" {
			return
		}
		name := filepath.Join(dir, m.img.Name+".log")
		f, err := os.Create(name)
		if err != nil {
			m.logErr = fmt.Errorf("creating the build log: %w", err)
			return
		}
		w := fr.red.Writer(f)
		pr, err := progress.New(w, progress.Plain)
		if err != nil {
			w.Close()
			f.Close()
			m.logErr = err
			return
		}
		m.out.Log = name
		m.closeLog = func() {
			pr.Close()
			w.Close()
			f.Close()
		}
		tee := ir.progress
		ir.progress = func(s *client.SolveStatus) {
			pr.Status(s)
			if tee != nil {
				tee(s)
			}
		}
	})
	return m.logErr
}

func platformDigests(ms []registry.Manifest) []result.PlatformDigest {
	ps := make([]result.PlatformDigest, len(ms))
	for i, x := range ms {
		ps[i] = result.PlatformDigest{Platform: x.Platform, Digest: x.Digest}
	}
	return ps
}

// record turns a scheduler outcome into the image's report entry.
func (fr *familyRun) record(m *member, o *schedule.Outcome) {
	if o == nil {
		return
	}
	if n := len(o.Attempts); n > 0 {
		first := slices.MinFunc(o.Attempts, func(a, b schedule.Attempt) int { return a.Started.Compare(b.Started) })
		last := slices.MaxFunc(o.Attempts, func(a, b schedule.Attempt) int { return a.Finished.Compare(b.Finished) })
		m.out.Attempts = n
		m.out.Started = first.Started.UTC().Format(time.RFC3339Nano)
		m.out.Finished = last.Finished.UTC().Format(time.RFC3339Nano)
		if m.out.Decision == result.DecisionBuild {
			m.out.Endpoint = fr.pool.describe(last.Endpoint)
			if m.ir.split { // each platform names its own engine; the image names them all
				var eps []string
				for _, p := range m.out.Platforms {
					if !slices.Contains(eps, p.Endpoint) {
						eps = append(eps, p.Endpoint)
					}
				}
				m.out.Endpoint = strings.Join(eps, ", ")
			}
		}
	}
	switch o.State {
	case schedule.Done:
		m.out.Digest = m.ir.out.Digest
	case schedule.Failed:
		var pe *Error
		step := result.StepBuild
		if errors.As(o.Err, &pe) {
			step = pe.Step
		}
		m.out.Decision, m.out.Reason, m.out.Error = result.DecisionFailed, "the build failed", fr.red.String(o.Err.Error())
		m.out.Changed = false
		fr.rep.Failed = append(fr.rep.Failed, result.Failure{Image: m.img.Name, Step: step, Error: m.out.Error})
		if m.out.Log != "" {
			failed := filepath.Join(filepath.Dir(m.out.Log), "FAILED_"+filepath.Base(m.out.Log))
			if os.Rename(m.out.Log, failed) == nil {
				m.out.Log = failed
			}
		}
	default:
		m.out.Decision, m.out.Changed = result.DecisionParentFailed, false
		m.out.Reason = "not built: an ancestor failed"
		if o.State == schedule.Cancelled {
			m.out.Reason = "not built: the run stopped at the first failure (--keep-going builds the rest)"
		}
	}
}

// publish moves the tags of every image built or skipped, all together, with the request's
// rollback — unless something failed and the run is all-or-nothing.
func (fr *familyRun) publish(ctx context.Context) error {
	if len(fr.rep.Failed) > 0 && !fr.fopts.KeepGoing {
		for _, n := range fr.order {
			if m := fr.images[n]; m.out.Decision == result.DecisionBuild {
				m.out.Changed = false
				m.out.Reason += "; built by digest, not published: another image failed"
			}
		}
		fr.rep.Changed = false
		return nil
	}
	fr.run.images = nil
	for _, n := range fr.order {
		m := fr.images[n]
		if m.out.Decision == result.DecisionBuild || m.out.Decision == result.DecisionSkip {
			m.ir.out.Changed = false
			fr.run.images = append(fr.run.images, m.ir)
		}
	}
	fr.res.Changed = false
	err := fr.tag(ctx)
	for _, ir := range fr.run.images {
		m := fr.images[ir.out.Image]
		m.out.Changed = ir.out.Changed
		m.out.Previous = ir.out.Previous
	}
	fr.rep.Changed = fr.res.Changed
	return err
}

// report writes the report's images: the selected ones in build order, then the pulled
// references.
func (fr *familyRun) report() {
	fr.rep.Images = fr.rep.Images[:0]
	for _, n := range fr.order {
		m := fr.images[n]
		if m.out.Decision == "" {
			m.out.Decision, m.out.Reason = result.DecisionParentFailed, "not decided: the run stopped before"
		}
		if m.out.Digest == "" && m.out.Decision == result.DecisionSkip {
			m.out.Digest = m.ir.out.Digest
		}
		fr.rep.Images = append(fr.rep.Images, *m.out)
	}
	for _, ref := range slices.Sorted(func(yield func(string) bool) {
		for r := range fr.pulled {
			if !yield(r) {
				return
			}
		}
		for r := range fr.pullErr {
			if !yield(r) {
				return
			}
		}
	}) {
		img := result.FamilyImage{Name: ref, Ref: ref, Tags: []string{}, Decision: result.DecisionPull, Platforms: []result.PlatformDigest{}, Parents: []result.Parent{}}
		if d := fr.pulled[ref]; d != "" {
			_, img.Digest, _ = strings.Cut(d, "@")
			img.Reason = "resolved to " + img.Digest
		} else {
			img.Reason = "not resolved, built on as named: " + fr.red.String(fr.pullErr[ref].Error())
		}
		fr.rep.Images = append(fr.rep.Images, img)
	}
	fr.rep.Count()
}
