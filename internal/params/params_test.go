package params

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/redact"

	"github.com/imagebuilder/imagebuilder/schema"
)

const examplesDir = "../../examples/params"

// TestSchemaUpToDate fails when the committed schema differs from what the Go types generate.
func TestSchemaUpToDate(t *testing.T) {
	got, err := GenerateSchema(".")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(schema.BuildParams) {
		t.Fatalf("schema/build-params.schema.json is out of date with internal/params: run `make schema` and commit the result")
	}
}

func exampleFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.json", "*.yaml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("no examples in %s", dir)
	}
	return files
}

// TestExamplesValid: every SODALITE sample shape validates, as JSON and as its YAML twin, and
// both decode to the same params.
func TestExamplesValid(t *testing.T) {
	for _, f := range exampleFiles(t, examplesDir) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := LoadFile(f)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if !strings.HasSuffix(f, ".json") {
				return
			}
			twin := strings.TrimSuffix(f, ".json") + ".yaml"
			q, err := LoadFile(twin)
			if err != nil {
				t.Fatalf("YAML twin %s: %v", twin, err)
			}
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("%s and %s differ:\n%+v\n%+v", f, twin, p, q)
			}
		})
	}
}

// TestInvalidExamples: each invalid input fails with a message naming the pointer or the key.
func TestInvalidExamples(t *testing.T) {
	dir := filepath.Join(examplesDir, "invalid")
	data, err := os.ReadFile(filepath.Join(dir, "expected-errors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]string
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	files := exampleFiles(t, dir)
	if len(files)-1 < 20 { // minus expected-errors.json
		t.Fatalf("want at least 20 invalid examples, have %d", len(files)-1)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		if name == "expected-errors" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			exp, ok := want[name]
			if !ok {
				t.Fatalf("expected-errors.json has no entry for %s", name)
			}
			_, err := LoadFile(f)
			if err == nil {
				t.Fatal("accepted an invalid input")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), exp) {
				t.Errorf("error\n%s\ndoes not contain\n%s", err, exp)
			}
		})
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	_, err := Load([]byte(`{"source":{},"target":{"images":[{"image":"A"},{"tag":"x y"}]}}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	want := []string{
		"/source: no source given",
		"/target: missing property 'registry'",
		`/target/images/0/image: "A" is not a lowercase repository path`,
		"/target/images/0: missing property 'tag'",
		"/target/images/1: missing property 'image'",
		`/target/images/1/tag: "x y" is not a tag`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	if len(ve.Errors) != len(want) {
		t.Errorf("want %d errors, got %d:\n%v", len(want), len(ve.Errors), err)
	}
}

func TestSourceRules(t *testing.T) {
	reg := `"target":{"images":[{"image":"a","tag":"b"}],"registry":{"url":"r.io"}}`
	for _, tc := range []struct{ source, want string }{
		{`{"git_repo":{"url":"u"},"tar":{"path":"p"}}`, "git_repo and tar cannot be combined"},
		{`{"local":{"path":"p"},"build_context":{"url":"u"}}`, "local cannot be combined with build_context"},
		{`{"tar":{}}`, "/source/tar: missing path or url"},
		{`{"tar":{"path":"p","password":"x"}}`, "/source/tar: username and password apply only to url"},
		{`{"dockerfile":{"url":"https://h/D"},"build_context":{"url":"u","subdir":"/abs"}}`, `/source/build_context/subdir: "/abs" must be a relative path`},
		{`{"local":{"path":"p","dockerfile":"../D"}}`, `/source/local/dockerfile: "../D" leaves its root directory`},
	} {
		_, err := Load([]byte(`{"source":` + tc.source + `,` + reg + `}`))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("source %s: want error containing %q, got %v", tc.source, tc.want, err)
		}
	}
}

// TestBuilderPool: builder.endpoints is a pool of engines; with builder.endpoint it is refused
// with a message saying why, at /builder.
func TestBuilderPool(t *testing.T) {
	doc := `{"source":{"local":{"path":"."}},"target":{"images":[{"image":"a","tag":"b"}],"registry":{"url":"r.io"}},"builder":%s}`
	p, err := Load([]byte(fmt.Sprintf(doc, `{"endpoints":[{"endpoint":"unix:///a.sock","jobs":2},{"endpoint":"tcp://127.0.0.1:1234","platforms":["linux/arm64"]}]}`)))
	if err != nil || len(p.Builder.Endpoints) != 2 || p.Builder.Endpoints[0].Jobs != 2 || p.Builder.Endpoints[1].Platforms[0] != "linux/arm64" {
		t.Fatalf("%+v %v", p, err)
	}
	for _, tc := range []struct{ builder, want string }{
		{`{"endpoint":"docker","endpoints":[{"endpoint":"docker"}]}`, "/builder: endpoint and endpoints cannot be combined"},
		{`{"endpoints":[]}`, "/builder/endpoints: "},
		{`{"endpoints":[{"endpoint":"docker","jobs":0}]}`, "/builder/endpoints/0/jobs: "},
		{`{"endpoints":[{"endpoint":"docker","platforms":["linux"]}]}`, `/builder/endpoints/0/platforms/0: "linux" is not`},
	} {
		_, err := Load([]byte(fmt.Sprintf(doc, tc.builder)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("builder %s: want %q, got %v", tc.builder, tc.want, err)
		}
	}
}

func TestValidEdgeCases(t *testing.T) {
	for _, doc := range []string{
		// Any os/arch[/variant], not only SODALITE's seven.
		`{"source":{"local":{"path":"."}},"target":{"images":[{"image":"a","tag":"b","platforms":["linux/riscv64","windows/amd64","linux/arm64/v8"]}],"registry":{"url":"127.0.0.1:5000"}}}`,
		// Registry with a namespace path, IPv6 loopback, 128-char tag.
		`{"source":{"local":{"path":"."}},"target":{"images":[{"image":"a/b.c/d-e__f","tag":"` + strings.Repeat("t", 128) + `"}],"registry":{"url":"ghcr.io/team"}}}`,
		`{"source":{"local":{"path":"."}},"target":{"images":[{"image":"a","tag":"_x.Y-1"}],"registry":{"url":"[::1]:5000"}}}`,
		// YAML with comments and a BOM.
		"\xef\xbb\xbf# params\nsource:\n  local: {path: .}\ntarget:\n  images: [{image: a, tag: b, bases: {'golang:1.16': 'golang:1.22', '0': 'alpine:3'}}]\n  registry: {url: docker.io}\n",
	} {
		if _, err := Load([]byte(doc)); err != nil {
			t.Errorf("%s\n%v", doc, err)
		}
	}
	if _, err := Load([]byte(`{"source":{"local":{"path":"."}},"target":{"images":[{"image":"a","tag":"` + strings.Repeat("t", 129) + `"}],"registry":{"url":"r"}}}`)); err == nil {
		t.Error("accepted a 129-character tag")
	}
}

func TestWithDefaults(t *testing.T) {
	p, err := Load([]byte(`{"source":{"git_repo":{"url":"u"}},"target":{"images":[{"image":"a","tag":"b","tags":["b","c"]}],"registry":{"url":"r.io/"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	d := p.WithDefaults()
	if g := d.Source.GitRepo; g.Version != "HEAD" || g.Dockerfile != "Dockerfile" || g.Workdir != "." {
		t.Errorf("defaults not applied: %+v", g)
	}
	if p.Source.GitRepo.Version != "" {
		t.Error("WithDefaults modified its receiver")
	}
	img := d.Target.Images[0]
	if got := d.Target.Ref(img); got != "r.io/a:b" {
		t.Errorf("Ref = %q", got)
	}
	if got := img.AllTags(); !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Errorf("AllTags = %q", got)
	}
}

func TestAddSecrets(t *testing.T) {
	p, err := LoadFile(filepath.Join(examplesDir, "dockerfile-build-context-subdir.json"))
	if err != nil {
		t.Fatal(err)
	}
	p.Secrets = map[string]Secret{"tok": {Value: "inline-secret-value"}}
	p.Target.Images[0].Secrets = map[string]Secret{"img": {Value: "image-secret-value"}, "env": {Env: "HOME"}}
	p.Source.Dockerfile.URL += "?token=query-token-123"
	red := redact.New()
	p.AddSecrets(red)
	for _, s := range []string{"password_or_token", "git_password", "password", "inline-secret-value", "image-secret-value", "query-token-123",
		base64.StdEncoding.EncodeToString([]byte("user:password"))} {
		if got := red.String("[" + s + "]"); got != "["+redact.Mask+"]" {
			t.Errorf("%q is not masked: %q", s, got)
		}
	}
	if got := red.String("user HOME"); got != "user HOME" {
		t.Errorf("a non-secret was masked: %q", got)
	}
}

// TestValidationHidesSecrets: messages about bad input never quote a secret field's value,
// nor the credentials a URL carries.
func TestValidationHidesSecrets(t *testing.T) {
	doc := `{
  "source": {"dockerfile": {"url": "ftp://h/Dockerfile?token=tok-canary-1", "username": "u", "password": 12345678},
             "build_context": {"url": "https://u:pw-canary-2@h/r.git", "subdir": "/abs"}},
  "target": {"images": [{"image": "a", "tag": "1", "secrets": {"s": {"value": true}, "bad id!": {"value": "val-canary-3"}}}],
             "registry": {"url": "bob:R3gPW-canary@registry.io", "username": "u", "password": "reg-canary-4"}}
}`
	_, err := Load([]byte(doc))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a ValidationError, got %v", err)
	}
	msg := err.Error()
	for _, canary := range []string{"tok-canary-1", "pw-canary-2", "val-canary-3", "R3gPW-canary", "reg-canary-4", "12345678"} {
		if strings.Contains(msg, canary) {
			t.Errorf("%q in the messages:\n%s", canary, msg)
		}
	}
	for _, want := range []string{
		`/target/registry/url: "registry.io" is not a registry`,
		`/source/dockerfile/url: "ftp://h/Dockerfile?token=********" is not an http:// or https:// URL`,
		`/target/images/0/secrets: key "bad id!" is not a secret id`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	// The same with valid schema, failing a rule the schema cannot express.
	_, err = Load([]byte(`{"source": {"git_repo": {"url": "https://x:pw-canary-5@h/r.git", "workdir": "../up"}},
  "target": {"images": [{"image": "a", "tag": "1"}], "registry": {"url": "r.io"}}}`))
	if err == nil || strings.Contains(err.Error(), "pw-canary-5") || !strings.Contains(err.Error(), `"../up" leaves its root directory`) {
		t.Errorf("got %v", err)
	}
}

// FuzzLoad: arbitrary bytes never panic, and whatever is accepted survives a round trip.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{examplesDir, filepath.Join(examplesDir, "invalid")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Load(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Load(again); err != nil {
			t.Fatalf("accepted %q but not its re-encoding %s: %v", data, again, err)
		}
	})
}

// TestSuggestions: a misspelt key gets the closest name of its own object, never one from
// elsewhere in the schema.
func TestSuggestions(t *testing.T) {
	for doc, want := range map[string]string{
		`{"source": {"url": "x"}, "target": {"images": [{"image": "a", "tag": "1"}], "registry": {"url": "r.io"}}}`:                                               `/source: unknown property "url"` + "\n",
		`{"source": {"local": {"path": "."}}, "target": {"images": [{"image": "a", "tag": "1", "platfroms": []}], "registry": {"url": "r.io"}}}`:                  `(did you mean "platforms"?)`,
		`{"source": {"local": {"path": "."}}, "target": {"images": [{"image": "a", "tag": "1"}], "registry": {"url": "r.io"}}, "secrets": {"s": {"vaule": "v"}}}`: `/secrets/s: unknown property "vaule" (did you mean "value"?)`,
		`{"source": {"local": {"path": "."}}, "target": {"images": [{"image": "a", "tag": "1"}], "registry": {"url": "r.io", "pasword": "p"}}}`:                   `(did you mean "password"?)`,
	} {
		_, err := Load([]byte(doc))
		if err == nil || !strings.Contains(err.Error()+"\n", want) {
			t.Errorf("%s:\n%v\nwant %q", doc, err, want)
		}
	}
}

// TestSSHShorthand: ssh: default (the and buildx's spelling) stands for ssh: [default],
// at the top level and in an image; anything else that is not a list is still refused.
func TestSSHShorthand(t *testing.T) {
	p, err := Load([]byte(`{"source": {"local": {"path": "."}}, "ssh": "default",
  "target": {"images": [{"image": "a", "tag": "1", "ssh": "github=/k"}], "registry": {"url": "r.io"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.SSH, []string{"default"}) || !slices.Equal(p.Target.Images[0].SSH, []string{"github=/k"}) {
		t.Errorf("ssh = %q, image ssh = %q", p.SSH, p.Target.Images[0].SSH)
	}
	if _, err := Load([]byte(`{"source": {"local": {"path": "."}}, "ssh": true,
  "target": {"images": [{"image": "a", "tag": "1"}], "registry": {"url": "r.io"}}}`)); err == nil || !strings.Contains(err.Error(), "/ssh:") {
		t.Errorf("ssh: true: %v", err)
	}
}
