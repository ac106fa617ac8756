// Package ansibletest runs the collection's modules the way users do, for the modules' tests:
// it builds the imagebuilder.images collection with scripts/build-collection.sh (once per test
// process) and runs the test environment's real ansible-playbook, ansible-doc and ansible-galaxy
// (IMAGEBUILDER_TEST_ANSIBLE_BIN) on it. Tests that use it skip (or fail, under
// IMAGEBUILDER_REQUIRE_INTEGRATION=1) when that variable is missing, through internal/testenv.
package ansibletest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/ansible"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// BinEnv names the directory holding the test environment's ansible commands.
const BinEnv = "IMAGEBUILDER_TEST_ANSIBLE_BIN"

var coll struct {
	once  sync.Once
	out   string // scripts/build-collection.sh's output directory
	stage string // the staged collection
	err   error

	tarOnce sync.Once
	tarball string
	tarErr  error
}

// Cleanup removes the collection that Collection built; call it from TestMain after m.Run.
func Cleanup() {
	if coll.out != "" {
		os.RemoveAll(coll.out)
	}
}

// RepoRoot is the repository's root directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("locating the repository")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Collection builds the imagebuilder.images collection with scripts/build-collection.sh
// --stage-only, once per test process, and returns the collections path that holds it staged
// (ansible_collections/imagebuilder/images).
func Collection(t testing.TB) string {
	t.Helper()
	bin := testenv.Require(t, BinEnv)[BinEnv]
	root := RepoRoot(t)
	coll.once.Do(func() {
		dir, err := os.MkdirTemp("", "imagebuilder-collection")
		if err != nil {
			coll.err = err
			return
		}
		coll.out = dir
		cmd := exec.Command(filepath.Join(root, "scripts", "build-collection.sh"), "--stage-only", dir)
		cmd.Env = append(os.Environ(), "ANSIBLE_GALAXY="+filepath.Join(bin, "ansible-galaxy"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			coll.err = fmt.Errorf("build-collection.sh: %v\n%s", err, stderr.String())
			return
		}
		coll.stage = strings.TrimSpace(string(out))
	})
	if coll.err != nil {
		t.Fatal(coll.err)
	}
	return filepath.Join(coll.out, "collection")
}

// Tarball builds the collection's tarball from the staged collection with ansible-galaxy
// collection build, as scripts/build-collection.sh does without --stage-only, once per test
// process, and returns its path.
func Tarball(t testing.TB) string {
	t.Helper()
	bin := testenv.Require(t, BinEnv)[BinEnv]
	Collection(t)
	coll.tarOnce.Do(func() {
		out, err := exec.Command(filepath.Join(bin, "ansible-galaxy"), "collection", "build", "--force", "--output-path", coll.out, coll.stage).CombinedOutput()
		if err != nil {
			coll.tarErr = fmt.Errorf("ansible-galaxy collection build: %v\n%s", err, out)
			return
		}
		files, _ := filepath.Glob(filepath.Join(coll.out, "imagebuilder-images-*.tar.gz"))
		if len(files) != 1 {
			coll.tarErr = fmt.Errorf("ansible-galaxy collection build made %v\n%s", files, out)
			return
		}
		coll.tarball = files[0]
	})
	if coll.tarErr != nil {
		t.Fatal(coll.tarErr)
	}
	return coll.tarball
}

// ModuleFile is the binary of module for linux/amd64 in the collection Collection built.
func ModuleFile(t testing.TB, module string) string {
	return filepath.Join(Collection(t), "ansible_collections", "imagebuilder", "images", "binaries", "linux_amd64", module)
}

// Run is the outcome of one ansible command.
type Run struct {
	Out  string // stdout and stderr
	Code int
}

// Env is the environment of every ansible command: the playbooks' ansible.cfg, the collection
// built by the test, temporary directories of the test's own, no colours; then extra.
func Env(t testing.TB, extra ...string) []string {
	t.Helper()
	bin := testenv.Require(t, BinEnv)[BinEnv]
	colls := Collection(t)
	tmp := t.TempDir()
	env := append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"ANSIBLE_CONFIG="+filepath.Join(RepoRoot(t), "playbooks", "ansible.cfg"),
		"ANSIBLE_COLLECTIONS_PATH="+colls,
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(tmp, "local"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(tmp, "remote"),
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_STDOUT_CALLBACK=default",
		"ANSIBLE_DISPLAY_ARGS_TO_STDOUT=0",
	)
	return append(env, extra...)
}

// usingModule is what the action plugin says at -vvv about the binary it ran.
var usingModule = regexp.MustCompile(`(?m)^Using module file (\S*/binaries/\S+)$`)

// Command runs one of the ansible commands in playbooks/. ansible-playbook gets a module cache
// of the test's own (imagebuilder_module_cache), unless args set one. With -vvv, the module
// file the action plugin names must be one of the collection built here (staged, or installed
// by a test into its temporary directory).
func Command(t testing.TB, env []string, command string, args ...string) Run {
	t.Helper()
	bin := testenv.Require(t, BinEnv)[BinEnv]
	if command == "ansible-playbook" && !strings.Contains(strings.Join(args, " "), "imagebuilder_module_cache=") {
		args = append([]string{"-e", "imagebuilder_module_cache=" + filepath.Join(t.TempDir(), "modules")}, args...)
	}
	cmd := exec.Command(filepath.Join(bin, command), args...)
	cmd.Dir = filepath.Join(RepoRoot(t), "playbooks")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	r := Run{Out: string(out)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	colls := Collection(t)
	for _, m := range usingModule.FindAllStringSubmatch(r.Out, -1) {
		if !strings.HasPrefix(m[1], colls+"/") && !strings.HasPrefix(m[1], os.TempDir()+"/Test") {
			t.Fatalf("the module that ran (%s) is not one of the collection this test built (%s)", m[1], colls)
		}
	}
	return r
}

// Playbook runs a copy of playbooks/NAME with vars as extra vars (from a file) plus result_file,
// and returns the run and the registered result the playbook wrote there (nil when it wrote
// none). ansible-playbook prefers a collections/ directory beside the playbook to every
// configured path: the copy in a directory of its own makes the collection built by the test
// the one that runs.
func Playbook(t testing.TB, name string, vars map[string]any, args ...string) (Run, map[string]any) {
	t.Helper()
	dir := t.TempDir()
	resultFile := filepath.Join(dir, "result.json")
	all := map[string]any{"result_file": resultFile}
	for k, v := range vars {
		all[k] = v
	}
	data, err := json.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	varsFile := filepath.Join(dir, "vars.json")
	if err := os.WriteFile(varsFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	playbook := filepath.Join(dir, name)
	src, err := os.ReadFile(filepath.Join(RepoRoot(t), "playbooks", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(playbook, src, 0o644); err != nil {
		t.Fatal(err)
	}
	r := Command(t, Env(t), "ansible-playbook", append([]string{playbook, "-e", "@" + varsFile}, args...)...)
	var res map[string]any
	if data, err := os.ReadFile(resultFile); err == nil {
		if err := json.Unmarshal(data, &res); err != nil {
			t.Fatalf("result file: %v\n%s", err, data)
		}
	}
	return r, res
}

// TaskStatus is the status word ansible-playbook printed for a task (ok, changed, failed, ...).
func TaskStatus(t testing.TB, out, task string) string {
	t.Helper()
	i := strings.Index(out, "TASK ["+task+"]")
	if i < 0 {
		t.Fatalf("task %q not in the output:\n%s", task, out)
	}
	m := regexp.MustCompile(`(?m)^(ok|changed|failed|fatal|skipping): \[`).FindStringSubmatch(out[i:])
	if m == nil {
		t.Fatalf("no status for task %q:\n%s", task, out[i:])
	}
	return m[1]
}

// ReturnValue is one documented return value of a module's docs.yml.
type ReturnValue struct {
	Returned string         `json:"returned"`
	Contains map[string]any `json:"contains"`
}

// ReturnDoc reads the RETURN section of a module's docs.yml.
func ReturnDoc(t testing.TB, docsFile string) map[string]ReturnValue {
	t.Helper()
	data, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	var prose struct {
		RETURN map[string]ReturnValue `json:"RETURN"`
	}
	if err := yaml.Unmarshal(data, &prose); err != nil {
		t.Fatal(err)
	}
	return prose.RETURN
}

// SameKeys fails unless the keys a return value documents as contained are the JSON names of
// typ's fields (the result model the module returns).
func SameKeys(t testing.TB, what string, documented map[string]any, typ reflect.Type) {
	t.Helper()
	var fields []string
	for f := range typ.Fields() {
		fields = append(fields, strings.Split(f.Tag.Get("json"), ",")[0])
	}
	keys := slices.Sorted(maps.Keys(documented))
	slices.Sort(fields)
	if !slices.Equal(fields, keys) {
		t.Errorf("RETURN %s contains %v, %s has %v", what, keys, typ, fields)
	}
}

// GeneratedDocsUpToDate fails when the module's generated documentation (the collection's
// plugins/modules/NAME.py, from its schemas and docs.yml) differs from what gendoc makes now.
// Run from the module's directory (modules/NAME); schemas as the module's go:generate line
// gives them (-schema, then each -options).
func GeneratedDocsUpToDate(t testing.TB, name, schemaFile string, optionSchemas ...string) {
	t.Helper()
	m, err := ansible.LoadModuleDoc(name, schemaFile, "docs.yml", optionSchemas...)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.Python()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(RepoRoot(t), "collection", "plugins", "modules", name+".py")
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("collection/plugins/modules/%s.py is out of date: run `make schema` and commit the result", name)
	}
}

// Serve runs module m in process on args (plus _ansible_check_mode: check) and returns the
// result document and its text, followed by the module's log.
func Serve(t testing.TB, m ansible.Module, args map[string]any, check bool) (map[string]any, string) {
	t.Helper()
	all := map[string]any{"_ansible_check_mode": check}
	maps.Copy(all, args)
	data, err := json.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	var out, log bytes.Buffer
	m.Serve(context.Background(), ansible.Streams{Stdin: bytes.NewReader(data), Stdout: &out, Log: &log})
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, out.String())
	}
	return doc, out.String() + log.String()
}
