// Command image_build is the Ansible module that builds container images from build params and
// pushes them: the options are the build params (the JSON accepted by `imagebuilder build`),
// the result is the same facts, plus `changed` overall. Check mode is `imagebuilder build
// --dry-run`. Its documentation is image_build.yml, installed beside the binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/imagebuilder/imagebuilder/internal/ansible"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/progress"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/schema"
)

func main() {
	os.Exit(ansible.Main(module(pipeline.Run)))
}

// runFunc is pipeline.Run; tests replace it.
type runFunc func(ctx context.Context, p params.BuildParams, opts pipeline.Options) (*result.Result, error)

func module(run runFunc) ansible.Module {
	spec, err := ansible.SpecFromSchema(schema.BuildParams)
	if err != nil {
		// The embedded schema is generated and tested; this cannot happen in a released binary.
		panic(fmt.Sprintf("deriving the options from the embedded schema: %v", err))
	}
	return ansible.Module{
		Name: "image_build",
		Spec: spec,
		Run: func(ctx context.Context, req *ansible.Request) *ansible.Response {
			return build(ctx, req, run)
		},
	}
}

func build(ctx context.Context, req *ansible.Request, run runFunc) *ansible.Response {
	p, err := params.FromMap(req.Options)
	if err != nil {
		resp := ansible.Failf("invalid options: %v", err)
		var ve *params.ValidationError
		if errors.As(err, &ve) {
			resp.Msg = "invalid options:\n" + ve.Error()
			resp.Facts = map[string]any{"validation_errors": ve.Errors}
		}
		return resp
	}
	opts := pipeline.Options{DryRun: req.CheckMode, TempDir: req.TmpDir, Redactor: req.Redactor}
	if req.Log != nil {
		if pr, err := progress.New(req.Log, progress.Plain); err == nil {
			defer pr.Close()
			opts.Progress, opts.Log = pr.Status, pr.Log
		}
	}
	res, runErr := run(ctx, *p, opts)
	if res == nil {
		res = &result.Result{DryRun: req.CheckMode, Images: []result.Image{}}
	}
	resp := &ansible.Response{
		Changed: res.Changed && runErr == nil,
		Failed:  runErr != nil,
		Facts: map[string]any{
			"images":  res.Images,
			"source":  res.Source,
			"builder": res.Builder,
			"digests": res.Digests(),
			"dry_run": res.DryRun,
		},
	}
	if runErr != nil {
		resp.Msg = runErr.Error()
		if res.Failed != nil {
			resp.Facts["failure"] = res.Failed
		}
		return resp
	}
	resp.Msg = summary(res)
	if req.Diff && res.Changed {
		resp.Diff = diff(res)
	}
	return resp
}

// summary is the one-line message of a successful run.
func summary(res *result.Result) string {
	var changed []string
	for _, img := range res.Images {
		if img.Changed {
			changed = append(changed, img.Ref)
		}
	}
	n := len(res.Images)
	switch {
	case res.DryRun && len(changed) > 0:
		return fmt.Sprintf("would build and push %d of %d image(s): %s", len(changed), n, strings.Join(changed, ", "))
	case res.DryRun:
		return fmt.Sprintf("all %d image(s) up to date", n)
	case len(changed) > 0:
		return fmt.Sprintf("built and pushed %d of %d image(s): %s", len(changed), n, strings.Join(changed, ", "))
	}
	return fmt.Sprintf("all %d image(s) up to date", n)
}

// diff maps every tag of the request to the digest it pointed at before (tags that did not exist
// are absent) and points at now (or, in check mode, that it would be rebuilt).
func diff(res *result.Result) *ansible.Diff {
	before, after := map[string]any{}, map[string]any{}
	for _, img := range res.Images {
		for _, tag := range img.Tags {
			ref := img.Repository + ":" + tag
			if d := img.Previous[tag]; d != "" {
				before[ref] = d // a tag that did not exist is absent from before
			}
			switch {
			case img.Digest != "":
				after[ref] = img.Digest
			case res.DryRun:
				after[ref] = "(rebuilt; digest known after the build)"
			}
		}
	}
	return &ansible.Diff{Before: before, After: after, BeforeHeader: "registry", AfterHeader: "registry"}
}
