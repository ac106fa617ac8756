// Package manifest assembles a multi-platform index from images built anywhere (ONAP's
// per-architecture builds on native machines), over registry.PlanIndex and PushIndex.
package manifest

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/result"
)

// Attestation policies.
const (
	Keep = "keep"
	Drop = "drop"
)

// Options control Create.
type Options struct {
	// Attestations is Keep (default) or Drop: what becomes of the attestation manifests of
	// sources that are indexes.
	Attestations string
	// DryRun computes the index and its digest and writes nothing.
	DryRun bool
	// Log receives one line per step for humans (nil: discarded).
	Log func(string)
}

// Client is what Create needs of a registry client (*registry.Client).
type Client interface {
	CheckWrite(repo string) error
	Resolve(ctx context.Context, ref string) (registry.Descriptor, error)
	PlanIndex(ctx context.Context, dst string, sources []string, opts registry.IndexOptions) (*registry.Index, error)
	PushIndex(ctx context.Context, dst string, idx *registry.Index) error
}

// Error is a failed Create: the step and the index reference.
type Error struct {
	Step, Ref string
	Err       error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %v", e.Ref, e.Step, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Create makes the index ref (REGISTRY/REPO:TAG) from the sources and returns the facts. It
// always returns a result; the error is an *Error. A ref that already serves the same index
// is left alone (changed: false).
func Create(ctx context.Context, reg Client, ref string, sources []string, opts Options) (*result.ManifestIndex, error) {
	res := &result.ManifestIndex{DryRun: opts.DryRun, Ref: ref, Manifests: []result.IndexChild{}}
	fail := func(step string, err error) (*result.ManifestIndex, error) {
		res.Changed = false
		res.Failed = &result.Failure{Image: ref, Step: step, Error: err.Error()}
		return res, &Error{Step: step, Ref: ref, Err: err}
	}
	switch opts.Attestations {
	case "", Keep, Drop:
	default:
		return fail(result.StepCheck, fmt.Errorf("attestations must be %s or %s, got %q", Keep, Drop, opts.Attestations))
	}
	t, err := name.NewTag(ref)
	if err != nil || !registry.Explicit(ref) {
		return fail(result.StepCheck, fmt.Errorf("the index reference must name a tag (REGISTRY/REPO:TAG)"))
	}
	if err := reg.CheckWrite(t.Context().Name()); err != nil {
		return fail(result.StepCheck, err)
	}
	prev, err := reg.Resolve(ctx, ref)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return fail(result.StepCheck, err)
	}
	res.Previous = prev.Digest
	idx, err := reg.PlanIndex(ctx, ref, sources, registry.IndexOptions{DropAttestations: opts.Attestations == Drop})
	if err != nil {
		return fail(result.StepCheck, err)
	}
	res.Digest, res.MediaType = idx.Digest, idx.MediaType
	for _, c := range idx.Children {
		res.Manifests = append(res.Manifests, result.IndexChild{Platform: c.Platform, Digest: c.Digest, From: c.From, Attests: c.Attests})
	}
	if res.Previous == res.Digest {
		log(opts, "%s already serves %s", ref, res.Digest)
		return res, nil
	}
	res.Changed = true
	if opts.DryRun {
		log(opts, "would push %s as %s (%d manifests)", res.Digest, ref, len(res.Manifests))
		return res, nil
	}
	if err := reg.PushIndex(ctx, ref, idx); err != nil {
		return fail(result.StepPush, err)
	}
	log(opts, "%s -> %s (%d manifests)", ref, res.Digest, len(res.Manifests))
	return res, nil
}

func log(opts Options, format string, args ...any) {
	if opts.Log != nil {
		opts.Log(fmt.Sprintf(format, args...))
	}
}
