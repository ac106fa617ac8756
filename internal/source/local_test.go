package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/params"
)

func TestLocal(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":          "FROM scratch\n",
		"build/Dockerfile.ci": "FROM scratch\n# ci\n",
		"src/main.go":         "package main\n",
	})
	for name, target := range map[string]string{"etc": "/etc", "src.link": "src", "Dockerfile.out": "/etc/hostname"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		l             params.Local
		df, ctx, want string
	}{
		{l: params.Local{}, df: "Dockerfile", ctx: "."},
		{l: params.Local{Dockerfile: "build/Dockerfile.ci", Workdir: "src"}, df: "build/Dockerfile.ci", ctx: "src"},
		{l: params.Local{Workdir: "src.link"}, df: "Dockerfile", ctx: "src"},
		{l: params.Local{Dockerfile: "nope"}, want: `local directory "` + dir + `": dockerfile "nope" not found`},
		{l: params.Local{Workdir: "etc"}, want: `workdir "etc" leaves its root directory through a symlink`},
		{l: params.Local{Dockerfile: "Dockerfile.out"}, want: `dockerfile "Dockerfile.out" leaves its root directory through a symlink`},
		{l: params.Local{Workdir: "../"}, want: `workdir "../" leaves its root directory`},
	} {
		t.Run(tt.l.Dockerfile+","+tt.l.Workdir, func(t *testing.T) {
			tt.l.Path = dir
			ws, parent := newWorkspace(t)
			res, err := Fetch(bg(), params.Source{Local: &tt.l}, ws)
			assertOnlyWorkspace(t, parent)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error = %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Dockerfile != filepath.Join(dir, tt.df) || res.ContextDir != filepath.Join(dir, tt.ctx) {
				t.Errorf("paths = %s, %s; want them in place in %s", res.Dockerfile, res.ContextDir, dir)
			}
			if entries, _ := os.ReadDir(ws); len(entries) != 0 {
				t.Errorf("the workspace holds %v; want nothing copied", entries)
			}
			if res.Kind != KindLocal || res.Commit != "" || res.Clean != nil || res.URL != "" {
				t.Errorf("result = %+v", res)
			}
		})
	}
	t.Run("not a directory", func(t *testing.T) {
		ws, _ := newWorkspace(t)
		_, err := Fetch(bg(), params.Source{Local: &params.Local{Path: filepath.Join(dir, "Dockerfile")}}, ws)
		if err == nil || !strings.Contains(err.Error(), "is not a directory") {
			t.Errorf("error = %v", err)
		}
	})
}

func TestLocalGitCheckout(t *testing.T) {
	r := makeRepo(t)
	ws, _ := newWorkspace(t)
	src := params.Source{Local: &params.Local{Path: filepath.Join(r.dir, "app"), Dockerfile: "main.txt"}}
	res, err := Fetch(bg(), src, ws)
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != r.second || res.Ref != "refs/heads/main" || res.Clean == nil || !*res.Clean {
		t.Errorf("result = %+v", res)
	}
	writeFiles(t, r.dir, map[string]string{"app/new.txt": "untracked\n"})
	res, err = Fetch(bg(), src, ws)
	if err != nil {
		t.Fatal(err)
	}
	if res.Clean == nil || *res.Clean {
		t.Errorf("Clean = %v, want false with an untracked file", res.Clean)
	}
}

func TestFetchArguments(t *testing.T) {
	ws, _ := newWorkspace(t)
	l := &params.Local{Path: ws}
	for _, tt := range []struct {
		src  params.Source
		ws   string
		opts []Option
		want string
	}{
		{src: params.Source{}, ws: ws, want: "no source given"},
		{src: params.Source{Local: l, Tar: &params.Tar{Path: "x"}}, ws: ws, want: "tar and local cannot be combined"},
		{src: params.Source{GitRepo: &params.GitRepo{URL: "x"}, BuildContext: &params.BuildContext{URL: "y"}}, ws: ws, want: "git_repo cannot be combined with build_context"},
		{src: params.Source{Tar: &params.Tar{Path: "a", URL: "http://b"}}, ws: ws, want: "tar: path and url cannot be combined"},
		{src: params.Source{Tar: &params.Tar{}}, ws: ws, want: "tar: missing path or url"},
		{src: params.Source{Tar: &params.Tar{Path: "a", Password: "p"}}, ws: ws, want: "tar: username and password apply only to url"},
		{src: params.Source{Local: l}, ws: filepath.Join(ws, "missing"), want: "workspace: "},
		{src: params.Source{Local: l}, ws: ws, opts: []Option{WithLimits(Limits{TarBytes: -1})}, want: "negative limit"},
		{src: params.Source{Local: l}, ws: ws, opts: []Option{WithTimeout(0)}, want: "not a positive duration"},
		{src: params.Source{Local: l}, ws: ws, opts: []Option{WithHTTPClient(nil)}, want: "nil client"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			_, err := Fetch(bg(), tt.src, tt.ws, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}
