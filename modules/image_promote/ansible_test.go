package main

// Integration test: the real ansible-playbook (from IMAGEBUILDER_TEST_ANSIBLE_BIN) runs the
// Zuul-style release playbooks (playbooks/stage.yml, promote.yml, sweep.yml) with the
// collection this test builds, against the test environment's BuildKit and htpasswd registry.
// It skips when the environment is not described, and fails instead under
// IMAGEBUILDER_REQUIRE_INTEGRATION=1.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/ansibletest"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestMain removes the collection that ansibletest.Collection builds once for all tests.
func TestMain(m *testing.M) {
	code := m.Run()
	ansibletest.Cleanup()
	os.Exit(code)
}

// tagsOf lists the values of key in a list of facts (each a mapping).
func tagsOf(list any, key string) []string {
	var out []string
	l, _ := list.([]any)
	for _, e := range l {
		m, _ := e.(map[string]any)
		s, _ := m[key].(string)
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// TestPlaybooksRelease: stage.yml builds a small image with a stage tag and the change 42 into
// the htpasswd registry: only the stage tags exist, serving the built digest. promote.yml with the
// same params file and change moves it: latest and 1.0 serve exactly the staged digest and the
// stage tags are gone. sweep.yml, with credentials limited to the test's namespace, deletes the
// matching tag whose image is 10 days old and keeps a recent matching tag, an old tag that does
// not match, and the promoted tags. The registry password (in the params and the credentials)
// appears nowhere in the -vvv output or the results.
func TestPlaybooksRelease(t *testing.T) {
	env := testenv.Require(t, ansibletest.BinEnv, testenv.BuildKit, testenv.AuthRegistry, testenv.AuthUser, testenv.AuthPassword)
	reg, user, pass := env[testenv.AuthRegistry], env[testenv.AuthUser], env[testenv.AuthPassword]
	auth := testenv.Basic(user, pass)
	ns := testenv.UniqueTag("release")
	repo := reg + "/" + ns + "/app"
	digest := func(tag string) string { return testenv.RegistryDigest(t, repo+":"+tag, auth) }

	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{
		"app/Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
		"app/hello.txt":  "hello " + ns + "\n",
		"params.yaml": fmt.Sprintf(`source: {local: {path: %q}}
target:
  images: [{image: %s/app, tag: latest, tags: ["1.0"]}]
  registry: {url: %q, username: %q, password: %q, stage_tag: "change_{{.Vars.change}}_{{.Tag}}", repositories: ["^%s/"]}
builder: {endpoint: %q}
`, filepath.Join(dir, "app"), ns, reg, user, pass, ns, env[testenv.BuildKit]),
	})
	vars := map[string]any{"params_file": filepath.Join(dir, "params.yaml"), "change": 42}
	ansibletest.Collection(t) // built once, outside the timings

	noSecret := func(what, text string) {
		t.Helper()
		if i := strings.Index(text, pass); i >= 0 {
			t.Errorf("the password appears in %s: ...%s...", what, text[max(0, i-200):min(len(text), i+len(pass)+50)])
		}
	}
	play := func(name string, vars map[string]any) map[string]any {
		t.Helper()
		start := time.Now()
		r, res := ansibletest.Playbook(t, name, vars, "-vvv")
		t.Logf("%s: %s", name, time.Since(start).Round(time.Millisecond))
		if r.Code != 0 || res == nil {
			t.Fatalf("%s exited %d\n%s", name, r.Code, r.Out)
		}
		raw, _ := json.Marshal(res)
		noSecret(name+"'s -vvv output", r.Out)
		noSecret(name+"'s result", string(raw))
		return res
	}

	res := play("stage.yml", vars)
	images, _ := res["images"].([]any)
	if len(images) != 1 {
		t.Fatalf("stage.yml: images %v", res["images"])
	}
	img := images[0].(map[string]any)
	built, _ := img["digest"].(string)
	if got := fmt.Sprint(img["stage_tags"]); got != "[change_42_latest change_42_1.0]" {
		t.Errorf("stage tags %s", got)
	}
	if built == "" || digest("change_42_latest") != built || digest("change_42_1.0") != built {
		t.Errorf("the stage tags serve %q and %q, the build made %q", digest("change_42_latest"), digest("change_42_1.0"), built)
	}
	if d := digest("latest"); d != "" {
		t.Errorf("a staged build moved latest to %s", d)
	}

	res = play("promote.yml", vars)
	if res["changed"] != true || digest("latest") != built || digest("1.0") != built {
		t.Errorf("after promote.yml: changed %v, latest %q, 1.0 %q, want the staged %s", res["changed"], digest("latest"), digest("1.0"), built)
	}
	for _, tag := range []string{"change_42_latest", "change_42_1.0"} {
		if d := digest(tag); d != "" {
			t.Errorf("the stage tag %s still serves %s", tag, d)
		}
	}
	if d, _ := res["digests"].(map[string]any); d[repo+":latest"] != built || d[repo+":1.0"] != built {
		t.Errorf("promote.yml's digests: %v", res["digests"])
	}

	now := time.Now().UTC()
	old := now.Add(-10 * 24 * time.Hour)
	withAuth := remote.WithAuth(auth)
	testenv.PushDated(t, repo+":change_1_latest", old, nil, withAuth)
	testenv.PushDated(t, repo+":change_2_latest", now.Add(-time.Hour), nil, withAuth)
	testenv.PushDated(t, repo+":release_0", old, nil, withAuth)
	r, out := ansibletest.Playbook(t, "sweep.yml", map[string]any{
		"sweep_repositories":   []any{repo},
		"sweep_older_than":     "7d",
		"registry_credentials": []any{map[string]any{"registry": reg, "username": user, "password": pass, "repositories": []any{"^" + ns + "/"}}},
	}, "-vvv")
	noSecret("sweep.yml's -vvv output", r.Out)
	if r.Code != 0 {
		t.Fatalf("sweep.yml exited %d\n%s", r.Code, r.Out)
	}
	var results []map[string]any
	data, _ := json.Marshal(out["results"])
	if err := json.Unmarshal(data, &results); err != nil || len(results) != 1 {
		t.Fatalf("sweep.yml's result: %s", data)
	}
	if got := tagsOf(results[0]["deleted"], "tag"); fmt.Sprint(got) != "[change_1_latest]" {
		t.Errorf("deleted %v, want [change_1_latest]", got)
	}
	if got := tagsOf(results[0]["kept"], "tag"); fmt.Sprint(got) != "[1.0 change_2_latest latest release_0]" {
		t.Errorf("kept %v", got)
	}
	if digest("change_1_latest") != "" || digest("change_2_latest") == "" || digest("release_0") == "" || digest("latest") != built {
		t.Errorf("after the sweep: change_1_latest %q (want gone), change_2_latest %q, release_0 %q, latest %q",
			digest("change_1_latest"), digest("change_2_latest"), digest("release_0"), digest("latest"))
	}
}

// TestReleaseExamples: the example variables and params file of the release playbooks are what
// the playbooks expect: build params with a stage tag over .Vars.change, a change, repositories to
// sweep.
func TestReleaseExamples(t *testing.T) {
	root := filepath.Join("..", "..", "playbooks", "examples", "release")
	p, err := params.LoadFile(filepath.Join(root, "params.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Target.Registry.StageTag, "{{.Vars.change}}") {
		t.Errorf("params.yaml's stage_tag %q does not use .Vars.change", p.Target.Registry.StageTag)
	}
	data, err := os.ReadFile(filepath.Join(root, "vars.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var vars struct {
		ParamsFile        string   `json:"params_file"`
		Change            string   `json:"change"`
		SweepRepositories []string `json:"sweep_repositories"`
	}
	if err := yaml.Unmarshal(data, &vars); err != nil {
		t.Fatal(err)
	}
	if vars.ParamsFile != "examples/release/params.yaml" || vars.Change == "" || len(vars.SweepRepositories) == 0 {
		t.Errorf("vars.yml: %+v", vars)
	}
}
