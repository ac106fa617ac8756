package tosca_test

// Tests of imagebuilder.nodes.ImageFamily and the family service template: the run options
// mirror the image_family module's options schema, the report's data types mirror
// internal/result, the example inputs are a valid family, and the real opera deploys a family.

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/invopop/jsonschema"
	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
	"github.com/imagebuilder/imagebuilder/internal/tosca"
)

const (
	familyTemplate = "family.yaml"
	familyNodeType = "imagebuilder.nodes.ImageFamily"
	// The module's own options (the run options), mirrored by the node type's properties.
	runOptionsSchema = "../modules/image_family/options.schema.json"
)

// familyProps are the node type's properties (and the template's inputs) that are not run
// options: the family itself.
var familyProps = []string{"family", "family_file"}

// TestFamilyTypesMirror: the node type's properties and the family template's inputs are the
// family (a map: TOSCA cannot type its unions, the module validates it) plus the image_family
// module's run options, property for property (types, required, defaults, descriptions); the
// attributes' data types mirror the family report (internal/result).
func TestFamilyTypesMirror(t *testing.T) {
	data, err := os.ReadFile(runOptionsSchema)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tosca.ParseSchema(data)
	if err != nil {
		t.Fatal(err)
	}
	d, err := tosca.Load(dataTypesFile, nodeTypesFile, familyTemplate)
	if err != nil {
		t.Fatal(err)
	}
	m := tosca.Mirror{Schema: s, TypeName: func(def string) string { return typePrefix + def }}
	nt, ok := d.NodeTypes[familyNodeType]
	if !ok {
		t.Fatalf("node type %s is missing", familyNodeType)
	}
	props := maps.Clone(nt.Properties)
	inputs := maps.Clone(d.TopologyTemplate.Inputs)
	for _, name := range familyProps {
		p, ok := props[name]
		if !ok || p.IsRequired() {
			t.Errorf("%s.%s = %+v, want an optional property", familyNodeType, name, p)
		}
		if in, ok := inputs[name]; !ok || in.Type != p.Type || in.IsRequired() {
			t.Errorf("input %s = %+v, want an optional %s", name, in, p.Type)
		}
		delete(props, name)
		delete(inputs, name)
	}
	if in := inputs["build_host"]; in.Type != "string" || in.IsRequired() || in.Default != "localhost" {
		t.Errorf("input build_host = %+v, want an optional string defaulting to localhost", in)
	}
	delete(inputs, "build_host")
	reportDisagreements(t, familyNodeType+" properties and the run options", m.Properties(familyNodeType, props, "RunOptions"))
	reportDisagreements(t, familyTemplate+" inputs and the run options", m.Properties("inputs", inputs, "RunOptions"))

	// The report's data types.
	for _, v := range []any{&result.FamilyImage{}, &result.Failure{}} {
		data, err := json.Marshal((&jsonschema.Reflector{}).Reflect(v))
		if err != nil {
			t.Fatal(err)
		}
		rs, err := tosca.ParseSchema(data)
		if err != nil {
			t.Fatal(err)
		}
		rm := tosca.Mirror{Schema: rs, TypeName: func(def string) string { return typePrefix + def }}
		reportDisagreements(t, "family report data types and internal/result", rm.DataTypes(d.DataTypes, rs.Defs()...))
	}
	for attr, want := range map[string][2]string{
		"images": {"list", typePrefix + "FamilyImage"}, "failed": {"list", typePrefix + "Failure"},
		"digests": {"map", "string"}, "totals": {"map", "integer"}, "builder": {"map", "string"},
	} {
		a := nt.Attributes[attr]
		if a.Type != want[0] || a.EntrySchema == nil || a.EntrySchema.Type != want[1] {
			t.Errorf("attribute %s = %+v, want a %s of %s", attr, a, want[0], want[1])
		}
	}
}

// familyResultTypes are the data types that mirror the family report.
var familyResultTypes = []string{"FamilyImage", "PlatformDigest", "Parent", "Failure"}

// TestFamilyExampleInputs: the example inputs of the family template are a valid family file
// and valid run options.
func TestFamilyExampleInputs(t *testing.T) {
	data, err := os.ReadFile("examples/family/inputs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var inputs map[string]any
	if err := yaml.UnmarshalStrict(data, &inputs); err != nil {
		t.Fatal(err)
	}
	fam, _ := inputs["family"].(map[string]any)
	if _, err := family.FromMap(fam); err != nil {
		t.Errorf("examples/family/inputs.yaml: family: %v", err)
	}
	d, err := tosca.Load(dataTypesFile, nodeTypesFile, familyTemplate)
	if err != nil {
		t.Fatal(err)
	}
	for name := range inputs {
		if _, ok := d.TopologyTemplate.Inputs[name]; !ok {
			t.Errorf("examples/family/inputs.yaml: %s is not an input of %s", name, familyTemplate)
		}
	}
}

// familyOutputs is what `opera outputs -f json` prints for the family template.
type familyOutputs struct {
	Images struct {
		Value []result.FamilyImage `json:"value"`
	} `json:"images"`
	Digests struct {
		Value map[string]string `json:"value"`
	} `json:"digests"`
	Totals struct {
		Value map[string]int `json:"value"`
	} `json:"totals"`
	Failed struct {
		Value []result.Failure `json:"value"`
	} `json:"failed"`
	Builder struct {
		Value result.Builder `json:"value"`
	} `json:"builder"`
}

// TestOperaFamilyDeploy deploys the family template of the staged CSAR with the real opera on
// the orchestrator host: a family file (read with family_file, tag templates included) of two
// images, base and app FROM base, into the htpasswd registry. The outputs give every tag with
// the digest the registry serves, the decisions and totals; deploying again skips both; an
// inline family with a misspelt key fails at create with the schema's message. The registry
// password (in the family file) never appears in opera's output or state.
func TestOperaFamilyDeploy(t *testing.T) {
	env := testenv.Require(t, testenv.OperaBin, testenv.AuthRegistry, testenv.AuthUser, testenv.AuthPassword,
		authBaseEnv, testenv.BuildKit)
	stage, _ := buildCSAR(t)
	reg, user, pass := env[testenv.AuthRegistry], env[testenv.AuthUser], env[testenv.AuthPassword]
	auth := testenv.Basic(user, pass)
	ns := fmt.Sprintf("tosca-family-%d", time.Now().UnixNano())
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{
		"images/base/Dockerfile": "FROM " + env[authBaseEnv] + "\nCOPY base.txt /base.txt\n",
		"images/base/base.txt":   "base\n",
		"images/app/Dockerfile":  fmt.Sprintf("FROM %s/%s/base:v1\nCOPY app.txt /app.txt\n", reg, ns),
		"images/app/app.txt":     "app\n",
		"family.yaml": fmt.Sprintf(`registry: {url: %q, username: %q, password: %q}
namespace: %s
tag: "{{ .release }}"
variables: {release: v1}
builder: {endpoint: %q}
images_dir: images
`, reg, user, pass, ns, env[testenv.BuildKit]),
	})
	o := newOpera(t, "DOCKER_CONFIG="+t.TempDir())
	inputs := o.writeInputs("inputs.yaml", fmt.Appendf(nil, "family_file: %s\njobs: 2\n", filepath.Join(dir, "family.yaml")))
	template := filepath.Join(stage, familyTemplate)

	start := time.Now()
	out := o.must("deploy", "-i", inputs, template)
	t.Logf("opera deploy (family template, 2 images, BuildKit): %s", time.Since(start).Round(time.Millisecond))
	noSecret(t, "opera deploy's output", out, pass)
	outs := o.must("outputs", "-f", "json")
	noSecret(t, "opera outputs", outs, pass)
	if found := filesWith(t, filepath.Join(o.dir, ".opera"), pass); len(found) > 0 {
		t.Errorf("the registry password is stored in .opera/%v", found)
	}
	var got familyOutputs
	if err := json.Unmarshal([]byte(outs), &got); err != nil {
		t.Fatalf("opera outputs -f json: %v\n%s", err, outs)
	}
	var decided []string
	for _, img := range got.Images.Value {
		decided = append(decided, img.Name+":"+img.Decision)
	}
	if !slices.Equal(decided, []string{"base:build", "app:build", env[authBaseEnv] + ":pull"}) {
		t.Errorf("outputs images decided %v, want base and app built, the base pulled", decided)
	}
	if got.Totals.Value["build"] != 2 || len(got.Failed.Value) != 0 || got.Builder.Value.Kind != "buildkit" {
		t.Errorf("outputs totals %v, failed %v, builder %+v", got.Totals.Value, got.Failed.Value, got.Builder.Value)
	}
	if len(got.Digests.Value) != 2 {
		t.Errorf("outputs digests %v, want the two images' tags", got.Digests.Value)
	}
	for _, name := range []string{"base", "app"} {
		ref := reg + "/" + ns + "/" + name + ":v1" // the tag template, rendered
		if want := testenv.RegistryDigest(t, ref, auth); want == "" || got.Digests.Value[ref] != want {
			t.Errorf("outputs digests[%s] = %q, the registry serves %q", ref, got.Digests.Value[ref], want)
		}
	}

	t.Run("again", func(t *testing.T) {
		o2 := newOpera(t, "DOCKER_CONFIG="+t.TempDir())
		o2.must("deploy", "-i", o2.writeInputs("inputs.yaml", fmt.Appendf(nil, "family_file: %s\n", filepath.Join(dir, "family.yaml"))), template)
		var again familyOutputs
		if err := json.Unmarshal([]byte(o2.must("outputs", "-f", "json")), &again); err != nil {
			t.Fatal(err)
		}
		if again.Totals.Value["skip"] != 2 || again.Totals.Value["build"] != 0 || fmt.Sprint(again.Digests.Value) != fmt.Sprint(got.Digests.Value) {
			t.Errorf("a second deploy: totals %v, digests %v, want both skipped at the same digests", again.Totals.Value, again.Digests.Value)
		}
	})

	t.Run("invalid inline family", func(t *testing.T) {
		o3 := newOpera(t, "DOCKER_CONFIG="+t.TempDir())
		bad := fmt.Sprintf("family:\n  registry: {url: %q, username: %q, password: %q}\n  images:\n    - {name: app, platfroms: [linux/amd64]}\ndir: %s\n",
			reg, user, pass, dir)
		out, ok := o3.run("deploy", "-i", o3.writeInputs("inputs.yaml", []byte(bad)), template)
		if ok {
			t.Fatalf("opera deploy of an invalid family succeeded:\n%s", out)
		}
		want := `/images/0: unknown property \"platfroms\" (did you mean \"platforms\"?)`
		if !strings.Contains(out, want) {
			t.Errorf("opera's output does not show %s:\n%s", want, out)
		}
		noSecret(t, "opera deploy's output", out, pass)
	})
}
