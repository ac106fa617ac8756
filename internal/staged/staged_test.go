package staged

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/promote"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

const paramsDoc = `source: {git_repo: {url: "https://example.com/r.git"}}
target:
  registry: {url: reg.example.com, username: u, password: params-secret, stage_tag: "c{{.Vars.change}}_{{.Tag}}"}
  images: [{image: team/app, tag: latest, tags: ["1.0"]}]
`

// TestLoad: build params and a family file, told apart by their keys, give the moves their
// staged build pushed; a family's declared variables set it, the others reach the stage tag; the
// secrets reach the redactor; a document that is neither says so.
func TestLoad(t *testing.T) {
	red := redact.New()
	req, err := Load([]byte(paramsDoc), Detect, Options{Vars: map[string]string{"change": "7"}, Redactor: red})
	if err != nil {
		t.Fatal(err)
	}
	want := []promote.Item{
		{Src: "reg.example.com/team/app:c7_latest", Dst: "reg.example.com/team/app:latest"},
		{Src: "reg.example.com/team/app:c7_1.0", Dst: "reg.example.com/team/app:1.0"},
	}
	if fmt.Sprint(req.Items) != fmt.Sprint(want) || len(req.RegistryOptions) == 0 {
		t.Errorf("params: items %v, %d registry options", req.Items, len(req.RegistryOptions))
	}
	if got := red.String("params-secret"); strings.Contains(got, "secret") {
		t.Errorf("the params' password is not masked: %q", got)
	}

	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"images/base/Dockerfile": "FROM scratch\n"})
	family := `registry: {url: reg.example.com, stage_tag: "{{.Vars.change}}-{{.Vars.release}}-{{.Tag}}"}
namespace: team
tag: v
variables: {release: "1"}
images_dir: images
`
	req, err = Load([]byte(family), Detect, Options{Dir: dir, Vars: map[string]string{"change": "9", "release": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(req.Items); got != "[{reg.example.com/team/base:9-2-v reg.example.com/team/base:v}]" {
		t.Errorf("family: items %s", got)
	}

	if _, err := Load([]byte("registry: {url: reg.example.com}\nimages_dir: images\n"), Family, Options{Dir: dir, Vars: map[string]string{"change": "9"}}); err == nil || !strings.Contains(err.Error(), "change: the family file declares no such variable") {
		t.Errorf("an undeclared var without a stage tag: %v", err)
	}
	if _, err := Load([]byte("registry: {url: reg.example.com}\nimages_dir: images\n"), Family, Options{Dir: dir}); !errors.Is(err, promote.ErrNothingStaged) {
		t.Errorf("a family without a stage tag: %v", err)
	}
	if _, err := Load([]byte("foo: 1\n"), Detect, Options{}); err == nil || !strings.Contains(err.Error(), "neither build params") {
		t.Errorf("neither: %v", err)
	}
}
