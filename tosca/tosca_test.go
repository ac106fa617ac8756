package tosca_test

// Tests of the TOSCA side: the data types mirror the build-params schema and the result model,
// the examples are valid build params, and the real opera (from the test environment's venv)
// validates the service template and the CSAR and deploys them against the real registry.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/invopop/jsonschema"

	"github.com/imagebuilder/imagebuilder/internal/convert"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
	"github.com/imagebuilder/imagebuilder/internal/tosca"
	"github.com/imagebuilder/imagebuilder/schema"
)

// The TOSCA files, relative to this directory (the CSAR root).
const (
	serviceTemplate = "service.yaml"
	dataTypesFile   = "definitions/datatypes.yaml"
	nodeTypesFile   = "definitions/nodetypes.yaml"
	nodeType        = "imagebuilder.nodes.ImageBuild"
	typePrefix      = "imagebuilder.datatypes."
)

// Variables of `scripts/testenv.sh env` that internal/testenv has no names for.
const (
	operaBinEnv    = "IMAGEBUILDER_TEST_OPERA_BIN"     // venv bin directory with opera and ansible-playbook
	authBaseEnv    = "IMAGEBUILDER_TEST_AUTH_BASE"     // base image on the htpasswd registry
	authBaseAltEnv = "IMAGEBUILDER_TEST_AUTH_BASE_ALT" // alternative base image on it
)

func loadDefinitions(t *testing.T) *tosca.Definitions {
	t.Helper()
	d, err := tosca.Load(dataTypesFile, nodeTypesFile, serviceTemplate)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func reportDisagreements(t *testing.T, what string, msgs []string) {
	t.Helper()
	if len(msgs) > 0 {
		t.Errorf("%s disagree (%d):\n  %s", what, len(msgs), strings.Join(msgs, "\n  "))
	}
}

// TestDataTypesMirrorSchema: every object of the build-params schema has a data type with the
// same properties, types, required flags, defaults and descriptions; the node type's properties
// and the service template's inputs are the schema's top level.
func TestDataTypesMirrorSchema(t *testing.T) {
	s, err := tosca.ParseSchema(schema.BuildParams)
	if err != nil {
		t.Fatal(err)
	}
	d := loadDefinitions(t)
	m := tosca.Mirror{Schema: s, TypeName: func(def string) string { return typePrefix + def }}

	var defs []string
	for _, def := range s.Defs() {
		if def != "BuildParams" {
			defs = append(defs, def)
		}
	}
	reportDisagreements(t, "data types and schema/build-params.schema.json", m.DataTypes(d.DataTypes, defs...))

	nt, ok := d.NodeTypes[nodeType]
	if !ok {
		t.Fatalf("node type %s is missing", nodeType)
	}
	reportDisagreements(t, nodeType+" properties and the schema's top level",
		m.Properties(nodeType, nt.Properties, "BuildParams"))
	if d.TopologyTemplate == nil {
		t.Fatal("service.yaml has no topology_template")
	}
	reportDisagreements(t, "service template inputs and the schema's top level",
		m.Properties("inputs", d.TopologyTemplate.Inputs, "BuildParams"))
}

// TestResultTypesMirrorResult: the data type of the images attribute has the fields the module
// returns (internal/result, reflected into a schema the same way the params are).
func TestResultTypesMirrorResult(t *testing.T) {
	built := reflect.TypeFor[result.Image]()
	r := &jsonschema.Reflector{Namer: func(t reflect.Type) string {
		if t == built {
			return "BuiltImage"
		}
		return t.Name()
	}}
	data, err := json.Marshal(r.Reflect(&result.Image{}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := tosca.ParseSchema(data)
	if err != nil {
		t.Fatal(err)
	}
	d := loadDefinitions(t)
	m := tosca.Mirror{Schema: s, TypeName: func(def string) string { return typePrefix + def }}
	reportDisagreements(t, "result data types and internal/result", m.DataTypes(d.DataTypes, s.Defs()...))

	images := d.NodeTypes[nodeType].Attributes["images"]
	if images.Type != "list" || images.EntrySchema == nil || images.EntrySchema.Type != typePrefix+"BuiltImage" {
		t.Errorf("attribute images = %+v, want a list of %sBuiltImage", images, typePrefix)
	}
}

// TestNoStrayDataTypes: every data type mirrors either the schema or the result model.
func TestNoStrayDataTypes(t *testing.T) {
	s, err := tosca.ParseSchema(schema.BuildParams)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{typePrefix + "BuiltImage": true, typePrefix + "BaseChange": true}
	for _, def := range s.Defs() {
		known[typePrefix+def] = true
	}
	for name := range loadDefinitions(t).DataTypes {
		if !known[name] {
			t.Errorf("data type %s mirrors nothing in the schema or the result model", name)
		}
	}
}

func examples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("want several examples, found %v", files)
	}
	return files
}

// TestExamplesAreValidBuildParams: every example inputs file is valid build params as it is.
func TestExamplesAreValidBuildParams(t *testing.T) {
	for _, f := range examples(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := params.LoadFile(f); err != nil {
				t.Error(err)
			}
		})
	}
}

// --- opera ------------------------------------------------------------------------------------

// csarBuild is the CSAR (and its staging directory, the CSAR root unzipped, laid out like this
// directory with library/ filled in) built once per test process by build-csar.sh, as `make
// csar` does.
var csarBuild struct {
	once  sync.Once
	dir   string // removed by TestMain
	stage string
	csar  string
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if csarBuild.dir != "" {
		os.RemoveAll(csarBuild.dir)
	}
	os.Exit(code)
}

// buildCSAR builds the image_build module and the CSAR, and returns the staging directory and
// the CSAR file.
func buildCSAR(t *testing.T) (stage, csar string) {
	t.Helper()
	b := &csarBuild
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "imagebuilder-csar-test"); b.err != nil {
			return
		}
		lib := filepath.Join(b.dir, "library")
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w",
			"-o", filepath.Join(lib, "image_build"), "../modules/image_build")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building the image_build module: %v\n%s", err, out)
			return
		}
		b.stage, b.csar = filepath.Join(b.dir, "csar"), filepath.Join(b.dir, "imagebuilder.csar")
		if out, err := exec.Command("./build-csar.sh", ".", lib, b.stage, b.csar).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build-csar.sh: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.stage, b.csar
}

// opera runs opera commands in its own working directory (where opera keeps .opera/).
type opera struct {
	t   *testing.T
	bin string // the venv's bin directory
	dir string
	env []string // added to the environment
}

func newOpera(t *testing.T, env ...string) *opera {
	t.Helper()
	bin := testenv.Require(t, operaBinEnv)[operaBinEnv]
	return &opera{t: t, bin: bin, dir: t.TempDir(), env: env}
}

// run runs opera with args and returns its combined output and whether it succeeded. opera
// runs ansible-playbook from PATH, so the venv's bin directory comes first.
func (o *opera) run(args ...string) (string, bool) {
	o.t.Helper()
	cmd := exec.CommandContext(o.t.Context(), filepath.Join(o.bin, "opera"), args...)
	cmd.Dir = o.dir
	cmd.Env = append(os.Environ(), "PATH="+o.bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, o.env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		o.t.Fatalf("opera %s: %v", strings.Join(args, " "), err)
	}
	return string(out), err == nil
}

// must runs opera and fails the test when it fails.
func (o *opera) must(args ...string) string {
	o.t.Helper()
	out, ok := o.run(args...)
	if !ok {
		o.t.Fatalf("opera %s failed:\n%s", strings.Join(args, " "), out)
	}
	return out
}

// writeInputs writes an inputs file into the working directory.
func (o *opera) writeInputs(name string, data []byte) string {
	o.t.Helper()
	p := filepath.Join(o.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		o.t.Fatal(err)
	}
	return p
}

// TestOperaValidate: opera validates the service template, the staged CSAR root and the CSAR,
// with every example as inputs, and the executors (the playbook's syntax, which resolves the
// image_build module from the library/ dependency) on the CSAR root. (opera 0.7.0 cannot
// validate the executors of a zipped CSAR: it removes the extracted files before running them.)
func TestOperaValidate(t *testing.T) {
	o := newOpera(t)
	stage, csar := buildCSAR(t)
	for _, target := range []string{filepath.Join(stage, serviceTemplate), stage, csar} {
		if out := o.must("validate", target); !strings.Contains(out, "Done.") {
			t.Errorf("opera validate %s:\n%s", target, out)
		}
	}
	for _, f := range examples(t) {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		o.must("validate", "-i", abs, filepath.Join(stage, serviceTemplate))
	}
	abs, _ := filepath.Abs("examples/git.yaml")
	if out := o.must("validate", "-e", "-i", abs, stage); !strings.Contains(out, "Validation of images_0 complete") {
		t.Errorf("opera validate -e: the executors were not validated:\n%s", out)
	}
}

// outputs is what `opera outputs -f json` prints for the service template.
type outputs struct {
	Images struct {
		Value []result.Image `json:"value"`
	} `json:"images"`
	Digests struct {
		Value map[string]string `json:"value"`
	} `json:"digests"`
	Builder struct {
		Value result.Builder `json:"value"`
	} `json:"builder"`
}

// checkOutputs reads the deployment's outputs and checks that they name exactly refs, with the
// digests the registry serves, and returns them.
func checkOutputs(t *testing.T, o *opera, refs []string, auth authn.Authenticator) outputs {
	t.Helper()
	out := o.must("outputs", "-f", "json")
	var got outputs
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("opera outputs -f json: %v\n%s", err, out)
	}
	if len(got.Digests.Value) != len(refs) || len(got.Images.Value) != len(refs) {
		t.Fatalf("outputs name %d digests and %d images, want %d (%v):\n%s",
			len(got.Digests.Value), len(got.Images.Value), len(refs), refs, out)
	}
	for i, ref := range refs {
		want := testenv.RegistryDigest(t, ref, auth)
		if want == "" {
			t.Errorf("%s is not in the registry", ref)
		}
		if d := got.Digests.Value[ref]; d != want {
			t.Errorf("outputs digests[%s] = %q, the registry serves %q", ref, d, want)
		}
		if img := got.Images.Value[i]; img.Ref != ref || img.Digest != want {
			t.Errorf("outputs images[%d] = %s@%s, want %s@%s", i, img.Ref, img.Digest, ref, want)
		}
	}
	if b := got.Builder.Value; (b.Kind != "docker" && b.Kind != "buildkit") || b.Endpoint == "" {
		t.Errorf("outputs builder = %+v, want the engine's kind and endpoint", b)
	}
	return got
}

// noSecret fails when secret occurs in text.
func noSecret(t *testing.T, what, text, secret string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Errorf("the registry password appears in %s", what)
	}
}

// filesWith lists the files under dir that contain secret.
func filesWith(t *testing.T, dir, secret string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), secret) {
			rel, _ := filepath.Rel(dir, p)
			found = append(found, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestOperaDeploy deploys for real with opera against the test environment: a build of an image
// and a variant from a local git repository into the htpasswd registry, from the CSAR with the
// credentials in the inputs and from the CSAR root (the checkout's layout) with the credentials
// in a Docker config instead; and a deploy with invalid inputs. The registry password is the
// canary: it must never appear in opera's output nor in what opera persists about the nodes.
func TestOperaDeploy(t *testing.T) {
	env := testenv.Require(t, operaBinEnv, testenv.AuthRegistry, testenv.AuthUser, testenv.AuthPassword,
		authBaseEnv, authBaseAltEnv, testenv.BuildKit, testenv.Docker)
	stage, csar := buildCSAR(t)
	reg, user, pass := env[testenv.AuthRegistry], env[testenv.AuthUser], env[testenv.AuthPassword]
	auth := &authn.Basic{Username: user, Password: pass}
	repoURL := testenv.GitRepoURL(t, map[string]string{
		"Dockerfile": "FROM " + env[authBaseEnv] + "\nCOPY hello.txt /hello.txt\n",
		"hello.txt":  "built by opera\n",
	})
	// A repository of its own per run, so every tag is new and "nothing pushed" means it.
	repo := fmt.Sprintf("tosca/e2e-%d", time.Now().UnixNano())
	// The engines the module picks by default, and no Docker config of the host's.
	baseEnv := []string{"DOCKER_HOST=" + env[testenv.Docker], "BUILDKIT_HOST=" + env[testenv.BuildKit]}

	t.Run("csar/credentials in inputs", func(t *testing.T) {
		tmp := t.TempDir()
		o := newOpera(t, append(baseEnv, "DOCKER_CONFIG="+t.TempDir(), "TMPDIR="+tmp)...)
		// SODALITE JSON build params, converted to YAML as `imagebuilder convert` does, deploy as
		// they are; builder is absent, so the module picks its default engine.
		sodalite := map[string]any{
			"source": map[string]any{"git_repo": map[string]any{"url": repoURL}},
			"target": map[string]any{
				"images": []any{
					map[string]any{"image": repo, "tag": "latest"},
					map[string]any{"image": repo, "tag": "variant", "base": env[authBaseAltEnv]},
				},
				"registry": map[string]any{"url": reg, "username": user, "password": pass},
			},
		}
		data, err := json.Marshal(sodalite)
		if err != nil {
			t.Fatal(err)
		}
		yml, _, err := convert.Convert(data, convert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		inputs := o.writeInputs("inputs.yaml", yml)

		o.must("validate", "-i", inputs, csar)
		start := time.Now()
		out := o.must("deploy", "-i", inputs, csar)
		t.Logf("opera deploy (CSAR, 2 images, default engine): %s", time.Since(start).Round(time.Millisecond))
		noSecret(t, "opera deploy's output", out, pass)

		refs := []string{reg + "/" + repo + ":latest", reg + "/" + repo + ":variant"}
		got := checkOutputs(t, o, refs, auth)
		if b := got.Images.Value[1].Base; b == nil || b.To != env[authBaseAltEnv] {
			t.Errorf("the variant's base = %+v, want %s", b, env[authBaseAltEnv])
		}
		if got.Images.Value[0].Base != nil {
			t.Errorf("the first image's base = %+v, want null", got.Images.Value[0].Base)
		}

		// opera keeps the inputs, password included, in .opera/inputs (documented: deploy with a
		// Docker config instead, as below); what it keeps about the nodes has no secret.
		if found := filesWith(t, filepath.Join(o.dir, ".opera", "instances"), pass); len(found) > 0 {
			t.Errorf("the registry password is stored in .opera/instances: %v", found)
		}
		if found := filesWith(t, filepath.Join(o.dir, ".opera"), pass); !slices.Equal(found, []string{"inputs"}) {
			t.Errorf("the registry password is stored in .opera/%v, want only in .opera/inputs (as documented)", found)
		}

		start = time.Now()
		out = o.must("undeploy")
		t.Logf("opera undeploy: %s", time.Since(start).Round(time.Millisecond))
		noSecret(t, "opera undeploy's output", out, pass)
		// Undeploying leaves the images in the registry (Standard.delete is not implemented).
		for _, ref := range refs {
			if testenv.RegistryDigest(t, ref, auth) == "" {
				t.Errorf("%s is gone after undeploy", ref)
			}
		}
		if found := filesWith(t, tmp, pass); len(found) > 0 {
			t.Errorf("files left in TMPDIR hold the registry password: %v", found)
		}
	})

	t.Run("csar/invalid inputs", func(t *testing.T) {
		o := newOpera(t, append(baseEnv, "DOCKER_CONFIG="+t.TempDir())...)
		bad := map[string]any{
			"source": map[string]any{
				"git_repo":   map[string]any{"url": repoURL},
				"dockerfile": map[string]any{"url": "http://127.0.0.1:9/Dockerfile"},
			},
			"target": map[string]any{
				"images":   []any{map[string]any{"image": repo, "tag": "invalid"}},
				"registry": map[string]any{"url": reg, "username": user, "password": pass},
			},
		}
		data, err := json.Marshal(bad)
		if err != nil {
			t.Fatal(err)
		}
		// The message opera must show is the schema's.
		var ve *params.ValidationError
		if _, err := params.Load(data); !errors.As(err, &ve) || len(ve.Errors) == 0 {
			t.Fatalf("params.Load(both sources) = %v, want a validation error", err)
		}
		want := ve.Errors[0].String()
		yml, _, err := convert.Convert(data, convert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		inputs := o.writeInputs("inputs.yaml", yml)

		out, ok := o.run("deploy", "-i", inputs, csar)
		if ok {
			t.Fatalf("opera deploy of invalid inputs succeeded:\n%s", out)
		}
		quoted, _ := json.Marshal(want) // opera prints the message inside the play's JSON stats
		if !strings.Contains(out, want) && !strings.Contains(out, strings.Trim(string(quoted), `"`)) {
			t.Errorf("opera's output does not show the schema message %q:\n%s", want, out)
		}
		noSecret(t, "opera deploy's output", out, pass)
		if found := filesWith(t, filepath.Join(o.dir, ".opera", "instances"), pass); len(found) > 0 {
			t.Errorf("the registry password is stored in .opera/instances: %v", found)
		}
		if d := testenv.RegistryDigest(t, reg+"/"+repo+":invalid", auth); d != "" {
			t.Errorf("invalid inputs pushed %s:invalid (%s)", repo, d)
		}
	})

	t.Run("checkout/docker config", func(t *testing.T) {
		// The registry credentials in a Docker config on the orchestrator host instead of the
		// inputs: nothing opera writes holds the password. The builder is named explicitly.
		dockerConfig := t.TempDir()
		cfg := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, reg, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
		if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := t.TempDir()
		o := newOpera(t, append(baseEnv, "DOCKER_CONFIG="+dockerConfig, "TMPDIR="+tmp)...)
		inputs := o.writeInputs("inputs.yaml", []byte(fmt.Sprintf(`source:
  git_repo:
    url: %s
    version: main
target:
  images:
    - image: %s
      tag: dc
    - image: %s
      tag: dc-variant
      base: %s
  registry:
    url: %s
builder:
  endpoint: %s
`, repoURL, repo, repo, env[authBaseAltEnv], reg, env[testenv.BuildKit])))

		start := time.Now()
		out := o.must("deploy", "-i", inputs, filepath.Join(stage, serviceTemplate))
		t.Logf("opera deploy (service template, 2 images, BuildKit, Docker config): %s", time.Since(start).Round(time.Millisecond))
		noSecret(t, "opera deploy's output", out, pass)
		checkOutputs(t, o, []string{reg + "/" + repo + ":dc", reg + "/" + repo + ":dc-variant"}, auth)

		out = o.must("undeploy")
		noSecret(t, "opera undeploy's output", out, pass)
		if found := filesWith(t, filepath.Join(o.dir, ".opera"), pass); len(found) > 0 {
			t.Errorf("the registry password is stored in .opera/%v", found)
		}
		if found := filesWith(t, tmp, pass); len(found) > 0 {
			t.Errorf("files left in TMPDIR hold the registry password: %v", found)
		}
	})
}
