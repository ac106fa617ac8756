package main

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/ansibletest"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/result"
)

// TestGeneratedDocsUpToDate fails when collection/plugins/modules/image_build.py (the module's
// documentation and argument spec, generated from the schema and docs.yml) is stale: run
// `make schema` and commit the result.
func TestGeneratedDocsUpToDate(t *testing.T) {
	ansibletest.GeneratedDocsUpToDate(t, "image_build", "../../schema/build-params.schema.json", "options.schema.json")
}

// TestReturnDocumented: RETURN documents every fact the module returns, and images' fields are
// exactly result.Image's.
func TestReturnDocumented(t *testing.T) {
	ret := ansibletest.ReturnDoc(t, "docs.yml")
	for _, key := range []string{"images", "digests", "source", "builder", "dry_run", "failure", "validation_errors"} {
		if ret[key].Returned == "" {
			t.Errorf("RETURN does not say when %s is returned", key)
		}
	}
	ansibletest.SameKeys(t, "images", ret["images"].Contains, reflect.TypeFor[result.Image]())
}

// fakeRun records the call and returns a canned result.
type fakeRun struct {
	called bool
	opts   pipeline.Options
	p      params.BuildParams
	res    *result.Result
	err    error
}

func (f *fakeRun) run(_ context.Context, p params.BuildParams, opts pipeline.Options) (*result.Result, error) {
	f.called, f.p, f.opts = true, p, opts
	return f.res, f.err
}

func serve(t *testing.T, f *fakeRun, args map[string]any) (map[string]any, string) {
	t.Helper()
	return ansibletest.Serve(t, module(f.run), args, false)
}

const canary = "canary-Pw-51d0"

func validArgs() map[string]any {
	return map[string]any{
		"source": map[string]any{"git_repo": map[string]any{"url": "https://git.example.com/a.git", "username": "u", "password": canary}},
		"target": map[string]any{
			"images":   []any{map[string]any{"image": "team/app", "tag": "v1", "tags": []any{"latest"}}},
			"registry": map[string]any{"url": "registry.example.com", "username": "u", "password": canary},
		},
		"builder": map[string]any{"endpoint": "unix:///run/buildkit/buildkitd.sock"},
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(a map[string]any)
		want   []string
	}{
		{
			name: "unknown option",
			modify: func(a map[string]any) {
				a["target"].(map[string]any)["images"].([]any)[0].(map[string]any)["platfroms"] = []any{"linux/amd64"}
			},
			want: []string{`/target/images/0: unknown property "platfroms" (did you mean "platforms"?)`},
		},
		{
			name:   "unknown top-level option",
			modify: func(a map[string]any) { a["builder_endpoint"] = "docker" },
			want:   []string{`/: unknown property "builder_endpoint"`},
		},
		{
			name: "both sources",
			modify: func(a map[string]any) {
				a["source"].(map[string]any)["local"] = map[string]any{"path": "/src"}
			},
			want: []string{"/source: git_repo and local cannot be combined"},
		},
		{
			name: "missing tag",
			modify: func(a map[string]any) {
				delete(a["target"].(map[string]any)["images"].([]any)[0].(map[string]any), "tag")
			},
			want: []string{"/target/images/0: missing property 'tag'"},
		},
		{
			name:   "no source",
			modify: func(a map[string]any) { delete(a, "source") },
			want:   []string{"/: missing property 'source'"},
		},
		{
			name: "wrong type",
			modify: func(a map[string]any) {
				a["target"].(map[string]any)["registry"].(map[string]any)["insecure"] = "very"
			},
			want: []string{"/target/registry/insecure: got string, want boolean"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := validArgs()
			tt.modify(args)
			f := &fakeRun{}
			doc, raw := serve(t, f, args)
			if f.called {
				t.Fatal("the build started")
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
			if errs, _ := doc["validation_errors"].([]any); len(errs) == 0 {
				t.Errorf("no validation_errors: %s", raw)
			}
			if strings.Contains(raw, canary) {
				t.Errorf("the password is in the result: %s", raw)
			}
		})
	}
}

func TestBuildResult(t *testing.T) {
	const d1, d0 = "sha256:1111111111111111111111111111111111111111111111111111111111111111", "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	img := result.Image{
		Ref: "registry.example.com/team/app:v1", Image: "team/app", Tag: "v1", Tags: []string{"v1", "latest"},
		Repository: "registry.example.com/team/app", Digest: d1, Platforms: []string{"linux/amd64"}, Changed: true,
		Previous: map[string]string{"latest": d0},
	}
	f := &fakeRun{res: &result.Result{Changed: true, Images: []result.Image{img},
		Source:  &result.Source{Kind: "git", URL: "https://git.example.com/a.git", Commit: strings.Repeat("a", 40)},
		Builder: &result.Builder{Kind: "docker", Endpoint: "docker+ssh://build-host"}}}
	args := validArgs()
	args["_ansible_diff"] = true
	args["_ansible_tmpdir"] = "/tmp/ansible-tmp-x"
	args["_ansible_some_future_key"] = map[string]any{"x": 1}
	doc, raw := serve(t, f, args)
	if f.opts.DryRun || f.opts.TempDir != "/tmp/ansible-tmp-x" || f.p.Target.Images[0].Tag != "v1" {
		t.Errorf("pipeline called with %+v, %+v", f.opts, f.p)
	}
	if doc["changed"] != true || doc["failed"] != false || doc["dry_run"] != false {
		t.Fatalf("result: %s", raw)
	}
	digests := doc["digests"].(map[string]any)
	if digests["registry.example.com/team/app:v1"] != d1 || digests["registry.example.com/team/app:latest"] != d1 {
		t.Errorf("digests: %v", digests)
	}
	if doc["source"].(map[string]any)["commit"] != strings.Repeat("a", 40) || len(doc["images"].([]any)) != 1 {
		t.Errorf("facts: %s", raw)
	}
	if b, _ := doc["builder"].(map[string]any); b["kind"] != "docker" || b["endpoint"] != "docker+ssh://build-host" {
		t.Errorf("builder fact: %s", raw)
	}
	diff := doc["diff"].(map[string]any)
	before, after := diff["before"].(map[string]any), diff["after"].(map[string]any)
	if len(before) != 1 || before["registry.example.com/team/app:latest"] != d0 || len(after) != 2 || after["registry.example.com/team/app:v1"] != d1 {
		t.Errorf("diff: %v", diff)
	}
	if !strings.Contains(doc["msg"].(string), "built and pushed 1 of 1 image(s)") {
		t.Errorf("msg: %v", doc["msg"])
	}
	if _, ok := doc["invocation"]; ok || strings.Contains(raw, canary) {
		t.Errorf("options echoed: %s", raw)
	}

	// Unchanged: no diff, changed false.
	img.Changed, img.Previous = false, map[string]string{"v1": d1, "latest": d1}
	f.res = &result.Result{Images: []result.Image{img}}
	doc, raw = serve(t, f, args)
	if doc["changed"] != false || doc["diff"] != nil || doc["msg"] != "all 1 image(s) up to date" {
		t.Errorf("unchanged result: %s", raw)
	}
}

func TestCheckMode(t *testing.T) {
	img := result.Image{Ref: "r/a:v1", Repository: "r/a", Tags: []string{"v1"}, Changed: true}
	f := &fakeRun{res: &result.Result{Changed: true, DryRun: true, Images: []result.Image{img}}}
	args := validArgs()
	args["_ansible_check_mode"] = true
	args["_ansible_diff"] = true
	doc, raw := serve(t, f, args)
	if !f.opts.DryRun {
		t.Fatal("check mode did not ask for a dry run")
	}
	if doc["changed"] != true || doc["dry_run"] != true || len(doc["digests"].(map[string]any)) != 0 ||
		!strings.HasPrefix(doc["msg"].(string), "would build and push 1 of 1 image(s)") {
		t.Errorf("result: %s", raw)
	}
	if after := doc["diff"].(map[string]any)["after"].(map[string]any); !strings.Contains(after["r/a:v1"].(string), "rebuilt") {
		t.Errorf("diff: %s", raw)
	}
}

func TestBuildFailure(t *testing.T) {
	f := &fakeRun{
		res: &result.Result{Images: []result.Image{{Ref: "r/a:v1"}},
			Failed: &result.Failure{Image: "r/a:v1", Step: result.StepCheck, Error: "login as u with " + canary + ": denied"}},
		err: &pipeline.Error{Image: "r/a:v1", Step: result.StepCheck, Err: errors.New("login as u with " + canary + ": denied")},
	}
	doc, raw := serve(t, f, validArgs())
	if doc["failed"] != true || doc["changed"] != false {
		t.Fatalf("result: %s", raw)
	}
	if !strings.Contains(doc["msg"].(string), "r/a:v1: check: login as u with ********: denied") {
		t.Errorf("msg: %v", doc["msg"])
	}
	if fl := doc["failure"].(map[string]any); fl["step"] != "check" {
		t.Errorf("failure: %v", fl)
	}
	if strings.Contains(raw, canary) {
		t.Errorf("the password is in the result: %s", raw)
	}

	// A run that returns no result at all still gives a complete answer.
	f = &fakeRun{err: errors.New("exploded")}
	doc, raw = serve(t, f, validArgs())
	if doc["failed"] != true || doc["msg"] != "exploded" || doc["images"] == nil {
		t.Errorf("result: %s", raw)
	}
}

// TestVars: vars reach the run as the stage tag's .Vars; a value that is not a string (after
// Ansible's number conversion) is invalid, named at /vars.
func TestVars(t *testing.T) {
	f := &fakeRun{res: &result.Result{Images: []result.Image{}}}
	args := validArgs()
	args["vars"] = map[string]any{"change": json.Number("123")}
	doc, raw := serve(t, f, args)
	if !f.called || f.opts.Vars["change"] != "123" {
		t.Fatalf("vars did not reach the run (%v): %s", f.opts.Vars, raw)
	}
	if w, _ := doc["warnings"].([]any); len(w) != 1 || !strings.Contains(w[0].(string), "vars.change is a number") {
		t.Errorf("warnings: %v", doc["warnings"])
	}
	f = &fakeRun{}
	args["vars"] = map[string]any{"change": []any{1}}
	doc, raw = serve(t, f, args)
	if f.called || doc["failed"] != true || !strings.Contains(doc["msg"].(string), "/vars/change") {
		t.Errorf("a list as a var: %s", raw)
	}
}
