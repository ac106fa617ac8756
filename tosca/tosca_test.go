package tosca_test

// Tests of the TOSCA side: the data types mirror the build-params schema and the result model,
// the examples are valid build params, and the real opera (from the test environment's venv)
// validates the service template and the CSAR and deploys them against the real registry.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	"sigs.k8s.io/yaml"

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
	// The module's own options (vars) mirror its options schema; the rest, the params.
	props := maps.Clone(nt.Properties)
	runSchema, runNames := buildRunOptions(t)
	runProps := map[string]tosca.Property{}
	for _, name := range runNames {
		runProps[name] = props[name]
		delete(props, name)
	}
	reportDisagreements(t, nodeType+" properties and the schema's top level",
		m.Properties(nodeType, props, "BuildParams"))
	rm := tosca.Mirror{Schema: runSchema, TypeName: m.TypeName}
	reportDisagreements(t, nodeType+" properties and image_build's run options",
		rm.Properties(nodeType, runProps, "RunOptions"))
	if d.TopologyTemplate == nil {
		t.Fatal("service.yaml has no topology_template")
	}
	params := maps.Clone(d.TopologyTemplate.Inputs)
	for name := range templateInputs {
		delete(params, name)
	}
	reportDisagreements(t, "service template inputs and the schema's top level",
		m.Properties("inputs", params, "BuildParams"))
	for name, want := range templateInputs {
		got, ok := d.TopologyTemplate.Inputs[name]
		if !ok || got.Type != want.Type || got.IsRequired() || !reflect.DeepEqual(got.Default, want.Default) {
			t.Errorf("service template input %s = %+v, want an optional %s defaulting to %v", name, got, want.Type, want.Default)
		}
	}
}

// buildRunOptions is the image_build module's options schema (its own options, beside the build
// params) and the names of those options.
func buildRunOptions(t *testing.T) (*tosca.Schema, []string) {
	t.Helper()
	data, err := os.ReadFile("../modules/image_build/options.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := tosca.ParseSchema(data)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Defs struct {
			RunOptions struct {
				Properties map[string]any `json:"properties"`
			} `json:"RunOptions"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return s, slices.Sorted(maps.Keys(doc.Defs.RunOptions.Properties))
}

// templateInputs are the service template's inputs that are not build params.
var templateInputs = map[string]tosca.Property{
	// Where the build runs: the public_address of the build host's tosca.nodes.Compute.
	"build_host": {Type: "string", Default: "localhost"},
}

// TestNodeTypesHostedOnCompute: every node type is a tosca.nodes.SoftwareComponent whose host
// requirement places it on a tosca.nodes.Compute (the build host), as xOpera's and SODALITE's
// templates do; the requirement is optional, so a template without a Compute builds on the
// orchestrator host as before.
func TestNodeTypesHostedOnCompute(t *testing.T) {
	d, err := tosca.Load(dataTypesFile, nodeTypesFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.NodeTypes[nodeType]; !ok {
		t.Fatalf("node type %s is missing", nodeType)
	}
	want := tosca.Requirement{
		Capability:   "tosca.capabilities.Compute",
		Node:         "tosca.nodes.Compute",
		Relationship: "tosca.relationships.HostedOn",
		Occurrences:  []any{0.0, 1.0},
	}
	for name, nt := range d.NodeTypes {
		// Follow derived_from through this file's types to the normative type underneath.
		base := nt.DerivedFrom
		host, found := nt.Requirement("host")
		for seen := map[string]bool{name: true}; ; {
			parent, ours := d.NodeTypes[base]
			if !ours || seen[base] {
				break
			}
			seen[base] = true
			if !found {
				host, found = parent.Requirement("host")
			}
			base = parent.DerivedFrom
		}
		if base != "tosca.nodes.SoftwareComponent" {
			t.Errorf("%s derives from %s, want tosca.nodes.SoftwareComponent (directly or through this file's types)", name, base)
		}
		if !found {
			t.Errorf("%s has no host requirement of its own: SoftwareComponent's needs exactly one Compute; declare it with occurrences [0, 1]", name)
		} else if !reflect.DeepEqual(host, want) {
			t.Errorf("%s's host requirement = %+v, want %+v", name, host, want)
		}
	}
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

// TestNoStrayDataTypes: every data type mirrors either the schema or the result model (the
// build's and the family report's).
func TestNoStrayDataTypes(t *testing.T) {
	s, err := tosca.ParseSchema(schema.BuildParams)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{typePrefix + "BuiltImage": true, typePrefix + "BaseChange": true}
	for _, name := range slices.Concat(familyResultTypes, promotionResultTypes) {
		known[typePrefix+name] = true
	}
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

// TestExamplesAreValidBuildParams: every example inputs file is valid build params as it is,
// but for the template's own inputs (build_host).
func TestExamplesAreValidBuildParams(t *testing.T) {
	for _, f := range examples(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var inputs map[string]any
			if err := yaml.UnmarshalStrict(data, &inputs); err != nil {
				t.Fatal(err)
			}
			for name := range templateInputs {
				delete(inputs, name)
			}
			if data, err = json.Marshal(inputs); err != nil {
				t.Fatal(err)
			}
			if _, err := params.Load(data); err != nil {
				t.Error(err)
			}
		})
	}
}

// sodaliteExamples are the examples of SODALITE image-builder's README (its REST API payloads),
// kept as JSON in examples/params.
var sodaliteExamples = []string{
	"git", "git-additional-options", "dockerfile-no-context", "dockerfile-build-context",
	"dockerfile-build-context-subdir", "image-variants", "multi-arch", "image-variants-platforms",
}

// sodaliteRegistryIPInputs are inputs in the shape of SODALITE's docker_image_definition.yaml:
// its JSON build params, but the registry a host in registry_ip.
const sodaliteRegistryIPInputs = `source:
  git_repo:
    url: https://git.example.com/team/app.git
    version: HEAD
    dockerfile: Dockerfile
    workdir: .
target:
  images:
    - image: team/app
      tag: latest
      platforms: [linux/amd64]
    - image: team/app
      tag: alpine
      base: alpine:3.20
  registry_ip: registry.example.com:5000
`

// TestSODALITEInputs checks what the README says of SODALITE's inputs, shape by shape: its JSON
// build params converted to YAML are inputs of the service template as they are; the inputs of
// SODALITE's own TOSCA template (registry_ip) and its older ones (source.type, image_name) are
// not, and the schema names every field to change (the first operation fails with these
// messages, see TestOperaDeploy; custom_workdir is refused by opera, see TestOperaValidate).
func TestSODALITEInputs(t *testing.T) {
	d := loadDefinitions(t)
	if d.TopologyTemplate == nil {
		t.Fatal("service.yaml has no topology_template")
	}
	declared := d.TopologyTemplate.Inputs

	t.Run("JSON build params, converted", func(t *testing.T) {
		for _, name := range sodaliteExamples {
			data, err := os.ReadFile(filepath.Join("..", "examples", "params", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			yml, _, err := convert.Convert(data, convert.Options{})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if _, err := params.Load(yml); err != nil {
				t.Errorf("%s, converted: %v", name, err)
			}
			var inputs map[string]any
			if err := yaml.Unmarshal(yml, &inputs); err != nil {
				t.Fatal(err)
			}
			for key := range inputs {
				if _, ok := declared[key]; !ok {
					t.Errorf("%s, converted: %s is not an input of %s", name, key, serviceTemplate)
				}
			}
		}
	})

	for _, tc := range []struct {
		name, inputs string
		want         []string // the schema's messages, each the start of one
	}{{
		// The inputs of SODALITE's docker_image_definition.yaml: the JSON shape, but the registry
		// is a host in registry_ip.
		name:   "TOSCA inputs with registry_ip",
		inputs: sodaliteRegistryIPInputs,
		want:   []string{`/target: missing property 'registry'`, `/target: unknown property "registry_ip"`},
	}, {
		// Its older inputs: source.type with url or repo, one image as image_name/image_tag.
		name: "older TOSCA inputs with source.type",
		inputs: `source:
  type: dockerfile
  url: https://git.example.com/team/app/raw/Dockerfile
  build_context:
    url: https://git.example.com/team/context.git
target:
  image_name: team/app
  image_tag: latest
  registry_ip: registry.example.com:5000
`,
		want: []string{
			`/source: unknown property "type"`,
			`/source: unknown property "url"`,
			`/source: build_context needs dockerfile`,
			`/target: missing properties 'images', 'registry'`,
			`/target: unknown property "image_name"`,
			`/target: unknown property "image_tag"`,
			`/target: unknown property "registry_ip"`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var ve *params.ValidationError
			if _, err := params.Load([]byte(tc.inputs)); !errors.As(err, &ve) {
				t.Fatalf("params.Load = %v, want a validation error", err)
			}
			var got []string
			for _, fe := range ve.Errors {
				got = append(got, fe.String())
			}
			// Each message wanted starts one message given, in any order (the order of messages
			// on the same pointer varies between runs).
			left := slices.Clone(got)
			ok := len(got) == len(tc.want)
			for _, w := range tc.want {
				i := slices.IndexFunc(left, func(g string) bool { return strings.HasPrefix(g, w) })
				if i < 0 {
					ok = false
					break
				}
				left = slices.Delete(left, i, i+1)
			}
			if !ok {
				t.Errorf("the schema says\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}

	// SODALITE's template has a third input; this one does not declare it, so opera refuses it.
	if _, ok := declared["custom_workdir"]; ok {
		t.Errorf("%s declares custom_workdir: the README says opera refuses it", serviceTemplate)
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

// buildCSAR builds the modules and the CSAR, and returns the staging directory and
// the CSAR file.
func buildCSAR(t *testing.T) (stage, csar string) {
	t.Helper()
	b := &csarBuild
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "imagebuilder-csar-test"); b.err != nil {
			return
		}
		lib := filepath.Join(b.dir, "library")
		for _, m := range []string{"image_build", "image_family", "image_promote", "image_manifest"} {
			build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w",
				"-o", filepath.Join(lib, m), "../modules/"+m)
			build.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				b.err = fmt.Errorf("building the %s module: %v\n%s", m, err, out)
				return
			}
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
	bin := testenv.Require(t, testenv.OperaBin)[testenv.OperaBin]
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
	// The family template, in the staged CSAR root, with its example inputs; and its executors.
	famInputs, _ := filepath.Abs("examples/family/inputs.yaml")
	o.must("validate", filepath.Join(stage, familyTemplate))
	if out := o.must("validate", "-e", "-i", famInputs, filepath.Join(stage, familyTemplate)); !strings.Contains(out, "Validation of family_0 complete") {
		t.Errorf("opera validate -e %s: the executors were not validated:\n%s", familyTemplate, out)
	}

	// The release template, with its example inputs (not its executors: opera 0.7 evaluates the
	// promotion's inputs, the staged node's images attribute, which is unset before a deploy).
	relInputs, _ := filepath.Abs("examples/release/inputs.yaml")
	if out := o.must("validate", "-i", relInputs, filepath.Join(stage, releaseTemplate)); !strings.Contains(out, "Done.") {
		t.Errorf("opera validate %s:\n%s", releaseTemplate, out)
	}

	// opera checks the names of the inputs, not their values (see also TestOperaDeploy), as the
	// README says: SODALITE's registry_ip inputs pass (the first operation refuses them, see
	// TestSODALITEInputs), and the third input of SODALITE's template is refused.
	o.must("validate", "-i", o.writeInputs("registry-ip.yaml", []byte(sodaliteRegistryIPInputs)), csar)
	inputs := o.writeInputs("custom-workdir.yaml", []byte(sodaliteRegistryIPInputs+"custom_workdir: builds\n"))
	out, ok := o.run("validate", "-i", inputs, csar)
	if ok || !strings.Contains(out, "Undeclared inputs: custom_workdir") {
		t.Errorf("opera validate with custom_workdir: succeeded=%t, want \"Undeclared inputs: custom_workdir\":\n%s", ok, out)
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

// remoteTmpEnv sets Ansible's temporary directory on the host that runs the image_build task
// (the only task of the play that needs one) to DIR/sshd-port-PORT, PORT being the server port
// of the sshd session the task's shell runs in, and empty outside one: Ansible creates the
// directory with the target's shell, which expands the variable. A build over SSH thus leaves
// DIR/sshd-port-2222 behind, made inside the sshd session, and a local one DIR/sshd-port-. The
// test's own SSH_CONNECTION is cleared so that a local run reads as local even when the test
// itself runs in an SSH session.
func remoteTmpEnv(dir string) []string {
	return []string{"ANSIBLE_REMOTE_TMP=" + filepath.Join(dir, "sshd-port-") + "${SSH_CONNECTION##* }", "SSH_CONNECTION="}
}

// ranOver fails unless the image_build task's temporary directory (remoteTmpEnv) was made in an
// sshd session on port (or, with port "", outside any), and fails when it was made elsewhere
// too; it also fails when a file left there holds secret (Ansible removes the module's args,
// which hold the options, after the task).
func ranOver(t *testing.T, dir, port, secret string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var made []string
	for _, e := range entries {
		made = append(made, e.Name())
	}
	if want := []string{"sshd-port-" + port}; !slices.Equal(made, want) {
		where := "in an sshd session on port " + port
		if port == "" {
			where = "outside any sshd session"
		}
		t.Errorf("Ansible's temporary directories on the build host are %v, want %v (made %s)", made, want, where)
	}
	if found := filesWith(t, dir, secret); len(found) > 0 {
		t.Errorf("files left in Ansible's temporary directory on the build host hold the registry password: %v", found)
	}
}

// sshEnv makes opera reach a build host through the test sshd: its user and key through opera's
// OPERA_SSH_USER and OPERA_SSH_IDENTITY_FILE, its port through Ansible's ANSIBLE_REMOTE_PORT
// (opera's inventory sets none), and its host key checked against the sshd's known key: opera's
// inventory turns checking off, but Ansible puts ANSIBLE_SSH_ARGS first and ssh keeps the first
// value of an option (the README's recipe). No connection sharing: no master connection outlives
// the test or is shared with other runs.
func sshEnv(env map[string]string) []string {
	return []string{
		"OPERA_SSH_USER=" + env[testenv.SSHUser],
		"OPERA_SSH_IDENTITY_FILE=" + env[testenv.SSHKey],
		"ANSIBLE_REMOTE_PORT=" + env[testenv.SSHPort],
		"ANSIBLE_SSH_ARGS=-o StrictHostKeyChecking=yes -o UserKnownHostsFile=" + env[testenv.SSHKnownHosts] +
			" -o GlobalKnownHostsFile=/dev/null -o ControlMaster=no",
	}
}

// noHostTemplate is a service template whose build node has no host requirement: the form of
// templates written before imagebuilder.nodes.ImageBuild became a SoftwareComponent. opera runs
// its operations on the orchestrator host.
const noHostTemplate = `tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - definitions/nodetypes.yaml
topology_template:
  inputs:
    source: {type: imagebuilder.datatypes.Source}
    target: {type: imagebuilder.datatypes.Target}
    builder: {type: imagebuilder.datatypes.Builder, required: false, default: {}}
  node_templates:
    images:
      type: imagebuilder.nodes.ImageBuild
      properties:
        source: { get_input: source }
        target: { get_input: target }
        builder: { get_input: builder }
  outputs:
    images:
      value: { get_attribute: [ images, images ] }
    digests:
      value: { get_attribute: [ images, digests ] }
    builder:
      value: { get_attribute: [ images, builder ] }
`

// TestOperaDeploy deploys for real with opera against the test environment, each time an image
// and a variant from a local git repository into the htpasswd registry: from the CSAR with the
// build host at localhost (converted SODALITE JSON, credentials in the inputs), from the CSAR
// with the build host reached over the loopback sshd (the build goes through SSH), from a
// template without a build host (the checkout's layout, credentials in a Docker config); and a
// deploy with invalid inputs. The registry password is the canary: it must never appear in
// opera's output nor in what opera persists about the nodes.
func TestOperaDeploy(t *testing.T) {
	env := testenv.Require(t, testenv.OperaBin, testenv.AuthRegistry, testenv.AuthUser, testenv.AuthPassword,
		authBaseEnv, authBaseAltEnv, testenv.BuildKit, testenv.Docker)
	stage, csar := buildCSAR(t)
	reg, user, pass := env[testenv.AuthRegistry], env[testenv.AuthUser], env[testenv.AuthPassword]
	secretCanary := fmt.Sprintf("build-secret-canary-%d", time.Now().UnixNano())
	auth := &authn.Basic{Username: user, Password: pass}
	repoURL := testenv.GitRepoURL(t, map[string]string{
		"Dockerfile": "FROM " + env[authBaseEnv] + "\nCOPY hello.txt /hello.txt\n",
		"hello.txt":  "built by opera\n",
	})
	// A repository of its own per run, so every tag is new and "nothing pushed" means it.
	repo := fmt.Sprintf("tosca/e2e-%d", time.Now().UnixNano())
	// The engines the module picks by default, and no Docker config of the host's.
	baseEnv := []string{"DOCKER_HOST=" + env[testenv.Docker], "BUILDKIT_HOST=" + env[testenv.BuildKit]}
	// An image and a variant of it on the alternative base, tagged tag and tag-variant.
	images := func(tag string) []any {
		return []any{
			map[string]any{"image": repo, "tag": tag},
			map[string]any{"image": repo, "tag": tag + "-variant", "base": env[authBaseAltEnv]},
		}
	}
	refs := func(tag string) []string {
		return []string{reg + "/" + repo + ":" + tag, reg + "/" + repo + ":" + tag + "-variant"}
	}
	checkVariant := func(t *testing.T, got outputs) {
		t.Helper()
		if b := got.Images.Value[1].Base; b == nil || b.To != env[authBaseAltEnv] {
			t.Errorf("the variant's base = %+v, want %s", b, env[authBaseAltEnv])
		}
		if got.Images.Value[0].Base != nil {
			t.Errorf("the first image's base = %+v, want null", got.Images.Value[0].Base)
		}
	}
	// writeJSONInputs writes inputs given as JSON (as SODALITE's API takes them) converted to
	// YAML, as `imagebuilder convert` does.
	writeJSONInputs := func(t *testing.T, o *opera, inputs map[string]any) string {
		t.Helper()
		data, err := json.Marshal(inputs)
		if err != nil {
			t.Fatal(err)
		}
		yml, _, err := convert.Convert(data, convert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return o.writeInputs("inputs.yaml", yml)
	}

	t.Run("csar/localhost build host, credentials in inputs", func(t *testing.T) {
		tmp, rtmp := t.TempDir(), t.TempDir()
		o := newOpera(t, slices.Concat(baseEnv, remoteTmpEnv(rtmp), []string{"DOCKER_CONFIG=" + t.TempDir(), "TMPDIR=" + tmp})...)
		// SODALITE JSON build params, converted to YAML as `imagebuilder convert` does, deploy as
		// they are (build_host defaults to localhost); builder is absent, so the module picks its
		// default engine.
		inputs := writeJSONInputs(t, o, map[string]any{
			"source": map[string]any{"git_repo": map[string]any{"url": repoURL}},
			"target": map[string]any{
				"images":   images("latest"),
				"registry": map[string]any{"url": reg, "username": user, "password": pass},
			},
		})

		o.must("validate", "-i", inputs, csar)
		start := time.Now()
		out := o.must("deploy", "-i", inputs, csar)
		t.Logf("opera deploy (CSAR, build host localhost, 2 images, default engine): %s", time.Since(start).Round(time.Millisecond))
		noSecret(t, "opera deploy's output", out, pass)
		checkVariant(t, checkOutputs(t, o, refs("latest"), auth))
		ranOver(t, rtmp, "", pass)

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
		for _, ref := range refs("latest") {
			if testenv.RegistryDigest(t, ref, auth) == "" {
				t.Errorf("%s is gone after undeploy", ref)
			}
		}
		if found := filesWith(t, tmp, pass); len(found) > 0 {
			t.Errorf("files left in TMPDIR hold the registry password: %v", found)
		}
	})

	t.Run("csar/build host over ssh", func(t *testing.T) {
		ssh := testenv.Require(t, testenv.SSHHost, testenv.SSHPort, testenv.SSHUser, testenv.SSHKey, testenv.SSHKnownHosts)
		rtmp := t.TempDir()
		// No engine in opera's environment: it would not reach the build host anyway (an SSH
		// session has the build host's environment), so the inputs name the build host's engine.
		o := newOpera(t, slices.Concat(sshEnv(ssh), remoteTmpEnv(rtmp), []string{"DOCKER_CONFIG=" + t.TempDir()})...)
		inputs := writeJSONInputs(t, o, map[string]any{
			"source": map[string]any{"git_repo": map[string]any{"url": repoURL}},
			"target": map[string]any{
				"images":   images("ssh"),
				"registry": map[string]any{"url": reg, "username": user, "password": pass},
			},
			"builder":    map[string]any{"endpoint": env[testenv.BuildKit]},
			"build_host": ssh[testenv.SSHHost],
			// An inline build secret, a second canary: like the password, it may be kept in
			// .opera/inputs (documented) and nowhere else.
			"secrets": map[string]any{"tok": map[string]any{"value": secretCanary}},
		})

		start := time.Now()
		out := o.must("deploy", "-i", inputs, csar)
		t.Logf("opera deploy (CSAR, build host over SSH, 2 images, BuildKit): %s", time.Since(start).Round(time.Millisecond))
		// The build went through the sshd: the task's temporary directory was made in its session.
		ranOver(t, rtmp, ssh[testenv.SSHPort], pass)
		// No secret in what opera shows or keeps about the nodes (the build host's attributes
		// included), nor in the template's outputs.
		outs := o.must("outputs", "-f", "json")
		for _, secret := range []string{pass, secretCanary} {
			noSecret(t, "opera deploy's output", out, secret)
			if found := filesWith(t, filepath.Join(o.dir, ".opera", "instances"), secret); len(found) > 0 {
				t.Errorf("a secret is stored in .opera/instances: %v", found)
			}
			noSecret(t, "opera outputs", outs, secret)
		}
		checkVariant(t, checkOutputs(t, o, refs("ssh"), auth))
	})

	t.Run("csar/invalid inputs", func(t *testing.T) {
		o := newOpera(t, append(baseEnv, "DOCKER_CONFIG="+t.TempDir())...)
		// One value of each kind opera does not check: an unknown key, a string for a boolean,
		// a tag the schema's pattern refuses. The rest would build and push.
		bad := map[string]any{
			"source": map[string]any{"git_repo": map[string]any{"url": repoURL}},
			"target": map[string]any{
				"images": []any{map[string]any{"image": repo, "tag": "invalid",
					"tags": []any{"v1 final"}, "platfroms": []any{"linux/amd64"}}},
				"registry": map[string]any{"url": reg, "username": user, "password": pass, "insecure": "yes"},
			},
		}
		data, err := json.Marshal(bad)
		if err != nil {
			t.Fatal(err)
		}
		// The messages opera must show are the schema's, one per field.
		var ve *params.ValidationError
		if _, err := params.Load(data); !errors.As(err, &ve) || len(ve.Errors) != 3 {
			t.Fatalf("params.Load(bad inputs) = %v, want 3 validation errors", err)
		}
		inputs := writeJSONInputs(t, o, bad)

		// opera 0.7 checks no input value against its data type: validate lets them through.
		o.must("validate", "-i", inputs, csar)
		out, ok := o.run("deploy", "-i", inputs, csar)
		if ok {
			t.Fatalf("opera deploy of invalid inputs succeeded:\n%s", out)
		}
		for _, fe := range ve.Errors {
			want := fe.String()
			quoted, _ := json.Marshal(want) // opera prints the message inside the play's JSON stats
			if !strings.Contains(out, want) && !strings.Contains(out, strings.Trim(string(quoted), `"`)) {
				t.Errorf("opera's output does not show the schema message %q:\n%s", want, out)
			}
		}
		// It failed at the first operation: the only one opera ran.
		var ran []string
		for line := range strings.Lines(out) {
			if _, op, found := strings.Cut(line, "Executing "); found {
				ran = append(ran, strings.TrimSpace(op))
			}
		}
		if !slices.Equal(ran, []string{"create on images_0"}) {
			t.Errorf("opera ran %q, want only the first operation, create on images_0", ran)
		}
		noSecret(t, "opera deploy's output", out, pass)
		if found := filesWith(t, filepath.Join(o.dir, ".opera", "instances"), pass); len(found) > 0 {
			t.Errorf("the registry password is stored in .opera/instances: %v", found)
		}
		if d := testenv.RegistryDigest(t, reg+"/"+repo+":invalid", auth); d != "" {
			t.Errorf("invalid inputs pushed %s:invalid (%s)", repo, d)
		}
	})

	t.Run("checkout/no build host, docker config", func(t *testing.T) {
		// A template without a build host (built on the orchestrator host, opera's default), in
		// the checkout's layout; the registry credentials in a Docker config on that host instead
		// of the inputs: nothing opera writes holds the password. The builder is named explicitly.
		template := filepath.Join(stage, "no-host.yaml")
		if err := os.WriteFile(template, []byte(noHostTemplate), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(template) })
		dockerConfig := t.TempDir()
		cfg := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, reg, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
		if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp, rtmp := t.TempDir(), t.TempDir()
		o := newOpera(t, slices.Concat(baseEnv, remoteTmpEnv(rtmp), []string{"DOCKER_CONFIG=" + dockerConfig, "TMPDIR=" + tmp})...)
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
		out := o.must("deploy", "-i", inputs, template)
		t.Logf("opera deploy (template without build host, 2 images, BuildKit, Docker config): %s", time.Since(start).Round(time.Millisecond))
		noSecret(t, "opera deploy's output", out, pass)
		checkVariant(t, checkOutputs(t, o, refs("dc"), auth))
		ranOver(t, rtmp, "", pass)

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
