package family

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// writeTree writes files (path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func loadIn(t *testing.T, dir, doc string) *File {
	t.Helper()
	name := filepath.Join(dir, "family.yaml")
	if err := os.WriteFile(name, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var testGit = &Git{Branch: "main", Commit: "abc1234def5678abc1234def5678abc1234def56", ShortCommit: "abc1234"}

func fakeEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

const dirFamily = `
registry: {url: 127.0.0.1:5000}
namespace: ns
tag: "{{ .Git.ShortCommit }}-{{ .Date }}"
tags: [candidate]
platforms: [linux/amd64]
variables: {greeting: hello, release: "1.0"}
build_args: {COMMON: c, A: family}
proxy_from_env: true
secrets: {npm: {env: NPM_TOKEN}}
images_dir: docker
images:
  - name: extra
    source: {local: {path: ./extra}}
    platforms: [linux/arm64]
  - name: app
    build_args: {A: "1", HTTP_PROXY: mine}
    tags: ["v{{ .release }}"]
    secrets: {npm: {file: /run/npm}, pip: {env: PIP}}
  - name: leaf
    enabled: false
`

// TestExpandImagesDir: images_dir's images are discovered (not below an image's directory,
// nor in hidden directories), merged with the entries naming them, ordered after the explicit
// ones; the globals reach every image.
func TestExpandImagesDir(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"docker/base/Dockerfile":          "FROM busybox\n",
		"docker/base/sub/Dockerfile":      "FROM x\n", // inside base's context: not an image
		"docker/app/Dockerfile.tmpl":      "FROM ns/base\n",
		"docker/group/leaf/Dockerfile":    "FROM ns/app\n",
		"docker/group/zeta/Dockerfile":    "FROM ns/app\n",
		"docker/.hidden/ghost/Dockerfile": "FROM x\n",
		"docker/README":                   "not an image\n",
		"extra/Dockerfile":                "FROM busybox\n",
	})
	f := loadIn(t, dir, dirFamily)
	fam, err := f.Expand(ExpandOptions{
		Vars:   map[string]string{"release": "2.0"},
		Now:    time.Date(2024, 1, 2, 23, 30, 0, 0, time.FixedZone("x", -3*3600)), // 2024-01-03 UTC
		Getenv: fakeEnv(map[string]string{"HTTP_PROXY": "http://proxy:3128", "no_proxy": "localhost", "HTTPS_PROXY": ""}),
		Git:    testGit,
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range fam.Images {
		names = append(names, img.Name)
	}
	if want := []string{"extra", "app", "base", "zeta"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("images %v, want %v", names, want)
	}
	extra, app, base, zeta := fam.Images[0], fam.Images[1], fam.Images[2], fam.Images[3]

	if app.Source != ImagesDirSource || app.Context != "app" || app.Dockerfile != "Dockerfile.tmpl" || app.Pointer != "/images/1" {
		t.Errorf("app: %+v", app)
	}
	if app.Repository != "127.0.0.1:5000/ns/app" {
		t.Errorf("repository %q", app.Repository)
	}
	if want := []string{"abc1234-20240103", "candidate", "v2.0"}; !reflect.DeepEqual(app.Tags, want) || app.Tag != want[0] {
		t.Errorf("app tags %q %v, want %v", app.Tag, app.Tags, want)
	}
	wantArgs := map[string]string{"HTTP_PROXY": "mine", "no_proxy": "localhost", "COMMON": "c", "A": "1"}
	if !reflect.DeepEqual(app.BuildArgs, wantArgs) {
		t.Errorf("app build args %v, want %v", app.BuildArgs, wantArgs)
	}
	if want := map[string]params.Secret{"npm": {File: "/run/npm"}, "pip": {Env: "PIP"}}; !reflect.DeepEqual(app.Secrets, want) {
		t.Errorf("app secrets %v", app.Secrets)
	}
	if base.Pointer != "docker/base" || base.Dockerfile != "Dockerfile" || base.Context != "base" {
		t.Errorf("base: %+v", base)
	}
	if zeta.Context != "group/zeta" {
		t.Errorf("zeta context %q", zeta.Context)
	}
	if want := map[string]string{"HTTP_PROXY": "http://proxy:3128", "no_proxy": "localhost", "COMMON": "c", "A": "family"}; !reflect.DeepEqual(base.BuildArgs, want) {
		t.Errorf("base build args %v", base.BuildArgs)
	}
	if !reflect.DeepEqual(base.Platforms, []string{"linux/amd64"}) || !reflect.DeepEqual(extra.Platforms, []string{"linux/arm64"}) {
		t.Errorf("platforms: base %v extra %v", base.Platforms, extra.Platforms)
	}
	if !reflect.DeepEqual(base.Secrets, map[string]params.Secret{"npm": {Env: "NPM_TOKEN"}}) {
		t.Errorf("base secrets %v", base.Secrets)
	}
	if extra.Source != "image:extra" || extra.Dockerfile != "Dockerfile" || extra.Context != "." {
		t.Errorf("extra: %+v", extra)
	}
	if got := fam.Sources["image:extra"].Local; got == nil || got.Path != filepath.Join(dir, "extra") {
		t.Errorf("inline source %+v", fam.Sources["image:extra"])
	}
	if got := fam.Sources[ImagesDirSource].Local; got == nil || got.Path != filepath.Join(dir, "docker") {
		t.Errorf("images_dir source %+v", fam.Sources[ImagesDirSource])
	}
	if len(fam.Sources) != 2 {
		t.Errorf("sources %v", fam.Sources)
	}
	if fam.Variables["release"] != "2.0" || fam.Variables["greeting"] != "hello" {
		t.Errorf("variables %v", fam.Variables)
	}
}

func TestExpandErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		doc   string
		opts  ExpandOptions
		want  string
	}{
		"unknown var": {
			doc:  "registry: {url: r}\nvariables: {a: b}\n",
			opts: ExpandOptions{Vars: map[string]string{"nope": "x"}},
			want: "/variables: --var nope: the file declares no such variable (variables: a)",
		},
		"missing template key": {
			doc:  "registry: {url: r}\nsources: {s: {local: {path: .}}}\nimages: [{name: a, tags: ['{{ .nope }}']}]\n",
			want: `/images/0/tags/0: rendering "{{ .nope }}":`,
		},
		"git outside a checkout": {
			doc:  "registry: {url: r}\ntag: '{{ .Git.Commit }}'\nsources: {s: {local: {path: .}}}\nimages: [{name: a}]\n",
			opts: ExpandOptions{Git: &Git{}},
			want: `/tag: "{{ .Git.Commit }}" uses .Git, but the family file is not in a git checkout`,
		},
		"rendered tag invalid": {
			doc:  "registry: {url: r}\nvariables: {v: 'a b'}\ntag: '{{ .v }}'\nsources: {s: {local: {path: .}}}\nimages: [{name: a}]\n",
			want: `/images/0: image "a": tag "a b" (rendered) is not a tag`,
		},
		"same directory name twice": {
			files: map[string]string{"d/x/app/Dockerfile": "FROM a\n", "d/y/app/Dockerfile": "FROM a\n"},
			doc:   "registry: {url: r}\nimages_dir: d\n",
			want:  `d/x/app and d/y/app both make an image named "app"`,
		},
		"directory name not a repository": {
			files: map[string]string{"d/App/Dockerfile": "FROM a\n"},
			doc:   "registry: {url: r}\nimages_dir: d\n",
			want:  `d/App: the directory's name "App" is not a lowercase repository path`,
		},
		"both Dockerfiles": {
			files: map[string]string{"d/a/Dockerfile": "FROM a\n", "d/a/Dockerfile.tmpl": "FROM a\n"},
			doc:   "registry: {url: r}\nimages_dir: d\n",
			want:  `holds both Dockerfile and Dockerfile.tmpl`,
		},
		"missing images_dir": {
			doc:  "registry: {url: r}\nimages_dir: nowhere\n",
			want: `/images_dir: reading nowhere`,
		},
		"override without a discovered image": {
			files: map[string]string{"d/a/Dockerfile": "FROM a\n"},
			doc:   "registry: {url: r}\nimages_dir: d\nimages: [{name: b}]\n",
			want:  `/images/0: image "b" has no source`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tc.files)
			f := loadIn(t, dir, tc.doc)
			_, err := f.Expand(tc.opts)
			if err == nil {
				t.Fatal("expanded")
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

// TestExpandDefaults: the tag defaults to latest, the only source is every image's, an
// override's source replaces the discovered one, a repeated tag appears once.
func TestExpandDefaults(t *testing.T) {
	dir := t.TempDir()
	f := loadIn(t, dir, "registry: {url: 'r.io/'}\ntags: [latest]\nsources: {s: {git_repo: {url: ./repo}}}\nimages: [{name: a}]\n")
	fam, err := f.Expand(ExpandOptions{})
	if err != nil {
		t.Fatal(err)
	}
	img := fam.Images[0]
	if img.Tag != "latest" || !reflect.DeepEqual(img.Tags, []string{"latest"}) || img.Source != "s" || img.Repository != "r.io/a" {
		t.Fatalf("%+v", img)
	}
	if img.Ref() != "r.io/a:latest" {
		t.Errorf("ref %q", img.Ref())
	}
	if got := fam.Sources["s"].GitRepo.URL; got != filepath.Join(dir, "repo") {
		t.Errorf("relative git url made %q", got)
	}
}

// TestGitOf reads .Git from the checkout holding the file when the caller gives none.
func TestGitOf(t *testing.T) {
	g := gitOf("../..")
	if len(g.Commit) != 40 || g.ShortCommit != g.Commit[:7] {
		t.Fatalf("gitOf(repository) = %+v", g)
	}
	if g := gitOf(t.TempDir()); g.Commit != "" {
		t.Fatalf("gitOf(no checkout) = %+v", g)
	}
}

func TestAddSecrets(t *testing.T) {
	f, err := Load([]byte(`{"registry":{"url":"r","username":"u","password":"regpw"},
	  "secrets":{"a":{"value":"sval"}},
	  "sources":{"s":{"git_repo":{"url":"https://x:urlpw@h/r","password":"gitpw","username":"g"}}},
	  "proxy_from_env":true,"images":[{"name":"a","secrets":{"b":{"value":"ival"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	fam, err := f.Expand(ExpandOptions{Getenv: fakeEnv(map[string]string{"https_proxy": "http://p:proxypw@proxy"})})
	if err != nil {
		t.Fatal(err)
	}
	r := redact.New()
	fam.AddSecrets(r)
	got := r.String("regpw sval https://x:urlpw@h/r gitpw ival http://p:proxypw@proxy")
	for _, s := range []string{"regpw", "sval", "urlpw", "gitpw", "ival", "proxypw"} {
		if strings.Contains(got, s) {
			t.Errorf("%q not masked: %s", s, got)
		}
	}
}
