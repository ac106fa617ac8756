// Command image_family is the Ansible module that builds a family of interdependent images: its
// options are the family file (the document `imagebuilder family build -f` reads) plus the run
// options of options.schema.json (select, exclude, skip_parents, keep_going, rebuild, jobs,
// logs_dir, vars, dir: the command's flags); the result is the family report as facts, plus
// `changed` overall. Check mode is `imagebuilder family plan`. Its documentation is generated
// from both schemas and docs.yml into the collection's plugins/modules/image_family.py.
package main

//go:generate go run ../../internal/ansible/gendoc -name image_family -schema ../../schema/family.schema.json -options options.schema.json -prose docs.yml -python ../../collection/plugins/modules/image_family.py

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/ansible"
	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/progress"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
	"github.com/imagebuilder/imagebuilder/schema"
)

// optionsSchema is the JSON Schema of the module's own options, the run options.
//
//go:embed options.schema.json
var optionsSchema []byte

var runSchema = &schemacheck.Schema{
	ID:   "https://github.com/imagebuilder/imagebuilder/modules/image_family/options.schema.json",
	Data: optionsSchema,
}

// runOptions are the module's own options, decoded.
type runOptions struct {
	Select      []string          `json:"select,omitempty"`
	Exclude     []string          `json:"exclude,omitempty"`
	SkipParents bool              `json:"skip_parents,omitempty"`
	KeepGoing   bool              `json:"keep_going,omitempty"`
	Rebuild     bool              `json:"rebuild,omitempty"`
	Jobs        int               `json:"jobs,omitempty"`
	LogsDir     string            `json:"logs_dir,omitempty"`
	Vars        map[string]string `json:"vars,omitempty"`
	Dir         string            `json:"dir,omitempty"`
}

func main() {
	os.Exit(ansible.Main(module(pipeline.RunFamily)))
}

// runFunc is pipeline.RunFamily; tests replace it.
type runFunc func(ctx context.Context, fam *family.Family, opts pipeline.FamilyOptions) (*result.Report, error)

func module(run runFunc) ansible.Module {
	spec, err := ansible.SpecFromSchemas(schema.Family, optionsSchema)
	if err != nil {
		// The embedded schemas are generated or tested; this cannot happen in a released binary.
		panic(fmt.Sprintf("deriving the options from the embedded schemas: %v", err))
	}
	runSpec, err := ansible.SpecFromSchema(optionsSchema)
	if err != nil {
		panic(fmt.Sprintf("deriving the run options: %v", err))
	}
	return ansible.Module{
		Name: "image_family",
		Spec: spec,
		Run: func(ctx context.Context, req *ansible.Request) *ansible.Response {
			return build(ctx, req, spec, runSpec, run)
		},
	}
}

func build(ctx context.Context, req *ansible.Request, spec, runSpec ansible.Spec, run runFunc) *ansible.Response {
	addInlineSecrets(req.Redactor, spec, req.Options)
	famDoc, runDoc := map[string]any{}, map[string]any{}
	for k, v := range req.Options {
		if runSpec[k] != nil {
			runDoc[k] = v
		} else {
			famDoc[k] = v
		}
	}
	// Every problem at once, the family file's and the run options', each at its pointer.
	var errs []schemacheck.FieldError
	f, err := family.FromMap(famDoc)
	if err != nil && !collect(err, &errs) {
		return ansible.Failf("invalid options: %v", err)
	}
	var ro runOptions
	err = runSchema.Check(runDoc, func() ([]schemacheck.FieldError, error) {
		return nil, schemacheck.DecodeValid(runDoc, &ro)
	})
	if err != nil && !collect(err, &errs) {
		return ansible.Failf("invalid options: %v", err)
	}
	if len(errs) > 0 {
		return invalid(errs)
	}

	dir, err := filepath.Abs(cmp.Or(ro.Dir, "."))
	if err != nil {
		return ansible.Failf("locating dir %q: %v", ro.Dir, err)
	}
	f.Dir = dir
	// With a stage tag, the vars the family does not declare are only its .Vars; without
	// one, Expand reports them.
	declared := ro.Vars
	if f.Registry.StageTag != "" {
		if declared, err = f.DeclaredVars(ro.Vars); err != nil {
			return ansible.Failf("%v", err)
		}
	}
	fam, err := f.Expand(family.ExpandOptions{Vars: declared, Now: time.Now(), Getenv: os.LookupEnv})
	if err != nil {
		if collect(err, &errs) {
			return invalid(errs)
		}
		return ansible.Failf("expanding the family: %v", err)
	}
	logsDir := ro.LogsDir
	if logsDir != "" {
		if !filepath.IsAbs(logsDir) {
			logsDir = filepath.Join(dir, logsDir)
		}
		if err := os.MkdirAll(logsDir, 0o755); err != nil {
			return ansible.Failf("creating logs_dir: %v", err)
		}
	}

	opts := pipeline.FamilyOptions{
		Options:     pipeline.Options{DryRun: req.CheckMode, TempDir: req.TmpDir, Redactor: req.Redactor, Vars: ro.Vars},
		Select:      ro.Select,
		Exclude:     ro.Exclude,
		SkipParents: ro.SkipParents,
		KeepGoing:   ro.KeepGoing,
		Rebuild:     ro.Rebuild,
		Jobs:        ro.Jobs,
		LogsDir:     logsDir,
	}
	if req.Log != nil {
		if pr, err := progress.New(req.Log, progress.Plain); err == nil {
			defer pr.Close()
			opts.Progress, opts.Log = pr.Status, pr.Log
		}
	}
	rep, runErr := run(ctx, fam, opts)
	if rep == nil {
		rep = &result.Report{DryRun: req.CheckMode, Images: []result.FamilyImage{}, Failed: []result.Failure{}}
		rep.Count()
	}
	resp := &ansible.Response{
		// Tags that moved moved, even when the run failed (keep_going publishes what succeeded).
		Changed: rep.Changed,
		Failed:  runErr != nil,
		Facts: map[string]any{
			"images": rep.Images,
			// The report's failed list: Ansible's own failed (a bool) takes that key.
			"failures": rep.Failed,
			"totals":   rep.Totals,
			"digests":  rep.Digests(),
			"builder":  rep.Builder,
			"dry_run":  rep.DryRun,
		},
	}
	if runErr != nil {
		resp.Msg = runErr.Error()
	} else {
		resp.Msg = rep.Summary()
	}
	if req.Diff && rep.Changed {
		before, after := rep.TagDiff()
		resp.Diff = &ansible.Diff{Before: before, After: after, BeforeHeader: "registry", AfterHeader: "registry"}
	}
	return resp
}

// collect appends the problems of a validation error to errs and reports whether err was one.
func collect(err error, errs *[]schemacheck.FieldError) bool {
	var ve *schemacheck.ValidationError
	if !errors.As(err, &ve) {
		return false
	}
	*errs = append(*errs, ve.Errors...)
	return true
}

// invalid is the response to invalid options: msg and validation_errors only.
func invalid(errs []schemacheck.FieldError) *ansible.Response {
	slices.SortStableFunc(errs, func(a, b schemacheck.FieldError) int { return cmp.Compare(a.Pointer, b.Pointer) })
	ve := &schemacheck.ValidationError{Errors: errs}
	resp := ansible.Failf("invalid options:\n%s", ve.Error())
	resp.Facts = map[string]any{"validation_errors": errs}
	return resp
}

// addInlineSecrets masks the secrets of sources given inline in images (images[].source as an
// object), which the argument spec cannot see: that option is a name or a source (raw). They
// have the shape of the family's named sources.
func addInlineSecrets(red *redact.Redactor, spec ansible.Spec, options map[string]any) {
	sources, images := spec["sources"], spec["images"]
	if red == nil || sources == nil || sources.ValueOptions == nil || images == nil {
		return
	}
	list, _ := options["images"].([]any)
	for _, img := range list {
		m, _ := img.(map[string]any)
		if src, ok := m["source"].(map[string]any); ok {
			red.Add(sources.ValueOptions.Secrets(src)...)
		}
	}
}
