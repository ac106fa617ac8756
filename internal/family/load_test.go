package family

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/schema"
)

// TestSchemaUpToDate fails when the committed schema differs from what the Go types generate.
func TestSchemaUpToDate(t *testing.T) {
	got, err := GenerateSchema(".")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(schema.Family) {
		t.Fatalf("schema/family.schema.json is out of date with internal/family: run `make schema` and commit the result")
	}
}

const okFile = `
registry: {url: 127.0.0.1:5000}
namespace: team
sources:
  app: {local: {path: ./app}}
images:
  - {name: base}
  - {name: child, context: child}
`

func TestLoadValid(t *testing.T) {
	f, err := Load([]byte(okFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Images) != 2 || f.Images[1].Context != "child" || f.Sources["app"].Local.Path != "./app" {
		t.Fatalf("decoded %+v", f)
	}
}

// TestLoadErrors: each problem is reported at the JSON pointer of the offending value, all at
// once, and wraps params.ErrInvalid.
func TestLoadErrors(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"bad name": {`{"registry":{"url":"r"},"sources":{"a":{"local":{"path":"."}}},"images":[{"name":"a"},{"name":"b"},{"name":"Bad"}]}`,
			`/images/2/name: "Bad" is not a lowercase repository path`},
		"unknown image key": {`{"registry":{"url":"r"},"sources":{"a":{"local":{"path":"."}}},"images":[{"name":"a","dockerfiel":"x"}]}`,
			`/images/0: unknown property "dockerfiel" (did you mean "dockerfile"?)`},
		"unknown top key": {`{"registry":{"url":"r"},"imags":[]}`,
			`/: unknown property "imags" (did you mean "images"?)`},
		"unknown key of an inline source": {`{"registry":{"url":"r"},"images":[{"name":"a","source":{"local":{"path":".","workdri":"x"}}}]}`,
			`/images/0/source/local: unknown property "workdri" (did you mean "workdir"?)`},
		"empty inline source": {`{"registry":{"url":"r"},"images":[{"name":"a","source":{}}]}`,
			`/images/0/source: no source given`},
		"unknown source": {`{"registry":{"url":"r"},"sources":{"app":{"local":{"path":"."}}},"images":[{"name":"a","source":"nope"}]}`,
			`/images/0/source: no source named "nope" (sources: app)`},
		"no default source": {`{"registry":{"url":"r"},"images":[{"name":"a"}]}`,
			`/images/0: no source: set source`},
		"duplicate name": {`{"registry":{"url":"r"},"sources":{"a":{"local":{"path":"."}}},"images":[{"name":"a"},{"name":"a"}]}`,
			`/images/1/name: "a" is also the name of /images/0`},
		"component escapes": {`{"registry":{"url":"r"},"sources":{"a":{"local":{"path":"."}}},"images":[{"name":"a","components":[{"source":"a","path":"../x","dest":"d"}]}]}`,
			`/images/0/components/0/path: "../x" leaves its root directory`},
		"component unknown source": {`{"registry":{"url":"r"},"sources":{"a":{"local":{"path":"."}}},"images":[{"name":"a","components":[{"source":"b","dest":"d"}]}]}`,
			`/images/0/components/0/source: no source named "b"`},
		"context escapes": {`{"registry":{"url":"r"},"sources":{"a":{"local":{"path":"."}}},"images":[{"name":"a","context":"/etc"}]}`,
			`/images/0/context: "/etc" must be a relative path`},
		"reserved variable": {`{"registry":{"url":"r"},"variables":{"Git":"x"}}`,
			`/variables: "Git" is reserved`},
		"variable name": {`{"registry":{"url":"r"},"variables":{"a-b":"x"}}`,
			`/variables: key "a-b" is not a variable name`},
		"build arg name": {`{"registry":{"url":"r"},"sources":{"a":{"local":{"path":"."}}},"images":[{"name":"a","build_args":{"1x":"y"}}]}`,
			`/images/0/build_args: key "1x" is not a variable name`},
		"source name": {`{"registry":{"url":"r"},"sources":{"a b":{"local":{"path":"."}}}}`,
			`/sources: key "a b" is not a source name`},
		"bad tag template": {`{"registry":{"url":"r"},"tag":"{{ .x"}`,
			`/tag: not a valid template`},
		"source with dockerfile": {`{"registry":{"url":"r"},"sources":{"a":{"git_repo":{"url":"u","dockerfile":"D"}}}}`,
			`/sources/a/git_repo/dockerfile: a family source names no Dockerfile`},
		"bad pull": {`{"registry":{"url":"r"},"pull":["UP:x"]}`,
			`/pull/0: "UP:x" is not a valid image reference`},
		"platform": {`{"registry":{"url":"r"},"platforms":["amd64"]}`,
			`/platforms/0: "amd64" is not a platform`},
		"pool": {`{"registry":{"url":"r"},"builder":{"endpoints":[{"endpoint":"unix:///x","jobs":0}]}}`,
			`/builder/endpoints/0/jobs: minimum`},
		"no registry": {`{"images":[]}`, `/: missing property 'registry'`},
		"not yaml":    {"registry: [", `/: not valid YAML`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load([]byte(tc.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, params.ErrInvalid) {
				t.Errorf("does not wrap ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n%v\ndoes not contain\n%s", err, tc.want)
			}
		})
	}
}

// TestLoadHidesSecrets: a secret value (writeOnly) never appears in an error, also when a
// message quotes a value equal to it.
func TestLoadHidesSecrets(t *testing.T) {
	const secret = "Hunter2 Secret"
	doc := `{"registry":{"url":"r","username":"u","password":"` + secret + `"},
	  "secrets":{"tok":{"value":"` + secret + `","env":"X"}},
	  "sources":{"a":{"git_repo":{"url":"https://u:` + "pw-in-url" + `@host/r","password":"` + secret + `","usernme":"x"}}},
	  "tag":"` + secret + `", "tags":["x"], "images":[{"name":"a","tags":["` + secret + `"],"platforms":["` + secret + `"]}]}`
	_, err := Load([]byte(doc))
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, want := range []string{"/secrets/tok: env and value cannot be combined", `/images/0/platforms/0:`, `unknown property "usernme" (did you mean "username"?)`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error\n%s\nlacks %s", msg, want)
		}
	}
	if strings.Contains(msg, secret) || strings.Contains(msg, "Hunter2") || strings.Contains(msg, "pw-in-url") {
		t.Fatalf("error shows a secret:\n%s", msg)
	}
}

func TestLoadFileSetsDir(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "family.yaml")
	if err := os.WriteFile(name, []byte(okFile), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if f.Dir != dir {
		t.Fatalf("Dir = %q, want %q", f.Dir, dir)
	}
}

func FuzzLoadFamily(f *testing.F) {
	f.Add([]byte(okFile))
	f.Add([]byte(`{"registry":{"url":"r"},"images_dir":"docker","images":[{"name":"a","source":{"git_repo":{"url":"u"}},"tags":["{{ .Date }}"]}]}`))
	f.Add([]byte(`{"registry":{"url":"r"},"sources":{"a":{"local":{"path":"."}}},"images":[{"name":"a","components":[{"source":"a","dest":"d"}],"ssh":"default","enabled":false}]}`))
	if files, _ := filepath.Glob("testdata/*.yaml"); len(files) > 0 {
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Load(data)
		if err != nil {
			if !errors.Is(err, params.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		again, err := json.Marshal(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Load(again); err != nil {
			t.Fatalf("accepted %q but not its re-encoding %s: %v", data, again, err)
		}
	})
}

// TestReadmeExample: the README's family file example loads.
func TestReadmeExample(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "## Image families: the family file")
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	example, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no family file example under \"## Image families: the family file\"")
	}
	if _, err := Load([]byte(example)); err != nil {
		t.Fatalf("the README's example does not load:\n%v", err)
	}
}
