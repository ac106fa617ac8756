package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/schedule"
)

// Native per-platform builds. When the pool has endpoints that declare the platforms they build
// natively and none of them builds all of an image's platforms, the image is split: one task per
// platform, each placed (by the scheduler) on an endpoint that builds it natively — emulation only
// when none does — built and pushed by digest in parallel, then one task joins their manifests
// into an index. Anything that depends on the image depends on that join.

// platformSep joins an image's task ID and a platform in a platform task's ID ("app@linux/arm64").
const platformSep = "@"

// splits reports whether the pool splits an image of these platforms.
func (p *pool) splits(platforms []string) bool {
	if len(platforms) < 2 {
		return false
	}
	declared := false
	for _, e := range p.endpoints {
		if len(e.Platforms) == 0 {
			continue
		}
		if schedule.Supports(e.Platforms, platforms) {
			return false // one endpoint builds them all natively
		}
		declared = true
	}
	return declared
}

// native reports whether some endpoint declares platform (builds it natively).
func (p *pool) native(platform string) bool {
	return slices.ContainsFunc(p.endpoints, func(e schedule.Endpoint) bool {
		return len(e.Platforms) > 0 && schedule.Supports(e.Platforms, []string{platform})
	})
}

// imageTasks are the scheduler tasks of one image with ID id: the image itself, or, split, a task
// per platform (depending on deps) and the image's task joining them.
func (r *run) imageTasks(id string, ir *imageRun, deps []string) []schedule.Task {
	if !r.pool.splits(ir.req.Platforms) {
		return []schedule.Task{{ID: id, Deps: deps, Platforms: ir.req.Platforms}}
	}
	ir.split = true
	var tasks []schedule.Task
	join := schedule.Task{ID: id}
	for _, p := range ir.req.Platforms {
		t := schedule.Task{ID: id + platformSep + p, Deps: deps, Platforms: []string{p}}
		tasks = append(tasks, t)
		join.Deps = append(join.Deps, t.ID)
	}
	return append(tasks, join)
}

// platformTask splits a task ID into the image's ID and the platform ("" for the image's task).
func platformTask(id string) (image, platform string) {
	image, platform, _ = strings.Cut(id, platformSep)
	return image, platform
}

// buildPlatform builds one platform of a split image on endpoint and pushes it by digest.
func (r *run) buildPlatform(ctx context.Context, ir *imageRun, platform, endpoint string) error {
	how := "natively"
	if !r.pool.native(platform) {
		how = "emulated: no endpoint builds it natively"
	}
	r.log("building %s for %s on %s (%s)", ir.out.Ref, platform, r.pool.describe(endpoint), how)
	br, err := r.buildOn(ctx, ir, []string{platform}, endpoint)
	if err != nil {
		return err
	}
	ir.mu.Lock()
	defer ir.mu.Unlock()
	ir.platformBuilds = append(ir.platformBuilds, result.PlatformDigest{Platform: platform, Endpoint: r.pool.describe(endpoint), Digest: br.Digest})
	return nil
}

// joinPlatforms assembles the platform builds of a split image into one index, in the order of
// the image's platforms, and records it as the image's digest.
func (r *run) joinPlatforms(ctx context.Context, ir *imageRun) error {
	ir.mu.Lock()
	builds := slices.Clone(ir.platformBuilds)
	ir.mu.Unlock()
	var digests []string
	var ordered []result.PlatformDigest
	for _, p := range ir.req.Platforms {
		i := slices.IndexFunc(builds, func(b result.PlatformDigest) bool { return b.Platform == p })
		if i < 0 {
			return &Error{Image: ir.out.Ref, Step: result.StepBuild, Err: fmt.Errorf("platform %s was not built", p)}
		}
		digests = append(digests, builds[i].Digest)
		ordered = append(ordered, builds[i])
	}
	d, err := r.reg.AssembleIndex(ctx, ir.out.Repository, digests)
	if err != nil {
		return &Error{Image: ir.out.Ref, Step: result.StepPush, Err: err}
	}
	ir.out.Digest, ir.out.Platforms, ir.out.PlatformBuilds = d, slices.Clone(ir.req.Platforms), ordered
	r.log("%s: index %s joins %d platform builds", ir.out.Ref, d, len(ordered))
	return nil
}

// buildOn builds an image for platforms on an endpoint of the pool and pushes it by digest.
func (r *run) buildOn(ctx context.Context, ir *imageRun, platforms []string, endpoint string) (*builder.Built, error) {
	bld, err := r.pool.get(ctx, endpoint)
	if err != nil {
		return nil, &Error{Image: ir.out.Ref, Step: result.StepBuild, Err: err}
	}
	br, err := bld.Build(ctx, builder.Request{
		ContextDir:  ir.contextDir,
		Dockerfile:  ir.dockerfile,
		Platforms:   platforms,
		BuildArgs:   ir.buildArgs,
		Target:      ir.req.Target,
		Labels:      ir.labels,
		NoCache:     r.p.Builder != nil && r.p.Builder.NoCache,
		Pull:        r.p.Builder != nil && r.p.Builder.Pull,
		Repository:  ir.out.Repository,
		Insecure:    r.p.Target.Registry.Insecure,
		Credentials: r.credentials(ctx),
		Publisher:   r.reg,
		Secrets:     ir.secrets,
		SSH:         ir.ssh,
		Registries:  ir.registries,
		Progress:    ir.progressFunc(r.opts.Progress),
	})
	if err != nil {
		return nil, &Error{Image: ir.out.Ref, Step: buildStep(err), Err: err}
	}
	return br, nil
}

// combine merges the outcomes of a split image's tasks into the image's: the first failure wins,
// and its attempts are its platform builds' (the join builds nothing).
func combine(outcomes map[string]*schedule.Outcome, id string, platforms []string, split bool) *schedule.Outcome {
	o := outcomes[id]
	if !split || o == nil {
		return o
	}
	out := &schedule.Outcome{State: o.State, Err: o.Err}
	for _, p := range platforms {
		po := outcomes[id+platformSep+p]
		if po == nil {
			continue
		}
		out.Attempts = append(out.Attempts, po.Attempts...)
		if po.State == schedule.Failed && out.State != schedule.Failed {
			out.State, out.Err = schedule.Failed, po.Err
		}
	}
	return out
}

// firstFailure returns the error of the first failed task in tasks' order, or nil.
func firstFailure(tasks []schedule.Task, outcomes map[string]*schedule.Outcome) error {
	for _, t := range tasks {
		if o := outcomes[t.ID]; o != nil && o.State == schedule.Failed {
			return o.Err
		}
	}
	return nil
}

var errNotBuilt = errors.New("not built")
