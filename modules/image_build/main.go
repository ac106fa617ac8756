// Command image_build is the Ansible module that builds container images from build params and
// pushes them: the options are the build params (the JSON accepted by `imagebuilder build`),
// the result is the same facts, plus `changed` overall. Check mode is `imagebuilder build
// --dry-run`. Its documentation is generated from the schema and docs.yml (the prose) into the
// collection's plugins/modules/image_build.py and, for a library directory, a sidecar file.
package main

//go:generate go run ../../internal/ansible/gendoc -name image_build -schema ../../schema/build-params.schema.json -options options.schema.json -prose docs.yml -python ../../collection/plugins/modules/image_build.py

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"

	"github.com/imagebuilder/imagebuilder/internal/ansible"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/progress"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
	"github.com/imagebuilder/imagebuilder/schema"
)

func main() {
	os.Exit(ansible.Main(module(pipeline.Run)))
}

// runFunc is pipeline.Run; tests replace it.
type runFunc func(ctx context.Context, p params.BuildParams, opts pipeline.Options) (*result.Result, error)

// optionsSchema is the JSON Schema of the module's own options, the run options (vars).
//
//go:embed options.schema.json
var optionsSchema []byte

var runSchema = &schemacheck.Schema{
	ID:   "https://github.com/imagebuilder/imagebuilder/modules/image_build/options.schema.json",
	Data: optionsSchema,
}

// runOptions are the module's own options, decoded.
type runOptions struct {
	Vars map[string]string `json:"vars,omitempty"`
}

func module(run runFunc) ansible.Module {
	spec, err := ansible.SpecFromSchemas(schema.BuildParams, optionsSchema)
	if err != nil {
		// The embedded schemas are generated or tested; this cannot happen in a released binary.
		panic(fmt.Sprintf("deriving the options from the embedded schemas: %v", err))
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
	paramsDoc, runDoc := map[string]any{}, map[string]any{}
	for k, v := range req.Options {
		if k == "vars" {
			runDoc[k] = v
		} else {
			paramsDoc[k] = v
		}
	}
	var ro runOptions
	if err := runSchema.Check(runDoc, func() ([]schemacheck.FieldError, error) {
		return nil, schemacheck.DecodeValid(runDoc, &ro)
	}); err != nil {
		return ansible.Invalid(err)
	}
	p, err := params.FromMap(paramsDoc)
	if err != nil {
		resp := ansible.Failf("invalid options: %v", err)
		var ve *params.ValidationError
		if errors.As(err, &ve) {
			resp.Msg = "invalid options:\n" + ve.Error()
			resp.Facts = map[string]any{"validation_errors": ve.Errors}
		}
		return resp
	}
	opts := pipeline.Options{DryRun: req.CheckMode, TempDir: req.TmpDir, Redactor: req.Redactor, Vars: ro.Vars}
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
	resp.Msg = res.Summary()
	if req.Diff && res.Changed {
		before, after := res.TagDiff()
		resp.Diff = &ansible.Diff{Before: before, After: after, BeforeHeader: "registry", AfterHeader: "registry"}
	}
	return resp
}
