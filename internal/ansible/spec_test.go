package ansible

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/schema"
)

func buildParamsSpec(t *testing.T) Spec {
	t.Helper()
	spec, err := SpecFromSchema(schema.BuildParams)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// lookupOption follows a dotted path through suboptions.
func lookupOption(spec Spec, path string) *Option {
	var o *Option
	for _, name := range strings.Split(path, ".") {
		if spec == nil {
			return nil
		}
		o = spec[name]
		if o == nil {
			return nil
		}
		spec = o.Options
	}
	return o
}

func TestSpecFromBuildParamsSchema(t *testing.T) {
	spec := buildParamsSpec(t)
	if got := strings.Join(spec.Names(), ","); got != "builder,secrets,source,ssh,target" {
		t.Fatalf("top-level options: %s", got)
	}
	for _, tt := range []struct {
		path string
		want Option // Description and Options are not compared
	}{
		{"source", Option{Type: "dict", Required: true,
			MutuallyExclusive: [][]string{{"git_repo", "dockerfile", "tar", "local"}},
			RequiredOneOf:     [][]string{{"git_repo", "dockerfile", "tar", "local"}},
			RequiredBy:        map[string][]string{"build_context": {"dockerfile"}}}},
		{"source.tar", Option{Type: "dict", MutuallyExclusive: [][]string{{"path", "url"}}, RequiredOneOf: [][]string{{"path", "url"}},
			RequiredBy: map[string][]string{"username": {"url"}, "password": {"url"}}}},
		{"target.registry", Option{Type: "dict", Required: true, RequiredBy: map[string][]string{"username": {"password"}, "password": {"username"}}}},
		{"target", Option{Type: "dict", Required: true}},
		{"builder", Option{Type: "dict"}},
		{"source.git_repo", Option{Type: "dict"}},
		{"source.git_repo.url", Option{Type: "str", Required: true}},
		{"source.git_repo.version", Option{Type: "str", Default: "HEAD"}},
		{"source.git_repo.password", Option{Type: "str", NoLog: true}},
		{"source.dockerfile.password", Option{Type: "str", NoLog: true}},
		{"source.build_context.password", Option{Type: "str", NoLog: true}},
		{"source.tar.password", Option{Type: "str", NoLog: true}},
		{"source.local.workdir", Option{Type: "str", Default: "."}},
		{"target.images", Option{Type: "list", Elements: "dict", Required: true}},
		{"target.images.tag", Option{Type: "str", Required: true}},
		{"target.images.platforms", Option{Type: "list", Elements: "str"}},
		{"target.images.build_args", Option{Type: "dict", Values: "str"}},
		{"target.images.labels", Option{Type: "dict", Values: "str"}},
		{"target.images.bases", Option{Type: "dict", Values: "str"}},
		{"target.registry.password", Option{Type: "str", NoLog: true}},
		{"target.registry.insecure", Option{Type: "bool"}},
		{"builder.no_cache", Option{Type: "bool"}},
	} {
		o := lookupOption(spec, tt.path)
		if o == nil {
			t.Errorf("%s: missing", tt.path)
			continue
		}
		got := *o
		got.Description, got.Options = "", nil
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s = %+v, want %+v", tt.path, got, tt.want)
		}
		if o.Description == "" {
			t.Errorf("%s: no description", tt.path)
		}
	}
}

// TestSpecFromSchemaErrors: the walk's errors reach the caller (internal/schemawalk tests them all).
func TestSpecFromSchemaErrors(t *testing.T) {
	if _, err := SpecFromSchema([]byte(`{"$ref": "#/$defs/Nope"}`)); err == nil || !strings.Contains(err.Error(), "does not resolve") {
		t.Errorf("error %v", err)
	}
}

func decodeOptions(t *testing.T, s string) map[string]any {
	t.Helper()
	r, err := ParseArgs([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return r.Options
}

func TestSecrets(t *testing.T) {
	spec := buildParamsSpec(t)
	opts := decodeOptions(t, `{
		"source": {"git_repo": {"url": "u", "username": "not-secret", "password": "git-pw"},
		           "dockerfile": {"url": "u", "password": "df-pw"},
		           "build_context": {"url": "u", "password": "bc-pw"},
		           "tar": {"url": "u", "password": 12345}},
		"target": {"images": [{"image": "a", "tag": "t", "labels": {"password": "label-is-not-secret"},
		                       "secrets": {"img": {"value": "img-secret"}, "e": {"env": "NOT_SECRET_NAME"}}}],
		           "registry": {"url": "r", "username": "u", "password": "reg-pw"}},
		"secrets": {"tok": {"value": "req-secret"}, "f": {"file": "/not/secret"}},
		"password": "unknown-top-level-key-is-not-secret"
	}`)
	got := spec.Secrets(opts)
	slices.Sort(got)
	want := []string{"12345", "bc-pw", "df-pw", "git-pw", "img-secret", "reg-pw", "req-secret"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("secrets = %v, want %v", got, want)
	}
	// Wrong shapes (the schema will reject them) do not hide the secrets inside.
	opts = decodeOptions(t, `{"source": {"git_repo": {"password": ["a", {"b": "c"}]}}, "target": {"images": {"x": 1}}}`)
	got = spec.Secrets(opts)
	slices.Sort(got)
	if !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Errorf("secrets in odd shapes = %v", got)
	}
}

func TestNormalize(t *testing.T) {
	spec := buildParamsSpec(t)
	opts := decodeOptions(t, `{
		"source": {"git_repo": {"url": "u", "version": 1.10, "password": 4242, "username": null}},
		"target": {"images": [{"image": "a", "tag": 2, "tags": [3, "x"], "build_args": {"V": 3.11, "N": null}, "base": null}],
		           "registry": {"url": "r", "insecure": 1}},
		"builder": null
	}`)
	warnings := spec.Normalize(opts)
	want := decodeOptions(t, `{
		"source": {"git_repo": {"url": "u", "version": "1.10", "password": "4242"}},
		"target": {"images": [{"image": "a", "tag": "2", "tags": ["3", "x"], "build_args": {"V": "3.11"}}],
		           "registry": {"url": "r", "insecure": 1}}
	}`)
	if !reflect.DeepEqual(opts, want) {
		got, _ := json.Marshal(opts)
		t.Errorf("normalized = %s", got)
	}
	if len(warnings) != 5 {
		t.Errorf("warnings = %q, want 5", warnings)
	}
	for _, w := range warnings {
		if strings.Contains(w, "4242") {
			t.Errorf("a no_log value is in a warning: %s", w)
		}
	}
	if !slices.ContainsFunc(warnings, func(w string) bool {
		return strings.Contains(w, "source.git_repo.version") && strings.Contains(w, `"1.10"`)
	}) {
		t.Errorf("no warning names source.git_repo.version: %q", warnings)
	}
}

// TestSpecFromSchemas: a module's own options join the document's; a name declared twice is an
// error naming it.
func TestSpecFromSchemas(t *testing.T) {
	doc := []byte(`{"type": "object", "properties": {"name": {"type": "string"}, "token": {"type": "string", "writeOnly": true}}}`)
	own := []byte(`{"type": "object", "properties": {"jobs": {"type": "integer"}}}`)
	spec, err := SpecFromSchemas(doc, own)
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Names(); len(got) != 3 || spec["jobs"].Type != "int" || !spec["token"].NoLog {
		t.Errorf("merged spec: %v", got)
	}
	clash := []byte(`{"type": "object", "properties": {"name": {"type": "boolean"}}}`)
	if _, err := SpecFromSchemas(doc, clash); err == nil || !strings.Contains(err.Error(), `"name"`) {
		t.Errorf("a clash gave %v, want an error naming the option", err)
	}
}
