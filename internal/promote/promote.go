// Package promote moves staged images to their final tags: for each item, the manifest the
// stage tag serves is copied under the final tag (one PUT within a repository: no blob moves;
// blob mounts and child manifests first across repositories, copies across registries), all
// final tags of the request together with publish's rollback, and then the stage tags are
// deleted without deleting the promoted manifests.
package promote

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/publish"
	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/result"
)

// Item is one tag to promote.
type Item struct {
	// Src is the staged reference: REPOSITORY:STAGE_TAG (deleted after the promote), or
	// REPOSITORY@DIGEST (nothing to delete).
	Src string
	// Dst is the final reference, REPOSITORY:TAG.
	Dst string
}

// Options control a promote.
type Options struct {
	// DryRun reads where every tag points and reports what would move, writing nothing.
	DryRun bool
	// Log receives one line per step for humans (nil: discarded).
	Log func(string)
}

// ErrNothingStaged is wrapped when a file has no stage_tag, so nothing can have been staged.
var ErrNothingStaged = errors.New("no stage_tag: nothing is staged to promote")

// FromParams lists what a build with these params staged: each tag of each image, from its
// stage tag (target.registry.stage_tag rendered with vars).
func FromParams(p params.BuildParams, vars map[string]string) ([]Item, error) {
	p = p.WithDefaults()
	reg := p.Target.Registry
	if reg.StageTag == "" {
		return nil, fmt.Errorf("/target/registry/stage_tag: %w", ErrNothingStaged)
	}
	var items []Item
	for i, img := range p.Target.Images {
		tags := img.AllTags()
		stages, err := reg.StageTags(tags, vars)
		if err != nil {
			return nil, fmt.Errorf("/target/registry/%w (/target/images/%d)", err, i)
		}
		items = append(items, pairs(reg.Repository(img.Image), tags, stages)...)
	}
	return items, nil
}

// FromFamily lists what a family build staged: each tag of each image, from its stage tag
// (registry.stage_tag rendered with the family's variables and vars).
func FromFamily(fam *family.Family, vars map[string]string) ([]Item, error) {
	if fam.Registry.StageTag == "" {
		return nil, fmt.Errorf("/registry/stage_tag: %w", ErrNothingStaged)
	}
	all := maps.Clone(fam.Variables)
	if all == nil {
		all = map[string]string{}
	}
	maps.Copy(all, vars)
	var items []Item
	for _, img := range fam.Images {
		stages, err := fam.Registry.StageTags(img.Tags, all)
		if err != nil {
			return nil, fmt.Errorf("/registry/%w (image %s)", err, img.Name)
		}
		items = append(items, pairs(img.Repository, img.Tags, stages)...)
	}
	return items, nil
}

func pairs(repo string, tags, stages []string) []Item {
	out := make([]Item, len(tags))
	for i := range tags {
		out[i] = Item{Src: repo + ":" + stages[i], Dst: repo + ":" + tags[i]}
	}
	return out
}

// ParseRefs reads SRC=DST arguments (reg/team/app:change_1_latest=reg/team/app:latest).
func ParseRefs(args []string) ([]Item, error) {
	var items []Item
	for _, a := range args {
		src, dst, ok := strings.Cut(a, "=")
		if !ok || src == "" || dst == "" {
			return nil, fmt.Errorf("%q: want SRC=DST (REGISTRY/REPO:STAGE_TAG=REGISTRY/REPO:TAG)", a)
		}
		items = append(items, Item{Src: src, Dst: dst})
	}
	return items, nil
}

// Client is what a promote needs of a registry client (*registry.Client).
type Client interface {
	publish.Registry
	CheckWrite(repo string) error
	Fetch(ctx context.Context, ref string) (registry.Descriptor, error)
	Resolve(ctx context.Context, ref string) (registry.Descriptor, error)
}

// Error is a failed promote: the step and the reference it was about.
type Error struct {
	Step string // result.StepCheck, StepTag, StepDelete
	Ref  string // the image's repository, or the reference concerned
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %v", e.Ref, e.Step, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// item is one checked item and what the registry says about it.
type item struct {
	Item
	src, dst name.Reference
	stage    bool   // src is a tag, deleted after the promote
	digest   string // what src serves
	previous string // what dst serves now ("" when absent)
	image    *result.PromotedImage
	fact     int // index in image.Promoted
}

// lookups bounds the registry reads made at once.
const lookups = 8

// Run promotes items with reg and returns the facts. It always returns a result; on failure
// its Failed names the step and the reference, and the error is an *Error. Everything is
// checked before anything is written: the references parse, no final tag is named twice, the
// credentials may write every repository concerned, every staged reference exists.
func Run(ctx context.Context, reg Client, items []Item, opts Options) (*result.Promotion, error) {
	res := &result.Promotion{DryRun: opts.DryRun, Images: []result.PromotedImage{}}
	log := func(format string, args ...any) {
		if opts.Log != nil {
			opts.Log(fmt.Sprintf(format, args...))
		}
	}
	fail := func(step, ref string, err error) (*result.Promotion, error) {
		e := &Error{Step: step, Ref: ref, Err: err}
		res.Failed = &result.Failure{Image: ref, Step: step, Error: err.Error()}
		res.Changed = false
		for i := range res.Images {
			res.Images[i].Changed = false
		}
		return res, e
	}

	its, cerr := check(items)
	if cerr != nil {
		return fail(result.StepCheck, cerr.ref, cerr.err)
	}
	if len(its) == 0 {
		return fail(result.StepCheck, "", errors.New("nothing to promote"))
	}
	images := map[string]int{}
	for _, it := range its {
		repo := it.dst.Context().Name()
		if err := reg.CheckWrite(repo); err != nil {
			return fail(result.StepCheck, repo, err)
		}
		if it.stage {
			if err := reg.CheckWrite(it.src.Context().Name()); err != nil {
				return fail(result.StepCheck, it.Src, fmt.Errorf("deleting the stage tag: %w", err))
			}
		}
		if _, ok := images[repo]; !ok {
			images[repo] = len(res.Images)
			res.Images = append(res.Images, result.PromotedImage{Repository: repo, Promoted: []result.PromotedTag{}, Deleted: []string{}})
		}
	}

	// Where every staged reference and every final tag point: one GET per staged reference
	// (it is copied from what the GET returned), one HEAD per final tag.
	digests := map[string]string{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(lookups)
	for _, it := range its {
		if _, seen := digests[it.Src]; !seen {
			digests[it.Src] = ""
			g.Go(func() error {
				d, err := reg.Fetch(gctx, it.Src)
				if err != nil {
					if errors.Is(err, registry.ErrNotFound) {
						err = fmt.Errorf("%s does not exist: nothing staged there (was the build staged with the same --var values, or was it promoted already?): %w", it.Src, err)
					}
					return &Error{Step: result.StepCheck, Ref: it.Src, Err: err}
				}
				mu.Lock()
				digests[it.Src] = d.Digest
				mu.Unlock()
				return nil
			})
		}
		g.Go(func() error {
			d, err := reg.Resolve(gctx, it.Dst)
			switch {
			case errors.Is(err, registry.ErrNotFound):
			case err != nil:
				return &Error{Step: result.StepCheck, Ref: it.Dst, Err: err}
			default:
				it.previous = d.Digest
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		var pe *Error
		errors.As(err, &pe)
		return fail(pe.Step, pe.Ref, pe.Err)
	}

	var moves []publish.Move
	var moved []*item
	for _, it := range its {
		it.digest = digests[it.Src]
		it.image = &res.Images[images[it.dst.Context().Name()]]
		it.fact = len(it.image.Promoted)
		it.image.Promoted = append(it.image.Promoted, result.PromotedTag{From: it.Src, To: it.Dst, Digest: it.digest, Previous: it.previous})
		if it.previous == it.digest {
			log("%s already serves %s", it.Dst, it.digest)
			continue
		}
		moves = append(moves, publish.Move{
			Repository: it.dst.Context().Name(), Tag: it.dst.Identifier(),
			Source: it.src.Context().Name() + "@" + it.digest, Previous: it.previous,
		})
		moved = append(moved, it)
	}
	var stages []*item // the stage tags to delete, once each
	seen := map[string]bool{}
	for _, it := range its {
		if it.stage && !seen[it.Src] {
			seen[it.Src] = true
			stages = append(stages, it)
		}
	}

	if opts.DryRun {
		for _, it := range moved {
			it.image.Promoted[it.fact].Changed = true
			it.image.Changed, res.Changed = true, true
			log("would point %s at %s (from %s)", it.Dst, it.digest, it.Src)
		}
		for _, it := range stages {
			it.image.Deleted = append(it.image.Deleted, it.Src)
			it.image.Changed, res.Changed = true, true
			log("would delete %s", it.Src)
		}
		return res, nil
	}

	err := publish.Apply(ctx, reg, moves, func(i int) {
		it := moved[i]
		it.image.Promoted[it.fact].Changed = true
		it.image.Changed, res.Changed = true, true
		log("%s -> %s (from %s)", it.Dst, it.digest, it.Src)
	})
	if err != nil {
		var pe *publish.Error
		ref := ""
		if errors.As(err, &pe) {
			ref = pe.Move.Ref()
			for _, it := range moved {
				it.image.Promoted[it.fact].Changed = false
			}
		}
		return fail(result.StepTag, ref, err)
	}

	// Every final tag moved: now the stage tags go. A failure here leaves the promote done
	// and the stage tag in place (a later sweep removes it).
	var errs []error
	for _, it := range stages {
		if err := reg.Delete(ctx, it.Src); err != nil {
			errs = append(errs, err)
			continue
		}
		it.image.Deleted = append(it.image.Deleted, it.Src)
		it.image.Changed, res.Changed = true, true
		log("deleted %s", it.Src)
	}
	if len(errs) > 0 {
		e := &Error{Step: result.StepDelete, Ref: stagesNames(stages), Err: errors.Join(errs...)}
		res.Failed = &result.Failure{Step: result.StepDelete, Error: e.Err.Error()}
		return res, e
	}
	return res, nil
}

func stagesNames(its []*item) string {
	names := make([]string, len(its))
	for i, it := range its {
		names[i] = it.Src
	}
	return strings.Join(names, ", ")
}

type checkError struct {
	ref string
	err error
}

// check parses the items: sources are tags or digests, destinations tags; a destination named
// twice, or a reference that is both a source and a destination, is an error.
func check(items []Item) ([]*item, *checkError) {
	var out []*item
	dsts := map[string]string{}
	for _, in := range items {
		it := &item{Item: in}
		var err error
		if it.src, err = name.ParseReference(in.Src); err != nil {
			return nil, &checkError{in.Src, fmt.Errorf("parsing the staged reference: %w", err)}
		}
		_, it.stage = it.src.(name.Tag)
		if !registry.Explicit(in.Src) {
			return nil, &checkError{in.Src, errors.New("the staged reference names no tag or digest (REGISTRY/REPO:STAGE_TAG or REGISTRY/REPO@DIGEST)")}
		}
		ref, err := name.ParseReference(in.Dst)
		if err != nil {
			return nil, &checkError{in.Dst, fmt.Errorf("parsing the final reference: %w", err)}
		}
		t, ok := ref.(name.Tag)
		if !ok || !registry.Explicit(in.Dst) {
			return nil, &checkError{in.Dst, errors.New("the final reference must name a tag (REGISTRY/REPO:TAG)")}
		}
		it.dst = t
		if prev, dup := dsts[t.Name()]; dup {
			return nil, &checkError{in.Dst, fmt.Errorf("final tag given twice (from %s and %s)", prev, in.Src)}
		}
		dsts[t.Name()] = in.Src
		out = append(out, it)
	}
	for _, it := range out {
		if it.stage {
			if other, ok := dsts[it.src.Name()]; ok {
				return nil, &checkError{it.Src, fmt.Errorf("is both a staged reference and a final tag (promoted from %s)", other)}
			}
		}
	}
	return out, nil
}
