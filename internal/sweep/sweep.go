// Package sweep deletes stale tags from a repository: those matching a pattern whose image was
// created longer ago than a threshold (Zuul's stale change-tag cleanup, with the age compared
// as a whole duration and taken from the image itself).
package sweep

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/result"
)

// Client is what a sweep needs of a registry client (*registry.Client).
type Client interface {
	CheckWrite(repo string) error
	Tags(ctx context.Context, repo string) ([]string, error)
	Created(ctx context.Context, ref string) (registry.Creation, error)
	Delete(ctx context.Context, ref string) error
}

// Options select what a sweep deletes.
type Options struct {
	// Match selects the tags considered; it is anchored at the start of the tag (as Python's
	// re.match, which Zuul uses): end it with $ to match whole tags.
	Match string
	// OlderThan is the age (now minus the image's creation time) above which a matching tag
	// is deleted.
	OlderThan time.Duration
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
	// Now is the time ages are measured at (default: the current time).
	Now time.Time
	// Log receives one line per deletion for humans (nil: discarded).
	Log func(string)
}

// Error is a failed sweep: the step and the tag (or repository) concerned.
type Error struct {
	Step, Ref string
	Err       error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %v", e.Ref, e.Step, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Reasons a tag is kept.
const (
	KeptNoMatch = "does not match"
	KeptNoDate  = "its image has no creation time (config created, label " + registry.CreatedLabel + ")"
)

// lookups bounds the registry reads made at once.
const lookups = 8

// Run sweeps repo (REGISTRY/REPO). It always returns a result; the error is an *Error. Tags are
// never deleted unless they match; a matching tag whose image has no creation time is kept.
func Run(ctx context.Context, reg Client, repo string, opts Options) (*result.Sweep, error) {
	res := &result.Sweep{DryRun: opts.DryRun, Repository: repo, Deleted: []result.SweptTag{}, Kept: []result.SweptTag{}}
	fail := func(step, ref string, err error) (*result.Sweep, error) {
		res.Failed = &result.Failure{Image: ref, Step: step, Error: err.Error()}
		return res, &Error{Step: step, Ref: ref, Err: err}
	}
	if opts.OlderThan <= 0 {
		return fail(result.StepCheck, repo, fmt.Errorf("the age threshold must be positive, got %s", opts.OlderThan))
	}
	re, err := regexp.Compile("^(?:" + opts.Match + ")")
	if err != nil {
		return fail(result.StepCheck, repo, fmt.Errorf("--match %q is not a regular expression: %w", opts.Match, err))
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if err := reg.CheckWrite(repo); err != nil {
		return fail(result.StepCheck, repo, err)
	}
	tags, err := reg.Tags(ctx, repo)
	if err != nil {
		return fail(result.StepCheck, repo, err)
	}
	sort.Strings(tags)

	facts := make([]result.SweptTag, len(tags))
	stale := make([]bool, len(tags))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(lookups)
	for i, tag := range tags {
		facts[i].Tag = tag
		if !re.MatchString(tag) {
			facts[i].Reason = KeptNoMatch
			continue
		}
		g.Go(func() error {
			c, err := reg.Created(gctx, repo+":"+tag)
			if errors.Is(err, registry.ErrNotFound) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return &Error{Step: result.StepCheck, Ref: repo + ":" + tag, Err: err}
			}
			mu.Lock()
			defer mu.Unlock()
			facts[i].Digest = c.Digest
			switch age := opts.Now.Sub(c.Time); {
			case c.Time.IsZero():
				facts[i].Reason = KeptNoDate
			case age > opts.OlderThan:
				facts[i].Created = c.Time.Format(time.RFC3339)
				stale[i] = true
			default:
				facts[i].Created = c.Time.Format(time.RFC3339)
				facts[i].Reason = fmt.Sprintf("created %s ago, not older than %s", age.Round(time.Second), opts.OlderThan)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		var se *Error
		errors.As(err, &se)
		return fail(se.Step, se.Ref, se.Err)
	}

	var errs []error
	for i, f := range facts {
		if !stale[i] {
			res.Kept = append(res.Kept, f)
			continue
		}
		if !opts.DryRun {
			if err := reg.Delete(ctx, repo+":"+f.Tag); err != nil && !errors.Is(err, registry.ErrNotFound) {
				errs = append(errs, err)
				f.Reason = "deleting it failed"
				res.Kept = append(res.Kept, f)
				continue
			}
		}
		if opts.Log != nil {
			verb := "deleted"
			if opts.DryRun {
				verb = "would delete"
			}
			opts.Log(fmt.Sprintf("%s %s:%s (created %s)", verb, repo, f.Tag, f.Created))
		}
		res.Deleted = append(res.Deleted, f)
		res.Changed = true
	}
	if len(errs) > 0 {
		err := errors.Join(errs...)
		res.Failed = &result.Failure{Image: repo, Step: result.StepDelete, Error: err.Error()}
		return res, &Error{Step: result.StepDelete, Ref: repo, Err: err}
	}
	return res, nil
}

// ParseAge reads an age threshold: a Go duration (36h, 90m, 1h30m) or days, alone or before
// one (7d, 1d12h). It must be positive.
func ParseAge(s string) (time.Duration, error) {
	in := s
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil || i == 0 {
			return 0, fmt.Errorf("age %q: want a duration like 7d, 36h, 1d12h or 90m", in)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
	}
	var rest time.Duration
	if s != "" {
		var err error
		if rest, err = time.ParseDuration(s); err != nil || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
			return 0, fmt.Errorf("age %q: want a duration like 7d, 36h, 1d12h or 90m", in)
		}
	}
	d := days + rest
	if d < days || d < rest {
		return 0, fmt.Errorf("age %q: too large", in)
	}
	if d <= 0 {
		return 0, fmt.Errorf("age %q: must be more than zero", in)
	}
	return d, nil
}
