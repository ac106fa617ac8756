package convert

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/params"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestImportGolden converts the samples written from the seeds' text and compares with the
// golden family files, which must load as family files too.
func TestImportGolden(t *testing.T) {
	for _, tc := range []struct {
		from, in, golden string
		opts             ImportOptions
		to               params.Format
	}{
		{FromCORD, "cord/docker_images.yml", "cord/family.repo-root.yaml", ImportOptions{RepoRoot: "cord-src"}, params.YAML},
		{FromCORD, "cord/docker_images.yml", "cord/family.repo-url.json", ImportOptions{RepoURL: "https://gerrit.opencord.org/{{.Repo}}", Registry: "127.0.0.1:5000"}, params.JSON},
		{FromZuul, "zuul/zuul.yaml", "zuul/family.yaml", ImportOptions{}, params.YAML},
		{FromZuul, "zuul/zuul.yaml", "zuul/family.repo-url.yaml", ImportOptions{RepoURL: "https://{{.Repo}}"}, params.YAML},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Import(tc.from, data, tc.opts, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("%s differs (go test ./internal/convert -run TestImportGolden -update):\n%s", golden, got)
			}
			if _, err := family.Load(want); err != nil {
				t.Fatalf("the golden file does not load: %v", err)
			}
		})
	}
}

// TestImportMapping checks the meaning of the conversion, not only its bytes.
func TestImportMapping(t *testing.T) {
	data, _ := os.ReadFile("testdata/cord/docker_images.yml")
	f, err := ImportCORD(data, ImportOptions{RepoRoot: "/src"})
	if err != nil {
		t.Fatal(err)
	}
	client := f.Images[2]
	if client.Name != "xosproject/xos-client" || client.Source.Name != "xos" || client.Context != "containers/xos" ||
		client.Dockerfile != "Dockerfile.client" || len(client.Components) != 1 ||
		client.Components[0] != (family.Component{Source: "chameleon", Dest: "tmp.chameleon"}) {
		t.Errorf("xos-client: %+v", client)
	}
	if f.Sources["chameleon"].Local.Path != "/src/chameleon" || f.Tag != "candidate" || len(f.Pull) != 3 {
		t.Errorf("sources %+v, tag %q, pull %v", f.Sources, f.Tag, f.Pull)
	}

	data, _ = os.ReadFile("testdata/zuul/zuul.yaml")
	z, err := ImportZuul(data, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(z.Images) != 4 {
		t.Fatalf("images %d (the shared list counts once)", len(z.Images))
	}
	base, server, tools, docs := z.Images[0], z.Images[1], z.Images[2], z.Images[3]
	if base.Tag != "latest" || len(base.Tags) != 1 || base.Tags[0] != "1.0" || base.Target != "base" {
		t.Errorf("base %+v", base)
	}
	if server.BuildArgs["ZUUL_SIBLINGS"] != "opendev.org/myorg/mylib" || server.BuildArgs["PIP_INDEX_URL"] != "https://pypi.example.org/simple" ||
		server.Components[0].Dest != ".zuul-siblings/opendev.org/myorg/mylib" || len(server.Platforms) != 2 {
		t.Errorf("server %+v", server)
	}
	if src := z.Sources[server.Components[0].Source]; src.Local == nil || src.Local.Path != "../opendev.org/myorg/mylib" {
		t.Errorf("sibling source %+v", src)
	}
	if tools.Context != "" || tools.Dockerfile != "images/tools/Dockerfile" {
		t.Errorf("tools (path ../..): context %q dockerfile %q", tools.Context, tools.Dockerfile)
	}
	if docs.Context != "images/docs" || docs.Dockerfile != "Dockerfile.docs" {
		t.Errorf("docs %+v", docs)
	}
}

func TestImportForms(t *testing.T) {
	for name, tc := range map[string]struct {
		from, doc, want string
	}{
		"zuul list":               {FromZuul, "- {context: ., repository: org/a}\n", "name: org/a"},
		"zuul vars":               {FromZuul, "docker_images: [{context: ., repository: org/a, tags: [v1]}]\n", "tag: v1"},
		"zuul arg without value":  {FromZuul, "- {context: ., repository: org/a, build_args: [FOO]}\n", `"FOO" has no value`},
		"zuul dockerfile outside": {FromZuul, "- {context: a, path: b, repository: org/a}\n", "lies outside the directory docker build is given"},
		"zuul nothing":            {FromZuul, "a: 1\n", "no docker_images found"},
		"zuul bad repository":     {FromZuul, "- {context: ., repository: Org/A}\n", `/images/0/name: "Org/A" is not a lowercase repository path`},
		"cord nothing":            {FromCORD, "a: 1\n", "is this CORD's docker_images.yml?"},
		"cord missing repo":       {FromCORD, "buildable_images: [{name: a}]\n", "/buildable_images/0: name and repo are required"},
		"cord both flags":         {FromCORD, "buildable_images: [{name: a, repo: r}]\n", "cannot be combined"},
		"unknown format":          {"kolla", "a: 1\n", `unknown format "kolla"`},
	} {
		t.Run(name, func(t *testing.T) {
			opts := ImportOptions{}
			if name == "cord both flags" {
				opts = ImportOptions{RepoRoot: "a", RepoURL: "b"}
			}
			out, err := Import(tc.from, []byte(tc.doc), opts, params.YAML)
			got := string(out)
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("got\n%s\nwant %q", got, tc.want)
			}
		})
	}
}
