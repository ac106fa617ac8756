package main

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/ansibletest"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestGeneratedDocsUpToDate fails when collection/plugins/modules/image_manifest.py (generated
// from options.schema.json and docs.yml) is stale: run `make schema`.
func TestGeneratedDocsUpToDate(t *testing.T) {
	ansibletest.GeneratedDocsUpToDate(t, "image_manifest", "options.schema.json")
}

// TestOptions: the schema's options are exactly the fields options decodes, and the
// credentials options are image_promote's, word for word but the description of the list.
func TestOptions(t *testing.T) {
	var fields []string
	for f := range reflect.TypeFor[options]().Fields() {
		fields = append(fields, strings.Split(f.Tag.Get("json"), ",")[0])
	}
	slices.Sort(fields)
	if names := module().Spec.Names(); !slices.Equal(names, fields) {
		t.Errorf("options.schema.json declares %v, options decodes %v", names, fields)
	}
	promote, err := os.ReadFile("../image_promote/options.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	type schemaDoc struct {
		Defs map[string]struct {
			Properties map[string]map[string]any `json:"properties"`
		} `json:"$defs"`
	}
	var mine, theirs schemaDoc
	if err := json.Unmarshal(optionsSchema, &mine); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(promote, &theirs); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(mine.Defs["Credentials"], theirs.Defs["Credentials"]) {
		t.Errorf("$defs/Credentials differs from image_promote's")
	}
	m, p := mine.Defs["ManifestOptions"].Properties, theirs.Defs["PromoteOptions"].Properties
	if !reflect.DeepEqual(m["credentials_file"], p["credentials_file"]) || m["credentials"]["items"] == nil || !reflect.DeepEqual(m["credentials"]["items"], p["credentials"]["items"]) {
		t.Errorf("credentials or credentials_file differ from image_promote's")
	}
}

// TestReturnDocumented: RETURN documents the facts; manifests and failure with exactly the
// fields of their result types.
func TestReturnDocumented(t *testing.T) {
	ret := ansibletest.ReturnDoc(t, "docs.yml")
	ansibletest.SameKeys(t, "manifests", ret["manifests"].Contains, reflect.TypeFor[result.IndexChild]())
	ansibletest.SameKeys(t, "failure", ret["failure"].Contains, reflect.TypeFor[result.Failure]())
	for _, key := range []string{"ref", "digest", "media_type", "previous", "dry_run", "validation_errors"} {
		if ret[key].Returned == "" {
			t.Errorf("RETURN does not document %s", key)
		}
	}
}

func serve(t *testing.T, args map[string]any, check bool) (map[string]any, string) {
	t.Helper()
	return ansibletest.Serve(t, module(), args, check)
}

const canary = "canary-manifest-Pw-c0de"

// TestInvalidOptions: each problem is named by its pointer; the password never shows.
func TestInvalidOptions(t *testing.T) {
	creds := []any{map[string]any{"registry": "127.0.0.1:1", "username": "u", "password": canary}}
	for _, tt := range []struct {
		args    map[string]any
		pointer string
	}{
		{map[string]any{"from": []any{"127.0.0.1:1/a:amd64"}, "credentials": creds}, ""},
		{map[string]any{"ref": "127.0.0.1:1/a", "from": []any{"127.0.0.1:1/a:amd64"}, "credentials": creds}, "/ref"},
		{map[string]any{"ref": "127.0.0.1:1/a:1", "from": []any{}}, "/from"},
		{map[string]any{"ref": "127.0.0.1:1/a:1", "from": []any{"x"}, "attestations": "maybe"}, "/attestations"},
		{map[string]any{"ref": "127.0.0.1:1/a:1", "from": []any{"x"}, "credentials": []any{map[string]any{"registry": "r", "username": "u"}}}, "/credentials"},
	} {
		doc, text := serve(t, tt.args, false)
		if strings.Contains(text, canary) {
			t.Errorf("the password appears in %s", text)
		}
		errs, _ := doc["validation_errors"].([]any)
		found := false
		for _, e := range errs {
			p, _ := e.(map[string]any)["pointer"].(string)
			found = found || strings.HasPrefix(p, tt.pointer)
		}
		if doc["failed"] != true || !found {
			t.Errorf("%v: want a validation error at %s, got %s", tt.args, tt.pointer, text)
		}
	}
}

// TestManifest: an index from an amd64 and an arm64 image pushed separately, against the real
// registry: check mode computes it and writes nothing; the run writes that digest with both
// platforms as children; the same task again changes nothing; a platform given twice fails
// naming both sources.
func TestManifest(t *testing.T) {
	reg := testenv.Require(t, testenv.Registry)[testenv.Registry]
	repo := reg + "/" + testenv.UniqueTag("manifest-module") + "/app"
	amd := testenv.PushPlatform(t, repo+":1.0-amd64", "linux/amd64")
	arm := testenv.PushPlatform(t, repo+":1.0-arm64", "linux/arm64")
	args := map[string]any{"ref": repo + ":1.0", "from": []any{repo + ":1.0-amd64", repo + ":1.0-arm64"}}

	doc, text := serve(t, args, true)
	want, _ := doc["digest"].(string)
	if doc["failed"] == true || doc["changed"] != true || doc["dry_run"] != true || want == "" {
		t.Fatalf("check mode: %s", text)
	}
	if got := testenv.RegistryDigest(t, repo+":1.0", nil); got != "" {
		t.Fatalf("check mode wrote %s", got)
	}
	doc, text = serve(t, args, false)
	if doc["failed"] == true || doc["changed"] != true || doc["digest"] != want {
		t.Fatalf("run: %s (check mode computed %s)", text, want)
	}
	if got := testenv.RegistryDigest(t, repo+":1.0", nil); got != want {
		t.Errorf("the registry serves %s, the module says %s", got, want)
	}
	children := map[string]string{}
	for _, c := range doc["manifests"].([]any) {
		m := c.(map[string]any)
		children[m["platform"].(string)] = m["digest"].(string)
	}
	if children["linux/amd64"] != amd || children["linux/arm64"] != arm || len(children) != 2 {
		t.Errorf("children %v, want amd64 %s and arm64 %s", children, amd, arm)
	}
	doc, text = serve(t, args, false)
	if doc["failed"] == true || doc["changed"] != false {
		t.Errorf("the same task again: %s", text)
	}
	args["from"] = []any{repo + ":1.0-amd64", repo + ":1.0-amd64"}
	doc, text = serve(t, args, false)
	if doc["failed"] != true || doc["failure"] == nil || !strings.Contains(doc["msg"].(string), "linux/amd64") {
		t.Errorf("a platform twice: %s", text)
	}
}
