package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/ansible"
	"github.com/imagebuilder/imagebuilder/internal/ansibletest"
	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
	"github.com/imagebuilder/imagebuilder/schema"
)

// TestGeneratedDocsUpToDate fails when collection/plugins/modules/image_family.py (generated
// from the family schema, options.schema.json and docs.yml) is stale: run `make schema`.
func TestGeneratedDocsUpToDate(t *testing.T) {
	ansibletest.GeneratedDocsUpToDate(t, "image_family", "../../schema/family.schema.json", "options.schema.json")
}

// TestOptions: the module's options are the family file's top-level keys plus the run options,
// which no family key shadows; the run options are exactly runOptions' fields.
func TestOptions(t *testing.T) {
	fam, err := ansible.SpecFromSchema(schema.Family)
	if err != nil {
		t.Fatal(err)
	}
	run, err := ansible.SpecFromSchema(optionsSchema)
	if err != nil {
		t.Fatal(err)
	}
	all := module(nil).Spec
	if len(all) != len(fam)+len(run) {
		t.Errorf("the module has %d options, want the family's %d plus the run options' %d", len(all), len(fam), len(run))
	}
	var fields []string
	for f := range reflect.TypeFor[runOptions]().Fields() {
		fields = append(fields, strings.Split(f.Tag.Get("json"), ",")[0])
	}
	slices.Sort(fields)
	if names := run.Names(); !slices.Equal(names, fields) {
		t.Errorf("options.schema.json declares %v, runOptions decodes %v", names, fields)
	}
}

// TestReturnDocumented: RETURN documents every fact the module returns, and images' fields are
// exactly result.FamilyImage's.
func TestReturnDocumented(t *testing.T) {
	ret := ansibletest.ReturnDoc(t, "docs.yml")
	doc, _ := serve(t, &fakeRun{rep: sampleReport(false)}, validArgs(t))
	for key := range doc {
		if slices.Contains([]string{"changed", "failed", "msg", "warnings"}, key) {
			continue
		}
		if ret[key].Returned == "" {
			t.Errorf("RETURN does not document %s", key)
		}
	}
	ansibletest.SameKeys(t, "images", ret["images"].Contains, reflect.TypeFor[result.FamilyImage]())
}

// fakeRun records the call and returns a canned report.
type fakeRun struct {
	called bool
	fam    *family.Family
	opts   pipeline.FamilyOptions
	rep    *result.Report
	err    error
}

func (f *fakeRun) run(_ context.Context, fam *family.Family, opts pipeline.FamilyOptions) (*result.Report, error) {
	f.called, f.fam, f.opts = true, fam, opts
	if f.rep != nil {
		// What the pipeline does: it masks the family's secrets too (here, the proxy's).
		fam.AddSecrets(opts.Redactor)
	}
	return f.rep, f.err
}

func serve(t *testing.T, f *fakeRun, args map[string]any) (map[string]any, string) {
	t.Helper()
	return ansibletest.Serve(t, module(f.run), args, false)
}

// The canaries: one per kind of secret a family holds.
const (
	regCanary    = "canary-reg-Pw-51d0"
	srcCanary    = "canary-src-Pw-77a1"
	inlineCanary = "canary-inline-Pw-3c9e"
	secretCanary = "canary-secret-Value-90ab"
)

// validArgs is a family of two images in a directory of the test's own (dir), with every kind
// of secret, and run options.
func validArgs(t *testing.T) map[string]any {
	t.Helper()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"images/base/Dockerfile": "FROM scratch\n", "images/app/Dockerfile": "FROM scratch\n"})
	return map[string]any{
		"registry":  map[string]any{"url": "registry.example.com", "username": "u", "password": regCanary},
		"namespace": "team",
		"tag":       "{{ .release }}",
		"variables": map[string]any{"release": "1.0"},
		"secrets":   map[string]any{"tok": map[string]any{"value": secretCanary}},
		"sources": map[string]any{
			"app": map[string]any{"git_repo": map[string]any{"url": "https://git.example.com/app.git", "username": "u", "password": srcCanary}},
		},
		"images_dir": "images",
		"images": []any{
			map[string]any{"name": "extra", "source": map[string]any{"git_repo": map[string]any{
				"url": "https://git.example.com/extra.git", "username": "u", "password": inlineCanary}}},
		},
		"select":       []any{"app"},
		"exclude":      []any{"extra"},
		"skip_parents": true,
		"keep_going":   true,
		"rebuild":      true,
		"jobs":         3,
		"logs_dir":     "logs",
		"vars":         map[string]any{"release": 2.5}, // a number: converted, with a warning
		"dir":          dir,
	}
}

func noCanary(t *testing.T, what, text string) {
	t.Helper()
	for _, c := range []string{regCanary, srcCanary, inlineCanary, secretCanary} {
		if strings.Contains(text, c) {
			t.Errorf("%s holds the secret %s: %s", what, c, text)
		}
	}
}

const d1, d0 = "sha256:1111111111111111111111111111111111111111111111111111111111111111", "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// sampleReport is a run that built app, skipped base and pulled a reference; every error and
// reason quotes a secret, as a careless message might.
func sampleReport(dryRun bool) *result.Report {
	rep := &result.Report{
		Changed: true, DryRun: dryRun,
		Images: []result.FamilyImage{
			{Name: "base", Ref: "registry.example.com/team/base:2.5", Repository: "registry.example.com/team/base", Tags: []string{"2.5"},
				Decision: result.DecisionSkip, Reason: "the registry serves identical inputs", Digest: d0, Previous: map[string]string{"2.5": d0}},
			{Name: "app", Ref: "registry.example.com/team/app:2.5", Repository: "registry.example.com/team/app", Tags: []string{"2.5"},
				Decision: result.DecisionBuild, Reason: "inputs changed; login " + srcCanary, Changed: true, Previous: map[string]string{"2.5": d0},
				Parents: []result.Parent{{Name: "base", Digest: d0}}},
			{Name: "busybox:1", Ref: "busybox:1", Tags: []string{}, Decision: result.DecisionPull, Digest: d1},
		},
		Failed:  []result.Failure{},
		Builder: &result.Builder{Kind: "buildkit", Endpoint: "unix:///run/buildkit.sock"},
	}
	if !dryRun {
		rep.Images[1].Digest = d1
	}
	rep.Count()
	return rep
}

// TestOptionsMapping: every run option reaches RunFamily, the family file is expanded (dir,
// vars, images_dir), check mode is the plan, and the facts are the report's.
func TestOptionsMapping(t *testing.T) {
	f := &fakeRun{rep: sampleReport(false)}
	args := validArgs(t)
	dir := args["dir"].(string)
	args["_ansible_tmpdir"] = "/tmp/ansible-tmp-x"
	args["_ansible_diff"] = true
	doc, raw := serve(t, f, args)
	if !f.called {
		t.Fatalf("RunFamily was not called: %s", raw)
	}
	o := f.opts
	if o.DryRun || o.TempDir != "/tmp/ansible-tmp-x" || o.Redactor == nil || !slices.Equal(o.Select, []string{"app"}) ||
		!slices.Equal(o.Exclude, []string{"extra"}) || !o.SkipParents || !o.KeepGoing || !o.Rebuild || o.Jobs != 3 ||
		o.LogsDir != filepath.Join(dir, "logs") {
		t.Errorf("RunFamily options: %+v", o)
	}
	if st, err := os.Stat(filepath.Join(dir, "logs")); err != nil || !st.IsDir() {
		t.Errorf("logs_dir was not created: %v", err)
	}
	var names []string
	for _, img := range f.fam.Images {
		names = append(names, img.Name+":"+img.Tag)
	}
	if f.fam.Dir != dir || !slices.Equal(names, []string{"extra:2.5", "app:2.5", "base:2.5"}) {
		t.Errorf("family expanded in %s with images %v (want vars to set the tag, images_dir found under dir)", f.fam.Dir, names)
	}
	if w, _ := doc["warnings"].([]any); len(w) != 1 || !strings.Contains(w[0].(string), "vars.release is a number") {
		t.Errorf("warnings: %v", doc["warnings"])
	}
	if doc["changed"] != true || doc["failed"] != false || doc["dry_run"] != false || doc["msg"] != "family: 1 build, 1 skip, 1 pull" {
		t.Errorf("result: %s", raw)
	}
	digests := doc["digests"].(map[string]any)
	if len(digests) != 2 || digests["registry.example.com/team/app:2.5"] != d1 || digests["registry.example.com/team/base:2.5"] != d0 {
		t.Errorf("digests: %v", digests)
	}
	if tot := doc["totals"].(map[string]any); tot["build"] != 1.0 || tot["skip"] != 1.0 || tot["pull"] != 1.0 {
		t.Errorf("totals: %v", tot)
	}
	if images := doc["images"].([]any); len(images) != 3 || doc["failed"] != false || len(doc["failures"].([]any)) != 0 {
		t.Errorf("images, failed: %s", raw)
	}
	diff := doc["diff"].(map[string]any)
	before, after := diff["before"].(map[string]any), diff["after"].(map[string]any)
	if len(before) != 2 || before["registry.example.com/team/app:2.5"] != d0 || len(after) != 2 || after["registry.example.com/team/app:2.5"] != d1 {
		t.Errorf("diff: %v", diff)
	}
	if _, ok := doc["invocation"]; ok {
		t.Errorf("options echoed: %s", raw)
	}
	noCanary(t, "the result", raw)

	// Check mode: the plan.
	f = &fakeRun{rep: sampleReport(true)}
	args = validArgs(t)
	args["_ansible_check_mode"] = true
	args["_ansible_diff"] = true
	doc, raw = serve(t, f, args)
	if !f.opts.DryRun || doc["dry_run"] != true || doc["changed"] != true || doc["msg"] != "family plan: 1 build, 1 skip, 1 pull" {
		t.Errorf("check mode: dry run %t, result %s", f.opts.DryRun, raw)
	}
	if after := doc["diff"].(map[string]any)["after"].(map[string]any); after["registry.example.com/team/app:2.5"] != result.RebuiltMarker {
		t.Errorf("check mode diff: %v", after)
	}
	noCanary(t, "the plan", raw)
}

// TestDirDefault: without dir, the family's relative paths are relative to the module's
// working directory.
func TestDirDefault(t *testing.T) {
	args := validArgs(t)
	dir := args["dir"].(string)
	delete(args, "dir")
	t.Chdir(dir)
	f := &fakeRun{rep: sampleReport(false)}
	if doc, raw := serve(t, f, args); doc["failed"] != false || f.fam.Dir != dir {
		t.Errorf("family dir %v, want the working directory %s: %s", f.fam, dir, raw)
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(a map[string]any)
		want   []string
	}{
		{
			name: "family and run options wrong at once",
			modify: func(a map[string]any) {
				a["images"].([]any)[0].(map[string]any)["platfroms"] = []any{"linux/amd64"}
				a["jobs"] = 0
				a["keep_going"] = "yes"
			},
			want: []string{
				`/images/0: unknown property "platfroms" (did you mean "platforms"?)`,
				"/jobs: minimum: got 0, want 1",
				"/keep_going: got string, want boolean",
			},
		},
		{
			name:   "unknown top-level option",
			modify: func(a map[string]any) { a["builder_endpoint"] = "docker" },
			want:   []string{`/: unknown property "builder_endpoint"`},
		},
		{
			name:   "no registry",
			modify: func(a map[string]any) { delete(a, "registry") },
			want:   []string{"/: missing property 'registry'"},
		},
		{
			name:   "a variable the family does not declare",
			modify: func(a map[string]any) { a["vars"] = map[string]any{"relaese": "2"} },
			want:   []string{"/variables: --var relaese: the file declares no such variable"},
		},
		{
			name: "an inline source with a bad key",
			modify: func(a map[string]any) {
				a["images"].([]any)[0].(map[string]any)["source"].(map[string]any)["git_repo"].(map[string]any)["pasword"] = inlineCanary
			},
			want: []string{`/images/0/source`},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := validArgs(t)
			tt.modify(args)
			f := &fakeRun{}
			doc, raw := serve(t, f, args)
			if f.called {
				t.Fatal("the run started")
			}
			msg, _ := doc["msg"].(string)
			if doc["failed"] != true || doc["changed"] != false || !strings.HasPrefix(msg, "invalid options:\n") {
				t.Fatalf("result: %s", raw)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("msg does not say %q:\n%s", w, msg)
				}
			}
			errs, _ := doc["validation_errors"].([]any)
			if len(errs) < len(tt.want) {
				t.Errorf("validation_errors: %s", raw)
			}
			for _, e := range errs {
				if p, _ := e.(map[string]any)["pointer"].(string); p != "" && !strings.HasPrefix(p, "/") {
					t.Errorf("not a JSON pointer: %q", p)
				}
			}
			if _, ok := doc["images"]; ok {
				t.Errorf("facts with invalid options: %s", raw)
			}
			noCanary(t, "the result", raw)
		})
	}
}

func TestRunFailure(t *testing.T) {
	rep := sampleReport(false)
	rep.Images[1].Decision, rep.Images[1].Digest, rep.Images[1].Error = result.DecisionFailed, "", "pushing as u:"+regCanary+": denied"
	rep.Failed = []result.Failure{{Image: rep.Images[1].Ref, Step: result.StepBuild, Error: "pulling with " + secretCanary}}
	rep.Count()
	f := &fakeRun{rep: rep, err: &pipeline.Error{Step: "run", Err: errors.New("1 image(s) failed: app; " + inlineCanary)}}
	doc, raw := serve(t, f, validArgs(t))
	if doc["failed"] != true || doc["changed"] != true || !strings.Contains(doc["msg"].(string), "1 image(s) failed: app") {
		t.Errorf("result: %s", raw)
	}
	if fl := doc["failures"].([]any); len(fl) != 1 || fl[0].(map[string]any)["step"] != "build" {
		t.Errorf("failures: %v", fl)
	}
	if tot := doc["totals"].(map[string]any); tot["failed"] != 1.0 {
		t.Errorf("totals: %v", tot)
	}
	noCanary(t, "the result of a failed run", raw)

	// A run that returns no report at all still gives a complete answer; the module masks every
	// secret of its options itself (this run added none to the redactor), an inline source's too.
	f = &fakeRun{err: errors.New("exploded: " + strings.Join([]string{regCanary, srcCanary, inlineCanary, secretCanary}, " "))}
	doc, raw = serve(t, f, validArgs(t))
	if doc["failed"] != true || doc["msg"] != "exploded: ******** ******** ******** ********" || doc["images"] == nil || doc["totals"] == nil {
		t.Errorf("result: %s", raw)
	}
	noCanary(t, "the result of a run that failed before masking anything", raw)
}

// TestStageVars: with registry.stage_tag, a var the family does not declare is only the stage
// tag's .Vars: the family expands, and the run gets every var.
func TestStageVars(t *testing.T) {
	f := &fakeRun{rep: sampleReport(false)}
	args := validArgs(t)
	reg := args["registry"].(map[string]any)
	reg["stage_tag"] = "change_{{.Vars.change}}_{{.Tag}}"
	args["vars"] = map[string]any{"release": "2.5", "change": "77"}
	_, raw := serve(t, f, args)
	if !f.called || f.opts.Vars["change"] != "77" || f.opts.Vars["release"] != "2.5" || f.fam.Variables["release"] != "2.5" {
		t.Fatalf("vars: run %v, family %v: %s", f.opts.Vars, f.fam.Variables, raw)
	}
	if _, ok := f.fam.Variables["change"]; ok {
		t.Errorf("change became a family variable: %v", f.fam.Variables)
	}
}
