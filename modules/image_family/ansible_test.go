package main

// Integration tests: the real ansible-playbook (from IMAGEBUILDER_TEST_ANSIBLE_BIN) runs
// playbooks/family.yml with the collection these tests build, against the test environment's
// BuildKit and htpasswd registry. They skip when the environment is not described, and fail
// instead under IMAGEBUILDER_REQUIRE_INTEGRATION=1.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/ansibletest"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestMain removes the collection that ansibletest.Collection builds once for all tests.
func TestMain(m *testing.M) {
	code := m.Run()
	ansibletest.Cleanup()
	os.Exit(code)
}

const authBaseEnv = "IMAGEBUILDER_TEST_AUTH_BASE" // base image on the htpasswd registry

const buildTask = "Build and push the family"

// writeFamily writes a family of three images under dir (images_dir: base; app FROM base;
// tool FROM base, copying from app) pushed to reg/ns with the registry's credentials, built on
// endpoint, with a build secret base reads; it returns the family file.
func writeFamily(t *testing.T, dir, reg, ns, base, user, pass, secret, endpoint string) string {
	t.Helper()
	files := map[string]string{
		"images/base/Dockerfile": "FROM " + base + "\nCOPY base.txt /base.txt\nRUN --mount=type=secret,id=tok test -s /run/secrets/tok\n",
		"images/base/base.txt":   "base\n",
		"images/app/Dockerfile":  fmt.Sprintf("FROM %s/%s/base:latest\nCOPY app.txt /app.txt\n", reg, ns),
		"images/app/app.txt":     "app v1\n",
		"images/tool/Dockerfile": fmt.Sprintf("FROM %s/%s/base:latest\nCOPY --from=%s/%s/app:latest /app.txt /tool-app.txt\n", reg, ns, reg, ns),
		"family.yaml": fmt.Sprintf(`registry: {url: %q, username: %q, password: %q}
namespace: %s
tags: [candidate]
secrets: {tok: {value: %q}}
builder: {endpoint: %q}
images_dir: images
`, reg, user, pass, ns, secret, endpoint),
	}
	testenv.WriteFiles(t, dir, files)
	return filepath.Join(dir, "family.yaml")
}

func noSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if i := strings.Index(text, s); i >= 0 {
			t.Errorf("a secret appears in %s: ...%s...", what, text[max(0, i-200):min(len(text), i+len(s)+50)])
		}
	}
}

// decisions maps each image of a registered result to its decision.
func decisions(res map[string]any) map[string]string {
	out := map[string]string{}
	images, _ := res["images"].([]any)
	for _, img := range images {
		m, _ := img.(map[string]any)
		name, _ := m["name"].(string)
		out[name], _ = m["decision"].(string)
	}
	return out
}

// TestPlaybookFamily: playbooks/family.yml builds a family file of three images into the
// htpasswd registry (the registry password and a build secret are the canaries): parents
// first, each child FROM its parent's digest, registered digests equal the registry's; the same
// play again is ok with every image skipped; check mode after a change in one image's context
// returns the plan (that image and its descendant build, the rest skip) and pushes nothing;
// invalid options fail naming the field. No secret appears in the -vvv output or the result.
func TestPlaybookFamily(t *testing.T) {
	env := testenv.Require(t, ansibletest.BinEnv, testenv.BuildKit, testenv.AuthRegistry, testenv.AuthUser, testenv.AuthPassword, authBaseEnv)
	reg, user, pass := env[testenv.AuthRegistry], env[testenv.AuthUser], env[testenv.AuthPassword]
	secret := fmt.Sprintf("family-secret-canary-%d", time.Now().UnixNano())
	ns := fmt.Sprintf("ansible-family-%d", time.Now().UnixNano())
	dir := t.TempDir()
	file := writeFamily(t, dir, reg, ns, env[authBaseEnv], user, pass, secret, env[testenv.BuildKit])
	auth := testenv.Basic(user, pass)
	ref := func(name, tag string) string { return reg + "/" + ns + "/" + name + ":" + tag }
	// jobs as a string, as -e jobs=2 gives it (the playbook converts it).
	vars := map[string]any{"family_file": file, "jobs": "2"}
	ansibletest.Collection(t) // built once, outside the timings

	start := time.Now()
	r, res := ansibletest.Playbook(t, "family.yml", vars, "-vvv")
	t.Logf("build of 3 images: %s", time.Since(start).Round(time.Millisecond))
	if r.Code != 0 || res == nil {
		t.Fatalf("ansible-playbook exited %d\n%s", r.Code, r.Out)
	}
	raw, _ := json.Marshal(res)
	noSecret(t, "the -vvv output", r.Out, pass, secret)
	noSecret(t, "the registered result", string(raw), pass, secret)
	if got := ansibletest.TaskStatus(t, r.Out, buildTask); got != "changed" || res["changed"] != true || res["dry_run"] != false {
		t.Errorf("first run: task %s, result %s", got, raw)
	}
	if d := decisions(res); len(d) != 4 || d["base"] != "build" || d["app"] != "build" || d["tool"] != "build" || d[env[authBaseEnv]] != "pull" {
		t.Errorf("decisions %v, want three builds and the external base pulled", d)
	}
	if tot, _ := res["totals"].(map[string]any); tot["build"] != 3.0 || tot["pull"] != 1.0 {
		t.Errorf("totals: %v", res["totals"])
	}
	digests, _ := res["digests"].(map[string]any)
	if len(digests) != 6 {
		t.Errorf("digests: %v, want 3 images x 2 tags", digests)
	}
	for _, name := range []string{"base", "app", "tool"} {
		for _, tag := range []string{"latest", "candidate"} {
			if got := testenv.RegistryDigest(t, ref(name, tag), auth); got == "" || digests[ref(name, tag)] != got {
				t.Errorf("%s: registered digest %v, registry serves %q", ref(name, tag), digests[ref(name, tag)], got)
			}
		}
	}
	// Parents first, and each child built FROM its parent's digest.
	images, _ := res["images"].([]any)
	if len(images) == 4 {
		first, _ := images[0].(map[string]any)
		if first["name"] != "base" {
			t.Errorf("the first image is %v, want base (the parent)", first["name"])
		}
		for _, img := range images[1:3] {
			m := img.(map[string]any)
			parents, _ := m["parents"].([]any)
			found := false
			for _, p := range parents {
				pm := p.(map[string]any)
				if pm["name"] == "base" {
					found = pm["digest"] == digests[ref("base", "latest")]
				}
			}
			if !found {
				t.Errorf("%v: parents %v, want base at %v", m["name"], parents, digests[ref("base", "latest")])
			}
		}
	}
	if !regexp.MustCompile(regexp.QuoteMeta(ref("app", "latest")) + ` build sha256:[0-9a-f]{64}`).MatchString(r.Out) {
		t.Errorf("the playbook does not print the image, its decision and digest:\n%s", r.Out)
	}

	t.Run("again", func(t *testing.T) {
		r, res := ansibletest.Playbook(t, "family.yml", vars)
		if r.Code != 0 || res == nil {
			t.Fatalf("ansible-playbook exited %d\n%s", r.Code, r.Out)
		}
		if got := ansibletest.TaskStatus(t, r.Out, buildTask); got != "ok" || res["changed"] != false {
			t.Errorf("same play again: task %s, changed %v, want ok / false", got, res["changed"])
		}
		if d := decisions(res); len(d) != 4 || d["base"] != "skip" || d["app"] != "skip" || d["tool"] != "skip" {
			t.Errorf("decisions %v, want every family image skip", d)
		}
		if d2, _ := res["digests"].(map[string]any); fmt.Sprint(d2) != fmt.Sprint(digests) {
			t.Errorf("digests moved: %v -> %v", digests, d2)
		}
	})

	t.Run("check mode after a change", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "images", "app", "app.txt"), []byte("app v2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r, res := ansibletest.Playbook(t, "family.yml", vars, "--check", "--diff", "-vvv")
		if r.Code != 0 || res == nil {
			t.Fatalf("ansible-playbook exited %d\n%s", r.Code, r.Out)
		}
		noSecret(t, "the -vvv output in check mode", r.Out, pass, secret)
		if got := ansibletest.TaskStatus(t, r.Out, buildTask); got != "changed" || res["changed"] != true || res["dry_run"] != true {
			t.Errorf("check mode: task %s, changed %v, dry_run %v", got, res["changed"], res["dry_run"])
		}
		if d := decisions(res); d["base"] != "skip" || d["app"] != "build" || d["tool"] != "build" {
			t.Errorf("plan %v, want base skip, app and its descendant tool build", d)
		}
		for _, name := range []string{"app", "tool"} {
			if got := testenv.RegistryDigest(t, ref(name, "latest"), auth); got != digests[ref(name, "latest")] {
				t.Errorf("check mode moved %s: %s -> %s", ref(name, "latest"), digests[ref(name, "latest")], got)
			}
		}
		if !strings.Contains(r.Out, "+++ after: registry") {
			t.Errorf("--diff shows no diff:\n%s", r.Out)
		}
	})

	t.Run("invalid options", func(t *testing.T) {
		bad := map[string]any{"family": map[string]any{
			"registry": map[string]any{"url": reg, "username": user, "password": pass},
			"images":   []any{map[string]any{"name": "app", "platfroms": []any{"linux/amd64"}}},
		}, "jobs": 0}
		r, res := ansibletest.Playbook(t, "family.yml", bad)
		if r.Code == 0 || res != nil {
			t.Fatalf("the play succeeded\n%s", r.Out)
		}
		if got := ansibletest.TaskStatus(t, r.Out, buildTask); got != "fatal" {
			t.Errorf("task status %s, want fatal", got)
		}
		for _, want := range []string{`/images/0: unknown property \"platfroms\" (did you mean \"platforms\"?)`, "/jobs: minimum: got 0, want 1"} {
			if !strings.Contains(r.Out, want) {
				t.Errorf("the failure does not say %s:\n%s", want, r.Out)
			}
		}
		noSecret(t, "the output of invalid options", r.Out, pass)
	})
}

// TestAnsibleDoc: ansible-doc lists image_family with its description and renders its
// generated documentation, with the family file's keys and the run options.
func TestAnsibleDoc(t *testing.T) {
	testenv.Require(t, ansibletest.BinEnv)
	env := ansibletest.Env(t)
	r := ansibletest.Command(t, env, "ansible-doc", "-t", "module", "-l", "imagebuilder.images")
	if r.Code != 0 || !regexp.MustCompile(`(?m)^imagebuilder\.images\.image_family\s+Build a family`).MatchString(r.Out) {
		t.Errorf("ansible-doc -l does not list image_family with its description (exit %d):\n%s", r.Code, r.Out)
	}
	r = ansibletest.Command(t, env, "ansible-doc", "-j", "imagebuilder.images.image_family")
	var doc map[string]struct {
		Doc struct {
			Options map[string]any `json:"options"`
		} `json:"doc"`
		Return map[string]any `json:"return"`
	}
	if err := json.Unmarshal([]byte(r.Out), &doc); err != nil {
		t.Fatalf("ansible-doc -j: %v\n%s", err, r.Out)
	}
	d := doc["imagebuilder.images.image_family"]
	for _, name := range []string{"registry", "sources", "images", "images_dir", "select", "keep_going", "jobs", "vars", "dir"} {
		if d.Doc.Options[name] == nil {
			t.Errorf("ansible-doc -j: no option %s", name)
		}
	}
	for _, name := range []string{"images", "failures", "totals", "digests"} {
		if d.Return[name] == nil {
			t.Errorf("ansible-doc -j: no return value %s", name)
		}
	}
}
