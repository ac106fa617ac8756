package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/schema"
)

const examples = "../../examples/params"

// ib runs the command line in-process and returns its exit status and output.
func ib(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateExitCodes(t *testing.T) {
	valid, _ := filepath.Glob(filepath.Join(examples, "*.*"))
	invalid, _ := filepath.Glob(filepath.Join(examples, "invalid", "*.*"))
	if len(valid) < 10 || len(invalid) < 20 {
		t.Fatalf("found %d valid and %d invalid examples in %s; the test would check nothing", len(valid), len(invalid), examples)
	}
	for _, f := range valid {
		if code, _, stderr := ib(t, "", "validate", "-f", f); code != 0 {
			t.Errorf("validate %s: exit %d: %s", f, code, stderr)
		}
	}
	for _, f := range invalid {
		if strings.HasSuffix(f, "expected-errors.json") {
			continue
		}
		code, stdout, stderr := ib(t, "", "validate", "-f", f)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "is invalid:\n/") {
			t.Errorf("validate %s: exit %d, stdout %q, stderr %q", f, code, stdout, stderr)
		}
		if strings.Contains(stderr, "goroutine") {
			t.Errorf("validate %s: panic trace in output", f)
		}
	}
	data, _ := os.ReadFile(filepath.Join(examples, "git.json"))
	if code, _, stderr := ib(t, string(data), "validate"); code != 0 {
		t.Errorf("validate from stdin: exit %d: %s", code, stderr)
	}
}

func TestUsageAndRuntimeErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"bogus"}, 2, "unknown command"},
		{[]string{"validate", "--nope"}, 2, "unknown flag"},
		{[]string{"validate", "extra"}, 2, "takes no arguments"},
		{[]string{"convert", "--to", "xml", "-f", filepath.Join(examples, "git.json")}, 2, "--to must be json or yaml"},
		{[]string{"convert", "-f", examples}, 2, "needs --out"},
		{[]string{"validate", "-f", "/nonexistent/params.yaml"}, 1, "no such file"},
		{[]string{"validate"}, 2, "got null, want object"},
	} {
		code, _, stderr := ib(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%q: exit %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, stderr, tc.msg)
		}
	}
	if code, out, _ := ib(t, "", "--version"); code != 0 || !strings.HasPrefix(out, "imagebuilder version ") {
		t.Errorf("--version: %d %q", code, out)
	}
	if code, out, _ := ib(t, "", "completion", "bash"); code != 0 || !strings.Contains(out, "bash completion") {
		t.Errorf("completion bash: %d", code)
	}
}

func decodeAny(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return v
}

// TestConvertRoundTrip: JSON -> YAML -> JSON is equal as data for every example, and
// YAML -> JSON -> YAML is byte-stable.
func TestConvertRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(examples, "*.json"))
	if len(files) < 5 {
		t.Fatalf("found %d JSON examples in %s; the test would check nothing", len(files), examples)
	}
	for _, f := range files {
		orig, _ := os.ReadFile(f)
		code, y, stderr := ib(t, string(orig), "convert")
		if code != 0 || !strings.HasPrefix(y, "source:") && !strings.Contains(y, "\nsource:") {
			t.Fatalf("%s to YAML: exit %d %s\n%s", f, code, stderr, y)
		}
		code, j, stderr := ib(t, y, "convert")
		if code != 0 {
			t.Fatalf("%s back to JSON: exit %d %s", f, code, stderr)
		}
		if !reflect.DeepEqual(decodeAny(t, orig), decodeAny(t, []byte(j))) {
			t.Errorf("%s: JSON -> YAML -> JSON changed the data:\n%s", f, j)
		}
		_, y2, _ := ib(t, j, "convert", "--to", "yaml")
		if y2 != y {
			t.Errorf("%s: YAML -> JSON -> YAML is not stable:\n%s\n---\n%s", f, y, y2)
		}
		// The committed YAML twin is exactly what convert writes.
		twin, _ := os.ReadFile(strings.TrimSuffix(f, ".json") + ".yaml")
		if string(twin) != y {
			t.Errorf("%s: YAML twin differs from convert output", f)
		}
	}
}

func TestConvertDefaults(t *testing.T) {
	code, out, stderr := ib(t, "", "convert", "--to", "json", "--defaults", "-f", filepath.Join(examples, "git.json"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Source struct {
			GitRepo map[string]string `json:"git_repo"`
		} `json:"source"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	g := doc.Source.GitRepo
	if g["version"] != "HEAD" || g["dockerfile"] != "Dockerfile" || g["workdir"] != "." {
		t.Errorf("defaults not filled in: %v", g)
	}
	if code, _, _ := ib(t, "", "convert", "--defaults", "-f", filepath.Join(examples, "invalid", "both-sources.json")); code != 2 {
		t.Errorf("--defaults on invalid params: exit %d, want 2", code)
	}
}

func TestConvertTree(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	for _, rel := range []string{"git.json", "multi-arch.yaml", "invalid/both-sources.json"} {
		data, err := os.ReadFile(filepath.Join(examples, rel))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(in, "nested", rel)), 0o755)
		if err := os.WriteFile(filepath.Join(in, "nested", rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(in, "README.md"), []byte("not converted"), 0o644)
	code, _, stderr := ib(t, "", "convert", "--to", "json", "-f", in, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, rel := range []string{"nested/git.json", "nested/multi-arch.json", "nested/invalid/both-sources.json"} {
		if _, err := os.Stat(filepath.Join(out, rel)); err != nil {
			t.Errorf("tree conversion did not mirror %s: %v", rel, err)
		}
	}
	// Files that are not JSON/YAML at all are reported with their name, and the rest still converts.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "ok.json"), []byte(`{"a": 1}`), 0o644)
	os.WriteFile(filepath.Join(bad, "broken.json"), []byte(`{"a": `), 0o644)
	code, _, stderr = ib(t, "", "convert", "-f", bad, "--out", filepath.Join(out, "b"))
	if code != 2 || !strings.Contains(stderr, "broken.json") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "b", "ok.yaml")); err != nil {
		t.Error(err)
	}
}

func TestSchemaCommand(t *testing.T) {
	code, out, _ := ib(t, "", "schema")
	if code != 0 || out != string(schema.BuildParams) {
		t.Fatalf("schema: exit %d", code)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc["$id"] == nil {
		t.Fatalf("schema output is not a JSON Schema: %v", err)
	}
	if code, out, _ := ib(t, "", "schema", "family"); code != 0 || out != string(schema.Family) {
		t.Fatalf("schema family: exit %d", code)
	}
	if code, _, stderr := ib(t, "", "schema", "nope"); code != 2 || !strings.Contains(stderr, `no schema named "nope"`) {
		t.Fatalf("schema nope: exit %d, %s", code, stderr)
	}
}

// TestConvertFrom: convert --from prints a family file that loads; misuse exits 2.
func TestConvertFrom(t *testing.T) {
	in := "../../internal/convert/testdata/zuul/zuul.yaml"
	code, out, stderr := ib(t, "", "convert", "--from", "zuul", in, "--repo-url", "https://{{.Repo}}")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden, _ := os.ReadFile("../../internal/convert/testdata/zuul/family.repo-url.yaml")
	if out != string(golden) {
		t.Errorf("output differs from the golden file:\n%s", out)
	}
	for _, args := range [][]string{
		{"convert", "--from", "kolla", in},
		{"convert", "--from", "zuul", in, in},
		{"convert", "--from", "zuul", in, "--out", t.TempDir()},
		{"convert", "--repo-root", "x", "-f", in},
		{"convert", "--from", "cord", in}, // not CORD's file
	} {
		if code, _, stderr := ib(t, "", args...); code != 2 {
			t.Errorf("%q: exit %d, %s", args, code, stderr)
		}
	}
}
