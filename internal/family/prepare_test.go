package family

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/source"
)

// fetchAll fetches every source of fam as the engine does (source.ContextsOnly) into
// workspaces under t's temporary directory.
func fetchAll(t *testing.T, fam *Family) map[string]*source.Fetched {
	t.Helper()
	out := map[string]*source.Fetched{}
	for name, src := range fam.Sources {
		ws := t.TempDir()
		f, err := source.Fetch(context.Background(), src, ws, source.ContextsOnly())
		if err != nil {
			t.Fatalf("fetching %s: %v", name, err)
		}
		out[name] = f
	}
	return out
}

func expandIn(t *testing.T, dir, doc string, files map[string]string) *Family {
	t.Helper()
	writeTree(t, dir, files)
	fam, err := loadIn(t, dir, doc).Expand(ExpandOptions{Git: testGit})
	if err != nil {
		t.Fatal(err)
	}
	return fam
}

func image(t *testing.T, fam *Family, name string) Image {
	t.Helper()
	for _, img := range fam.Images {
		if img.Name == name {
			return img
		}
	}
	t.Fatalf("no image %q", name)
	return Image{}
}

// TestPrepareTemplate: a *.tmpl Dockerfile is rendered with the variables, then the header
// goes after every FROM and the footer at the end of the built stage; the result is written
// under the caller's directory and the context stays the source's.
func TestPrepareTemplate(t *testing.T) {
	dir := t.TempDir()
	fam := expandIn(t, dir, `
registry: {url: r}
variables: {base: busybox, greeting: hello}
header: "ENV http_proxy=http://proxy"
footer: |
  ENV http_proxy=""
images_dir: docker
images:
  - {name: app, target: build}
`, map[string]string{
		"docker/app/Dockerfile.tmpl": "# syntax=docker/dockerfile:1\nFROM {{ .base }} AS build\nRUN echo {{ .greeting }} \\\n  > /x\n\nFROM scratch\nCOPY --from=build /x /x\n",
		"docker/app/file.txt":        "x",
		"docker/plain/Dockerfile":    "FROM busybox\nRUN true\n",
	})
	fetched := fetchAll(t, fam)
	work := t.TempDir()
	p, err := fam.Prepare(image(t, fam, "app"), fetched, work)
	if err != nil {
		t.Fatal(err)
	}
	want := "# syntax=docker/dockerfile:1\nFROM busybox AS build\nENV http_proxy=http://proxy\nRUN echo hello \\\n  > /x\nENV http_proxy=\"\"\n\nFROM scratch\nENV http_proxy=http://proxy\nCOPY --from=build /x /x\n"
	if string(p.Data) != want {
		t.Fatalf("Dockerfile\n%s\nwant\n%s", p.Data, want)
	}
	if p.Dockerfile != filepath.Join(work, "Dockerfile") {
		t.Errorf("Dockerfile written at %q", p.Dockerfile)
	}
	if onDisk, _ := os.ReadFile(p.Dockerfile); string(onDisk) != want {
		t.Errorf("file on disk differs: %q", onDisk)
	}
	if p.ContextDir != filepath.Join(fetched[ImagesDirSource].Root, "app") {
		t.Errorf("context %q", p.ContextDir)
	}

	// Without header and footer, a plain Dockerfile is the source's own.
	fam.Header, fam.Footer = "", ""
	p, err = fam.Prepare(image(t, fam, "plain"), fetched, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if p.Dockerfile != filepath.Join(fetched[ImagesDirSource].Root, "plain", "Dockerfile") || string(p.Data) != "FROM busybox\nRUN true\n" {
		t.Errorf("plain: %+v", p)
	}
}

func TestPrepareTemplateMissingKey(t *testing.T) {
	dir := t.TempDir()
	fam := expandIn(t, dir, "registry: {url: r}\nvariables: {a: b}\nimages_dir: d\n",
		map[string]string{"d/app/Dockerfile.tmpl": "FROM {{ .nope }}\n"})
	_, err := fam.Prepare(fam.Images[0], fetchAll(t, fam), t.TempDir())
	if err == nil {
		t.Fatal("rendered a template with a missing key")
	}
	for _, want := range []string{`image "app" (d/app)`, "rendering Dockerfile.tmpl", `"nope"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestPrepareComponents: components land in a copy of the context; the source is untouched;
// modes and links of the context are kept.
func TestPrepareComponents(t *testing.T) {
	dir := t.TempDir()
	fam := expandIn(t, dir, `
registry: {url: r}
sources:
  app: {local: {path: ./app, workdir: src}}
  lib: {local: {path: ./lib}}
images:
  - name: app
    source: app
    context: svc
    components:
      - {source: lib, path: pkg, dest: vendor/pkg}
      - {source: lib, path: VERSION, dest: VERSION}
`, map[string]string{
		"app/src/svc/Dockerfile": "FROM busybox\nCOPY . /app\n",
		"app/src/svc/run.sh":     "#!/bin/sh\n",
		"lib/pkg/a.txt":          "a",
		"lib/pkg/deep/b.txt":     "b",
		"lib/pkg/link-inside":    "", // replaced by a link below
		"lib/VERSION":            "1.2.3",
	})
	must(t, os.Chmod(filepath.Join(dir, "app/src/svc/run.sh"), 0o755))
	must(t, os.Symlink("run.sh", filepath.Join(dir, "app/src/svc/run-link")))
	must(t, os.Remove(filepath.Join(dir, "lib/pkg/link-inside")))
	must(t, os.Symlink("../VERSION", filepath.Join(dir, "lib/pkg/link-inside")))
	fetched := fetchAll(t, fam)
	work := t.TempDir()
	p, err := fam.Prepare(fam.Images[0], fetched, work)
	if err != nil {
		t.Fatal(err)
	}
	if p.ContextDir != filepath.Join(work, "context") {
		t.Fatalf("context %q", p.ContextDir)
	}
	for name, want := range map[string]string{
		"Dockerfile": "FROM busybox\nCOPY . /app\n", "run.sh": "#!/bin/sh\n",
		"vendor/pkg/a.txt": "a", "vendor/pkg/deep/b.txt": "b", "VERSION": "1.2.3",
		"vendor/pkg/link-inside": "1.2.3", // a link inside the source is followed
	} {
		got, err := os.ReadFile(filepath.Join(p.ContextDir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(p.ContextDir, "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("run.sh mode %v, %v", fi.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(p.ContextDir, "run-link")); err != nil || target != "run.sh" {
		t.Errorf("run-link: %q, %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "app/src/svc/vendor")); err == nil {
		t.Error("the source's context was written to")
	}
	if p.Dockerfile != filepath.Join(dir, "app/src/svc/Dockerfile") {
		t.Errorf("Dockerfile %q", p.Dockerfile)
	}
}

// TestPrepareRefusesEscapes: nothing is read through a link that leaves its source.
func TestPrepareRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.txt": "TOP SECRET", "Dockerfile": "FROM evil\n", "d/x": "x"})
	for name, tc := range map[string]struct {
		link, target string // a link created in the lib source
		doc          string
		want         string
	}{
		"component path through a link": {
			link: "lib/escape", target: filepath.Join(outside, "d"),
			doc:  "components: [{source: lib, path: escape, dest: x}]",
			want: "leaves its root directory through a symlink",
		},
		"link inside a component": {
			link: "lib/pkg/secret", target: filepath.Join(outside, "secret.txt"),
			doc:  "components: [{source: lib, path: pkg, dest: x}]",
			want: "pkg/secret is a link that leaves the source",
		},
		"dockerfile through a link": {
			link: "lib/Dockerfile", target: filepath.Join(outside, "Dockerfile"),
			doc:  "source: lib",
			want: "dockerfile: \"Dockerfile\" leaves its root directory through a symlink",
		},
		"context through a link": {
			link: "lib/ctx", target: outside,
			doc:  "{source: lib, context: ctx}",
			want: "context: \"ctx\" leaves its root directory through a symlink",
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{"app/Dockerfile": "FROM busybox\n", "lib/pkg/ok": "ok"})
			must(t, os.Symlink(tc.target, filepath.Join(dir, tc.link)))
			entry := "{name: app, source: app, " + strings.Trim(tc.doc, "{}") + "}"
			if strings.HasPrefix(tc.doc, "source:") || strings.HasPrefix(tc.doc, "{") {
				entry = "{name: app, " + strings.Trim(tc.doc, "{}") + "}"
			}
			fam := expandIn(t, dir, "registry: {url: r}\nsources: {app: {local: {path: ./app}}, lib: {local: {path: ./lib}}}\nimages: ["+entry+"]\n", nil)
			work := t.TempDir()
			_, err := fam.Prepare(fam.Images[0], fetchAll(t, fam), work)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), `image "app" (/images/0)`) {
				t.Errorf("error does not name the image: %v", err)
			}
			filepath.WalkDir(work, func(p string, d os.DirEntry, err error) error {
				if data, _ := os.ReadFile(p); strings.Contains(string(data), "TOP SECRET") {
					t.Errorf("%s holds the outside file", p)
				}
				return nil
			})
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestPrepareDownloadedDockerfile: an image whose source downloads its Dockerfile builds that
// file (header applied) in the source's context.
func TestPrepareDownloadedDockerfile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "FROM busybox\nRUN true\n")
	}))
	defer srv.Close()
	dir := t.TempDir()
	fam := expandIn(t, dir, "registry: {url: r}\nheader: ENV X=1\nimages: [{name: a, source: {dockerfile: {url: '"+srv.URL+"/Dockerfile'}}}]\n", nil)
	if fam.Images[0].Dockerfile != "" {
		t.Fatalf("Dockerfile %q for a downloaded one", fam.Images[0].Dockerfile)
	}
	fetched := fetchAll(t, fam)
	p, err := fam.Prepare(fam.Images[0], fetched, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Data) != "FROM busybox\nENV X=1\nRUN true\n" || p.ContextDir != fetched["image:a"].ContextDir {
		t.Fatalf("%+v", p)
	}
}
