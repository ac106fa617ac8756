package main

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/ansible"
	"github.com/imagebuilder/imagebuilder/internal/ansibletest"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestGeneratedDocsUpToDate fails when collection/plugins/modules/image_promote.py (generated
// from options.schema.json and docs.yml) is stale: run `make schema`.
func TestGeneratedDocsUpToDate(t *testing.T) {
	ansibletest.GeneratedDocsUpToDate(t, "image_promote", "options.schema.json")
}

// TestOptions: the schema's options are exactly the fields options decodes.
func TestOptions(t *testing.T) {
	var fields []string
	for f := range reflect.TypeFor[options]().Fields() {
		fields = append(fields, strings.Split(f.Tag.Get("json"), ",")[0])
	}
	slices.Sort(fields)
	if names := module().Spec.Names(); !slices.Equal(names, fields) {
		t.Errorf("options.schema.json declares %v, options decodes %v", names, fields)
	}
}

// TestReturnDocumented: RETURN documents the facts, with exactly the fields of the result types.
func TestReturnDocumented(t *testing.T) {
	ret := ansibletest.ReturnDoc(t, "docs.yml")
	ansibletest.SameKeys(t, "images", ret["images"].Contains, reflect.TypeFor[result.PromotedImage]())
	promoted, _ := ret["images"].Contains["promoted"].(map[string]any)
	contains, _ := promoted["contains"].(map[string]any)
	ansibletest.SameKeys(t, "images[].promoted", contains, reflect.TypeFor[result.PromotedTag]())
	ansibletest.SameKeys(t, "deleted", ret["deleted"].Contains, reflect.TypeFor[result.SweptTag]())
	ansibletest.SameKeys(t, "kept", ret["kept"].Contains, reflect.TypeFor[result.SweptTag]())
	ansibletest.SameKeys(t, "failure", ret["failure"].Contains, reflect.TypeFor[result.Failure]())
	for _, key := range []string{"digests", "repository", "dry_run", "validation_errors"} {
		if ret[key].Returned == "" {
			t.Errorf("RETURN does not document %s", key)
		}
	}
}

func serve(t *testing.T, args map[string]any, check bool) (map[string]any, string) {
	t.Helper()
	return ansibletest.Serve(t, module(), args, check)
}

const canary = "canary-promote-Pw-4e1f"

func noCanary(t *testing.T, what, text string) {
	t.Helper()
	if i := strings.Index(text, canary); i >= 0 {
		t.Errorf("the password appears in %s: ...%s...", what, text[max(0, i-200):min(len(text), i+50)])
	}
}

// TestInvalidOptions: options that cannot be run fail before any registry is contacted, each
// naming the option by JSON pointer; the passwords never show.
func TestInvalidOptions(t *testing.T) {
	params := func(stage string) map[string]any {
		reg := map[string]any{"url": "127.0.0.1:1", "username": "u", "password": canary}
		if stage != "" {
			reg["stage_tag"] = stage
		}
		return map[string]any{
			"source": map[string]any{"git_repo": map[string]any{"url": "https://example.com/r.git"}},
			"target": map[string]any{"registry": reg, "images": []any{map[string]any{"image": "team/app", "tag": "1"}}},
		}
	}
	creds := []any{map[string]any{"registry": "127.0.0.1:1", "username": "u", "password": canary}}
	for _, tt := range []struct {
		name    string
		args    map[string]any
		pointer string
		want    string
	}{
		{"nothing", map[string]any{"credentials": creds}, "", "give exactly one of params, family, file, refs, sweep; got none"},
		{"two modes", map[string]any{"params": params("s_{{.Tag}}"), "refs": []any{map[string]any{"from": "a", "to": "b"}}}, "", "got params and refs"},
		{"vars with refs", map[string]any{"refs": []any{map[string]any{"from": "a", "to": "b"}}, "vars": map[string]any{"change": "1"}}, "/vars", "refs names the tags itself"},
		{"misspelt sweep option", map[string]any{"sweep": map[string]any{"repository": "r", "match": "c", "older_then": "1d"}}, "/sweep", "older_then"},
		{"bad age", map[string]any{"sweep": map[string]any{"repository": "r", "match": "c", "older_than": "soon"}}, "/sweep/older_than", "soon"},
		{"nothing staged", map[string]any{"params": params(""), "credentials": creds}, "/params", "no stage_tag"},
		{"invalid params", map[string]any{"params": map[string]any{"target": map[string]any{"registry": map[string]any{"url": "r", "password": canary}, "imgs": 1}}}, "/params/target", "imgs"},
		{"credentials half", map[string]any{"refs": []any{map[string]any{"from": "a", "to": "b"}}, "credentials": []any{map[string]any{"registry": "r", "password": canary}}}, "/credentials", "username and password go together"},
		{"no file", map[string]any{"file": "/nonexistent/params.yaml", "credentials": creds}, "", "reading file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc, text := serve(t, tt.args, false)
			noCanary(t, "the result", text)
			msg, _ := doc["msg"].(string)
			if doc["failed"] != true || !strings.Contains(msg, tt.want) {
				t.Fatalf("want a failure saying %q, got %s", tt.want, text)
			}
			if tt.pointer == "" {
				return
			}
			errs, _ := doc["validation_errors"].([]any)
			found := false
			for _, e := range errs {
				m, _ := e.(map[string]any)
				p, _ := m["pointer"].(string)
				found = found || strings.HasPrefix(p, tt.pointer)
			}
			if !found {
				t.Errorf("no validation error at %s: %s", tt.pointer, text)
			}
		})
	}
}

// TestPromoteAndSweep runs the module against the real registry: a params file's staged tags
// are promoted (check mode first, which moves nothing), the final tags serve the staged digest,
// the stage tags are gone, and the same promote again fails naming the missing stage tag; a
// sweep (check mode first) deletes only the matching tag older than the threshold; a promote
// outside the credentials' repositories is refused naming the rule, its password masked.
func TestPromoteAndSweep(t *testing.T) {
	reg := testenv.Require(t, testenv.Registry)[testenv.Registry]
	ns := testenv.UniqueTag("promote-module")
	repo := reg + "/" + ns + "/app"
	now := time.Now().UTC()
	staged := testenv.PushDated(t, repo+":change_7_latest", now, nil)
	testenv.PushDated(t, repo+":change_7_1.0", now, nil) // another image: promoted as it is
	before := testenv.PushDated(t, repo+":latest", now.Add(-time.Hour), nil)
	old := testenv.PushDated(t, repo+":change_1_latest", now.Add(-10*24*time.Hour), nil)
	digest := func(tag string) string { return testenv.RegistryDigest(t, repo+":"+tag, nil) }
	staged10 := digest("change_7_1.0")

	params := map[string]any{
		"source": map[string]any{"git_repo": map[string]any{"url": "https://example.com/r.git"}},
		"target": map[string]any{
			"registry": map[string]any{"url": reg, "stage_tag": "change_{{.Vars.change}}_{{.Tag}}"},
			"images":   []any{map[string]any{"image": ns + "/app", "tag": "latest", "tags": []any{"1.0"}}},
		},
	}
	args := map[string]any{"params": params, "vars": map[string]any{"change": "7"}}

	doc, text := serve(t, args, true)
	if doc["failed"] == true || doc["changed"] != true || doc["dry_run"] != true {
		t.Fatalf("check mode: %s", text)
	}
	if digest("latest") != before || digest("change_7_latest") != staged {
		t.Errorf("check mode moved a tag")
	}

	doc, text = serve(t, args, false)
	if doc["failed"] == true || doc["changed"] != true || doc["dry_run"] != false {
		t.Fatalf("promote: %s", text)
	}
	if got := digest("latest"); got != staged {
		t.Errorf("latest serves %s, want the staged %s", got, staged)
	}
	if got := digest("1.0"); got != staged10 {
		t.Errorf("1.0 serves %s, want the staged %s", got, staged10)
	}
	for _, tag := range []string{"change_7_latest", "change_7_1.0"} {
		if got := digest(tag); got != "" {
			t.Errorf("the stage tag %s still serves %s", tag, got)
		}
	}
	if d, _ := doc["digests"].(map[string]any); d[repo+":latest"] != staged || d[repo+":1.0"] != staged10 {
		t.Errorf("digests fact: %v", doc["digests"])
	}
	images, _ := doc["images"].([]any)
	if len(images) != 1 || len(images[0].(map[string]any)["deleted"].([]any)) != 2 {
		t.Errorf("images fact: %v", doc["images"])
	}

	doc, text = serve(t, args, false)
	if doc["failed"] != true || !strings.Contains(doc["msg"].(string), ":change_7_") {
		t.Errorf("the same promote again: want a failure naming the stage tag, got %s", text)
	}

	sweepArgs := map[string]any{"sweep": map[string]any{"repository": repo, "match": "change_", "older_than": "7d"}}
	doc, text = serve(t, sweepArgs, true)
	if doc["changed"] != true || len(doc["deleted"].([]any)) != 1 || digest("change_1_latest") != old {
		t.Fatalf("sweep in check mode: %s", text)
	}
	doc, text = serve(t, sweepArgs, false)
	deleted, _ := doc["deleted"].([]any)
	if doc["failed"] == true || doc["changed"] != true || len(deleted) != 1 || deleted[0].(map[string]any)["tag"] != "change_1_latest" {
		t.Fatalf("sweep: %s", text)
	}
	if digest("change_1_latest") != "" || digest("latest") != staged || digest("1.0") != staged10 {
		t.Errorf("after the sweep: change_1_latest %q (want gone), latest %q, 1.0 %q", digest("change_1_latest"), digest("latest"), digest("1.0"))
	}
	if kept, _ := doc["kept"].([]any); len(kept) != 2 {
		t.Errorf("kept: %v, want latest and 1.0", doc["kept"])
	}

	scoped := map[string]any{
		"refs":        []any{map[string]any{"from": repo + ":latest", "to": reg + "/other/app:latest"}},
		"credentials": []any{map[string]any{"registry": reg, "username": "ci", "password": canary, "repositories": []any{"^" + ns + "/"}}},
	}
	doc, text = serve(t, scoped, false)
	noCanary(t, "the result of a refused promote", text)
	failure, _ := doc["failure"].(map[string]any)
	if doc["failed"] != true || failure["step"] != result.StepCheck || !strings.Contains(doc["msg"].(string), "^"+ns+"/ (option credentials, entry 0)") {
		t.Errorf("a promote outside the credentials' repositories: %s", text)
	}
}

// TestSecretsOfDocuments: the passwords inside params and family (options of type dict, whose
// secrets the module's argument spec cannot see) are masked in everything the module returns,
// even when the document is invalid.
func TestSecretsOfDocuments(t *testing.T) {
	for _, args := range []map[string]any{
		{"params": map[string]any{"target": map[string]any{"registry": map[string]any{"url": "127.0.0.1:1", "username": "u", "password": canary}}, "bad": 1}},
		{"family": map[string]any{"registry": map[string]any{"url": "127.0.0.1:1", "username": "u", "password": canary}, "sources": map[string]any{
			"s": map[string]any{"git_repo": map[string]any{"url": "https://example.com/r.git", "password": canary + "-git"}}}, "bad": 1}},
	} {
		red := redact.New()
		req := &ansible.Request{Options: args, Redactor: red}
		if resp := run(context.Background(), req); !resp.Failed {
			t.Fatalf("%v: not failed", args)
		}
		for _, s := range []string{canary, canary + "-git"} {
			if got := red.String("x " + s + " y"); strings.Contains(got, canary) {
				t.Errorf("%v: the module does not mask %s: %q", args, s, got)
			}
		}
	}
}
