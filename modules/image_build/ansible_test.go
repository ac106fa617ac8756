package main

// Integration tests: the real ansible-playbook (from IMAGEBUILDER_TEST_ANSIBLE_BIN) runs
// playbooks/build.yml with the module binary these tests build, against the test environment's
// BuildKit and registries. They skip when the environment is not described, and fail instead
// under IMAGEBUILDER_REQUIRE_INTEGRATION=1.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/ansible"
	"github.com/imagebuilder/imagebuilder/internal/ansibletest"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

const ansibleBinEnv = ansibletest.BinEnv

// TestMain removes the collection that ansibletest.Collection builds once for all tests.
func TestMain(m *testing.M) {
	code := m.Run()
	ansibletest.Cleanup()
	os.Exit(code)
}

// Shorthands for this package's tests.
var (
	ansibleEnv = ansibletest.Env
	runAnsible = ansibletest.Command
	taskStatus = ansibletest.TaskStatus
)

type playRun = ansibletest.Run

// buildPlaybook runs playbooks/build.yml with the build params inline (as extra vars from a
// file) and returns the run and the registered result (from result_file).
func buildPlaybook(t *testing.T, request map[string]any, args ...string) (playRun, map[string]any) {
	t.Helper()
	return ansibletest.Playbook(t, "build.yml", request, args...)
}

// moduleFile is the binary of the collection built for the tests for this machine.
func moduleFile(t *testing.T) string { return ansibletest.ModuleFile(t, "image_build") }

// gitHTTPServer serves a bare copy of the repository at src over http with git http-backend,
// behind basic auth.
func gitHTTPServer(t *testing.T, src, user, pass string) string {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git http-backend is needed: %v", err)
	}
	root := t.TempDir()
	runGit(t, root, "clone", "-q", "--bare", src, "app.git")
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/app.git"
}

func runGit(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func noCanary(t *testing.T, canary, what, text string) {
	t.Helper()
	if strings.Contains(text, canary) {
		i := strings.Index(text, canary)
		t.Errorf("the canary password appears in %s: ...%s...", what, text[max(0, i-200):min(len(text), i+len(canary)+50)])
	}
}

// TestPlaybookBuild is the main acceptance path: a git source served over http with basic auth
// (the canary password) and a variant, built into the htpasswd registry (the same password);
// the registered digests are the registry's; the same play again changes nothing; --check on a
// new tag changes nothing and says it would; the password is never in the -vvv output or the
// registered result.
func TestPlaybookBuild(t *testing.T) {
	env := testenv.Require(t, ansibleBinEnv, testenv.BuildKit, testenv.AuthRegistry, testenv.AuthUser, testenv.AuthPassword,
		"IMAGEBUILDER_TEST_AUTH_BASE", "IMAGEBUILDER_TEST_AUTH_BASE_ALT")
	reg, user, canary := env[testenv.AuthRegistry], env[testenv.AuthUser], env[testenv.AuthPassword]
	repo := testenv.GitRepo(t, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s\nCOPY hello.txt /hello.txt\nRUN cat /etc/imagebuilder-base > /built-from\n", env["IMAGEBUILDER_TEST_AUTH_BASE"]),
		"hello.txt":  "hello from ansible\n",
	})
	url := gitHTTPServer(t, repo, "git-user", canary)
	tag := testenv.UniqueTag("play")
	request := func(tag string) map[string]any {
		return map[string]any{
			"source": map[string]any{"git_repo": map[string]any{"url": url, "version": "main", "username": "git-user", "password": canary}},
			"target": map[string]any{
				"images": []any{
					map[string]any{"image": "ansible/app", "tag": tag},
					map[string]any{"image": "ansible/app", "tag": tag + "-alt", "base": env["IMAGEBUILDER_TEST_AUTH_BASE_ALT"]},
				},
				"registry": map[string]any{"url": reg, "username": user, "password": canary},
			},
			"builder": map[string]any{"endpoint": env[testenv.BuildKit]},
		}
	}

	r, res := buildPlaybook(t, request(tag), "-vvv")
	if r.Code != 0 || res == nil {
		t.Fatalf("ansible-playbook exited %d\n%s", r.Code, r.Out)
	}
	if !strings.Contains(r.Out, "Using module file") {
		t.Error("-vvv does not say which module file ran")
	}
	noCanary(t, canary, "the -vvv output", r.Out)
	raw, _ := json.Marshal(res)
	noCanary(t, canary, "the registered result", string(raw))
	if got := taskStatus(t, r.Out, "Build and push the images"); got != "changed" {
		t.Errorf("first run: task %s, want changed", got)
	}
	images, _ := res["images"].([]any)
	if res["changed"] != true || res["failed"] != false || len(images) != 2 {
		t.Fatalf("registered result: %s", raw)
	}
	src, _ := res["source"].(map[string]any)
	if commit, _ := src["commit"].(string); len(commit) != 40 || src["url"] != url {
		t.Errorf("source: %v", src)
	}
	digests, _ := res["digests"].(map[string]any)
	for _, ref := range []string{reg + "/ansible/app:" + tag, reg + "/ansible/app:" + tag + "-alt"} {
		got := testenv.RegistryDigest(t, ref, testenv.Basic(user, canary))
		if got == "" || digests[ref] != got {
			t.Errorf("%s: registered digest %v, registry serves %q", ref, digests[ref], got)
		}
	}
	if digests[reg+"/ansible/app:"+tag] == digests[reg+"/ansible/app:"+tag+"-alt"] {
		t.Error("the variant has the same digest as the image")
	}
	if alt, _ := images[1].(map[string]any); alt["base"] == nil {
		t.Errorf("the variant does not report its base: %v", alt)
	}
	if !strings.Contains(r.Out, reg+"/ansible/app:"+tag+" sha256:") {
		t.Errorf("the playbook does not print the reference and digest:\n%s", r.Out)
	}

	t.Run("again", func(t *testing.T) {
		r2, res2 := buildPlaybook(t, request(tag))
		if r2.Code != 0 || res2 == nil {
			t.Fatalf("ansible-playbook exited %d\n%s", r2.Code, r2.Out)
		}
		if got := taskStatus(t, r2.Out, "Build and push the images"); got != "ok" || res2["changed"] != false {
			t.Errorf("same play again: task %s, changed %v, want ok / false\n%s", got, res2["changed"], r2.Out)
		}
		if d2, _ := res2["digests"].(map[string]any); fmt.Sprint(d2) != fmt.Sprint(digests) {
			t.Errorf("digests moved: %v -> %v", digests, d2)
		}
	})

	t.Run("check mode on the built tags", func(t *testing.T) {
		r5, res5 := buildPlaybook(t, request(tag), "--check")
		if r5.Code != 0 || res5 == nil {
			t.Fatalf("ansible-playbook exited %d\n%s", r5.Code, r5.Out)
		}
		if got := taskStatus(t, r5.Out, "Build and push the images"); got != "ok" || res5["changed"] != false || res5["dry_run"] != true {
			t.Errorf("check mode on an unchanged request: task %s, result %v", got, res5)
		}
	})

	t.Run("check mode on a new tag", func(t *testing.T) {
		newTag := testenv.UniqueTag("check")
		r3, res3 := buildPlaybook(t, request(newTag), "--check", "--diff", "-vvv")
		if r3.Code != 0 || res3 == nil {
			t.Fatalf("ansible-playbook exited %d\n%s", r3.Code, r3.Out)
		}
		noCanary(t, canary, "the -vvv output in check mode", r3.Out)
		if got := taskStatus(t, r3.Out, "Build and push the images"); got != "changed" || res3["changed"] != true || res3["dry_run"] != true {
			t.Errorf("check mode: task %s, result %v", got, res3)
		}
		for _, ref := range []string{reg + "/ansible/app:" + newTag, reg + "/ansible/app:" + newTag + "-alt"} {
			if d := testenv.RegistryDigest(t, ref, testenv.Basic(user, canary)); d != "" {
				t.Errorf("check mode pushed %s (%s)", ref, d)
			}
		}
		if !strings.Contains(r3.Out, "+++ after: registry") {
			t.Errorf("--diff shows no diff:\n%s", r3.Out)
		}
	})

	t.Run("wrong registry password", func(t *testing.T) {
		req := request(testenv.UniqueTag("wrong"))
		req["target"].(map[string]any)["registry"].(map[string]any)["password"] = "wrong-" + canary
		r4, res4 := buildPlaybook(t, req, "--check", "-vvv")
		if r4.Code == 0 || res4 != nil {
			t.Fatalf("a wrong password did not fail the play (exit %d)\n%s", r4.Code, r4.Out)
		}
		noCanary(t, canary, "the output of a failed run", r4.Out)
		if !regexp.MustCompile(`(?i)unauthorized|denied|401`).MatchString(r4.Out) {
			t.Errorf("the failure does not say the credentials were refused:\n%s", r4.Out)
		}
	})
}

// TestPlaybookParamsFile: build.yml reads the build params from a YAML file (what
// `imagebuilder build -f` reads); in check mode, nothing is pushed.
func TestPlaybookParamsFile(t *testing.T) {
	env := testenv.Require(t, ansibleBinEnv, testenv.BuildKit, testenv.Registry, testenv.Base)
	repo := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + env[testenv.Base] + "\n"})
	tag := testenv.UniqueTag("file")
	paramsFile := filepath.Join(t.TempDir(), "params.yaml")
	doc := fmt.Sprintf("source:\n  git_repo:\n    url: file://%s\n    version: main\ntarget:\n  images:\n    - image: ansible/file\n      tag: %s\n  registry:\n    url: %s\nbuilder:\n  endpoint: %s\n",
		repo, tag, env[testenv.Registry], env[testenv.BuildKit])
	if err := os.WriteFile(paramsFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r, res := buildPlaybook(t, map[string]any{"params_file": paramsFile}, "--check")
	if r.Code != 0 || res == nil {
		t.Fatalf("exit %d\n%s", r.Code, r.Out)
	}
	images, _ := res["images"].([]any)
	if res["dry_run"] != true || res["changed"] != true || len(images) != 1 || images[0].(map[string]any)["tag"] != tag {
		t.Errorf("result: %v", res)
	}
	if !strings.Contains(r.Out, env[testenv.Registry]+"/ansible/file:"+tag+" (check mode: not built) changed") {
		t.Errorf("the playbook does not print the reference:\n%s", r.Out)
	}
	if d := testenv.RegistryDigest(t, env[testenv.Registry]+"/ansible/file:"+tag, testenv.Basic("", "")); d != "" {
		t.Errorf("check mode pushed %s", d)
	}
}

// TestPlaybookBadOptions: invalid options fail the task with the schema's message naming the
// field, before anything starts: neither the builder nor the registry sees a connection.
func TestPlaybookBadOptions(t *testing.T) {
	testenv.Require(t, ansibleBinEnv)
	var builderConns atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			builderConns.Add(1)
			c.Close()
		}
	}()
	var registryRequests atomic.Int32
	regSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		registryRequests.Add(1)
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(regSrv.Close)
	regHost := strings.TrimPrefix(regSrv.URL, "http://")

	valid := func() map[string]any {
		return map[string]any{
			"source": map[string]any{"git_repo": map[string]any{"url": "https://git.invalid/app.git"}},
			"target": map[string]any{
				"images":   []any{map[string]any{"image": "app", "tag": "v1"}},
				"registry": map[string]any{"url": regHost},
			},
			"builder": map[string]any{"endpoint": "tcp://" + ln.Addr().String()},
		}
	}
	image := func(r map[string]any) map[string]any {
		return r["target"].(map[string]any)["images"].([]any)[0].(map[string]any)
	}
	for _, tt := range []struct {
		name   string
		modify func(r map[string]any)
		want   string
	}{
		{"unknown option", func(r map[string]any) { image(r)["platfroms"] = []any{"linux/amd64"} },
			`/target/images/0: unknown property \"platfroms\" (did you mean \"platforms\"?)`},
		{"both sources", func(r map[string]any) {
			r["source"].(map[string]any)["local"] = map[string]any{"path": "/tmp"}
		}, "/source: git_repo and local cannot be combined"},
		{"missing tag", func(r map[string]any) { delete(image(r), "tag") }, "/target/images/0: missing property 'tag'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := valid()
			tt.modify(req)
			r, _ := buildPlaybook(t, req)
			if r.Code == 0 {
				t.Fatalf("the play succeeded\n%s", r.Out)
			}
			if got := taskStatus(t, r.Out, "Build and push the images"); got != "fatal" {
				t.Errorf("task status %s, want fatal", got)
			}
			if !strings.Contains(r.Out, tt.want) {
				t.Errorf("the failure does not say %s:\n%s", tt.want, r.Out)
			}
			for _, bad := range []string{"panic", "goroutine", "MODULE FAILURE", "deserialization"} {
				if strings.Contains(r.Out, bad) {
					t.Errorf("output contains %q:\n%s", bad, r.Out)
				}
			}
		})
	}
	if n, m := builderConns.Load(), registryRequests.Load(); n != 0 || m != 0 {
		t.Errorf("invalid options reached the builder (%d connections) or the registry (%d requests)", n, m)
	}
}

// TestAnsibleDoc: ansible-doc lists the collection's module with its description (and no
// per-platform binary as a module), renders its generated documentation, and its JSON form has
// the schema's options; `make modules`' sidecar renders beside a binary in a library directory.
func TestAnsibleDoc(t *testing.T) {
	testenv.Require(t, ansibleBinEnv)
	r := runAnsible(t, ansibleEnv(t), "ansible-doc", "-t", "module", "-l", "imagebuilder.images")
	if r.Code != 0 || !regexp.MustCompile(`(?m)^imagebuilder\.images\.image_build\s+Build container images`).MatchString(r.Out) {
		t.Errorf("ansible-doc -l does not list image_build with its description (exit %d):\n%s", r.Code, r.Out)
	}
	if strings.Contains(r.Out, "linux_") || strings.Contains(r.Out, "WARNING") {
		t.Errorf("ansible-doc -l lists a binary or warns:\n%s", r.Out)
	}
	r = runAnsible(t, ansibleEnv(t), "ansible-doc", "imagebuilder.images.image_build")
	if r.Code != 0 {
		t.Fatalf("ansible-doc exited %d\n%s", r.Code, r.Out)
	}
	for _, want := range []string{"MODULE imagebuilder.images.image_build", "OPTIONS", "git_repo", "ATTRIBUTES", "idempotent",
		"RETURN VALUES", "digests", "community.docker.docker_image_build", "imagebuilder authors (@imagebuilder)"} {
		if !strings.Contains(r.Out, want) {
			t.Errorf("ansible-doc output lacks %q", want)
		}
	}
	if strings.Contains(r.Out, "WARNING") || strings.Contains(r.Out, "ERROR") {
		t.Errorf("ansible-doc complains:\n%s", r.Out)
	}
	r = runAnsible(t, ansibleEnv(t), "ansible-doc", "-j", "imagebuilder.images.image_build")
	var doc map[string]struct {
		Doc struct {
			Options map[string]any `json:"options"`
		} `json:"doc"`
	}
	if err := json.Unmarshal([]byte(r.Out), &doc); err != nil {
		t.Fatalf("ansible-doc -j: %v\n%s", err, r.Out)
	}
	opts := doc["imagebuilder.images.image_build"].Doc.Options
	if len(opts) != 6 || opts["source"] == nil || opts["target"] == nil || opts["builder"] == nil || opts["secrets"] == nil || opts["ssh"] == nil || opts["vars"] == nil {
		t.Errorf("ansible-doc -j options: %v", opts)
	}

	// The sidecar of `make modules` (a library directory: TOSCA's playbooks use one).
	lib := t.TempDir()
	m, err := ansible.LoadModuleDoc("image_build", "../../schema/build-params.schema.json", "docs.yml", "options.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	side, err := m.Sidecar()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(moduleFile(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lib, "image_build.yml"), side, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lib, "image_build"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	r = runAnsible(t, ansibleEnv(t), "ansible-doc", "-M", lib, "image_build")
	if r.Code != 0 || !strings.Contains(r.Out, "MODULE image_build") || !strings.Contains(r.Out, "RETURN VALUES") {
		t.Errorf("ansible-doc of the sidecar (exit %d):\n%s", r.Code, r.Out)
	}
}

// TestExamplePlaybooks runs the example playbooks (localhost and delegate_to) against the test
// environment.
func TestExamplePlaybooks(t *testing.T) {
	env := testenv.Require(t, ansibleBinEnv, testenv.BuildKit, testenv.Registry, testenv.BaseAlt)
	reg := env[testenv.Registry]
	for _, tt := range []struct{ playbook, task string }{
		{"examples/localhost.yml", "Build examples/demo/app in two variants"},
		{"examples/delegate.yml", "Build and push on the build host"},
	} {
		t.Run(filepath.Base(tt.playbook), func(t *testing.T) {
			tag := testenv.UniqueTag("example")
			r := runAnsible(t, ansibleEnv(t), "ansible-playbook", tt.playbook, "-e", "tag="+tag, "-e", "registry="+reg,
				"-e", "builder_endpoint="+env[testenv.BuildKit], "-vvv")
			if r.Code != 0 {
				t.Fatalf("exit %d\n%s", r.Code, r.Out)
			}
			if got := taskStatus(t, r.Out, tt.task); got != "changed" {
				t.Errorf("task %s, want changed", got)
			}
			m := regexp.MustCompile(regexp.QuoteMeta(reg) + `/demo/hello(?::` + tag + `"?:|@) ?"?(sha256:[0-9a-f]{64})`).FindStringSubmatch(r.Out)
			if m == nil {
				t.Fatalf("no digest printed:\n%s", r.Out)
			}
			if got := testenv.RegistryDigest(t, reg+"/demo/hello:"+tag, testenv.Basic("", "")); got != m[1] {
				t.Errorf("printed digest %s, registry serves %s", m[1], got)
			}
		})
	}
}
