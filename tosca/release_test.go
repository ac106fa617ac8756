package tosca_test

// Tests of imagebuilder.nodes.ImagePromotion and the release service template: its attributes'
// data types mirror the promote's facts (internal/result), the example inputs are valid build
// params with a stage tag, and the real opera builds staged and promotes in one deployment.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/invopop/jsonschema"
	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
	"github.com/imagebuilder/imagebuilder/internal/tosca"
)

const (
	releaseTemplate   = "release.yaml"
	promotionNodeType = "imagebuilder.nodes.ImagePromotion"
)

// promotionResultTypes are the data types that mirror the promote's facts.
var promotionResultTypes = []string{"PromotedImage", "PromotedTag"}

// TestPromotionTypesMirror: the promotion's attributes are the image_promote module's facts
// (images: internal/result's PromotedImage, digests), and it requires the staged node.
func TestPromotionTypesMirror(t *testing.T) {
	d, err := tosca.Load(dataTypesFile, nodeTypesFile, releaseTemplate)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal((&jsonschema.Reflector{}).Reflect(&result.PromotedImage{}))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := tosca.ParseSchema(data)
	if err != nil {
		t.Fatal(err)
	}
	if defs := rs.Defs(); strings.Join(defs, ",") != strings.Join(promotionResultTypes, ",") {
		t.Errorf("internal/result's PromotedImage reflects to %v, want %v", defs, promotionResultTypes)
	}
	rm := tosca.Mirror{Schema: rs, TypeName: func(def string) string { return typePrefix + def }}
	reportDisagreements(t, "promotion data types and internal/result", rm.DataTypes(d.DataTypes, rs.Defs()...))
	nt, ok := d.NodeTypes[promotionNodeType]
	if !ok {
		t.Fatalf("node type %s is missing", promotionNodeType)
	}
	for attr, want := range map[string][2]string{"images": {"list", typePrefix + "PromotedImage"}, "digests": {"map", "string"}} {
		a := nt.Attributes[attr]
		if a.Type != want[0] || a.EntrySchema == nil || a.EntrySchema.Type != want[1] {
			t.Errorf("attribute %s = %+v, want a %s of %s", attr, a, want[0], want[1])
		}
	}
	if r, ok := nt.Requirement("staged"); !ok || r.Relationship != "tosca.relationships.DependsOn" {
		t.Errorf("requirement staged = %+v, want a DependsOn", r)
	}
}

// TestReleaseExampleInputs: the release template's example inputs are valid build params with a
// stage tag (once Ansible has rendered the raw block), and every one is an input of the template.
func TestReleaseExampleInputs(t *testing.T) {
	data, err := os.ReadFile("examples/release/inputs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var inputs map[string]any
	if err := yaml.UnmarshalStrict(data, &inputs); err != nil {
		t.Fatal(err)
	}
	d, err := tosca.Load(dataTypesFile, nodeTypesFile, releaseTemplate)
	if err != nil {
		t.Fatal(err)
	}
	for name := range inputs {
		if _, ok := d.TopologyTemplate.Inputs[name]; !ok {
			t.Errorf("examples/release/inputs.yaml: %s is not an input of %s", name, releaseTemplate)
		}
	}
	raw, _ := json.Marshal(map[string]any{"source": inputs["source"], "target": inputs["target"], "builder": inputs["builder"]})
	raw = []byte(strings.NewReplacer("{% raw %}", "", "{% endraw %}", "").Replace(string(raw)))
	p, err := params.Load(raw)
	if err != nil {
		t.Fatalf("examples/release/inputs.yaml: %v", err)
	}
	if p.Target.Registry.StageTag != "change_{{.Vars.change}}_{{.Tag}}" {
		t.Errorf("stage_tag once rendered = %q", p.Target.Registry.StageTag)
	}
}

// releaseOutputs is what `opera outputs -f json` prints for the release template.
type releaseOutputs struct {
	Staged struct {
		Value []result.Image `json:"value"`
	} `json:"staged"`
	Images struct {
		Value []result.PromotedImage `json:"value"`
	} `json:"images"`
	Digests struct {
		Value map[string]string `json:"value"`
	} `json:"digests"`
}

// TestOperaReleaseDeploy deploys the release template of the staged CSAR with the real opera: a
// small image built through ImageBuild with a stage tag (written in a raw block, as the example
// inputs do) and the change 5, staged as change_5_latest and change_5_1.0, then promoted through
// ImagePromotion: the outputs give the staged tags and digest, and the final tags, which the
// registry serves at exactly the staged digest; the stage tags are gone.
func TestOperaReleaseDeploy(t *testing.T) {
	env := testenv.Require(t, testenv.OperaBin, testenv.Registry, testenv.BuildKit)
	stage, _ := buildCSAR(t)
	reg := env[testenv.Registry]
	ns := testenv.UniqueTag("tosca-release")
	repo := reg + "/" + ns + "/app"
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
		"hello.txt":  "released by opera " + ns + "\n",
	})
	o := newOpera(t, "DOCKER_CONFIG="+t.TempDir())
	inputs := o.writeInputs("inputs.yaml", fmt.Appendf(nil, `source: {local: {path: %q}}
target:
  images: [{image: %s/app, tag: latest, tags: ["1.0"]}]
  registry: {url: %q, stage_tag: "{%% raw %%}change_{{.Vars.change}}_{{.Tag}}{%% endraw %%}"}
builder: {endpoint: %q}
vars: {change: "5"}
`, dir, ns, reg, env[testenv.BuildKit]))

	start := time.Now()
	o.must("deploy", "-i", inputs, filepath.Join(stage, releaseTemplate))
	t.Logf("opera deploy (release template: staged build of 1 image, promote): %s", time.Since(start).Round(time.Millisecond))
	outs := o.must("outputs", "-f", "json")
	var got releaseOutputs
	if err := json.Unmarshal([]byte(outs), &got); err != nil {
		t.Fatalf("opera outputs -f json: %v\n%s", err, outs)
	}
	if len(got.Staged.Value) != 1 {
		t.Fatalf("outputs staged: %s", outs)
	}
	built := got.Staged.Value[0].Digest
	if st := got.Staged.Value[0].StageTags; built == "" || strings.Join(st, ",") != "change_5_latest,change_5_1.0" {
		t.Errorf("staged: digest %q, stage tags %v", built, st)
	}
	digest := func(tag string) string { return testenv.RegistryDigest(t, repo+":"+tag, nil) }
	for _, tag := range []string{"latest", "1.0"} {
		if d := digest(tag); d != built || got.Digests.Value[repo+":"+tag] != built {
			t.Errorf("%s: the registry serves %q, outputs digests say %q, the staged build made %q", tag, d, got.Digests.Value[repo+":"+tag], built)
		}
	}
	for _, tag := range []string{"change_5_latest", "change_5_1.0"} {
		if d := digest(tag); d != "" {
			t.Errorf("the stage tag %s still serves %s", tag, d)
		}
	}
	if len(got.Images.Value) != 1 || len(got.Images.Value[0].Promoted) != 2 || len(got.Images.Value[0].Deleted) != 2 {
		t.Errorf("outputs images: %+v", got.Images.Value)
	}
}
