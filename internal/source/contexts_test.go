package source

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/params"
)

// TestContextsOnly: a family's source (a git repository without a Dockerfile at its root)
// fetches with ContextsOnly, its workdir being the base of the images' contexts, and Resolve
// keeps to the source.
func TestContextsOnly(t *testing.T) {
	dir := t.TempDir()
	runGit(t, dir, "init", "-q")
	writeFiles(t, dir, map[string]string{"images/a/Dockerfile": "FROM scratch\n", "images/b/x": "x", "top.txt": "t"})
	if err := os.Symlink("/etc", filepath.Join(dir, "images", "out")); err != nil {
		t.Fatal(err)
	}
	runGit(t, dir, "add", "-A")
	runGit(t, dir, "commit", "-q", "-m", "one")
	src := params.Source{GitRepo: &params.GitRepo{URL: dir, Workdir: "images"}}
	if _, err := Fetch(bg(), src, t.TempDir()); err == nil {
		t.Fatal("a repository without a root Dockerfile fetched without ContextsOnly")
	}
	f, err := Fetch(bg(), src, t.TempDir(), ContextsOnly())
	if err != nil {
		t.Fatal(err)
	}
	if f.Dockerfile != "" || f.ContextDir != filepath.Join(f.Root, "images") || len(f.Commit) != 40 {
		t.Fatalf("fetched %+v", f)
	}
	if p, err := f.Resolve(f.ContextDir, "a/Dockerfile", false); err != nil || p != filepath.Join(f.Root, "images/a/Dockerfile") {
		t.Errorf("Resolve(a/Dockerfile) = %q, %v", p, err)
	}
	if p, err := f.Resolve(f.ContextDir, "../top.txt", false); err != nil || p != filepath.Join(f.Root, "top.txt") {
		t.Errorf("Resolve(../top.txt) inside the source = %q, %v", p, err)
	}
	for rel, want := range map[string]string{
		"../..":        "leaves its root directory",
		"/etc":         "leaves its root directory",
		"out":          "leaves its root directory through a symlink",
		"b/x/":         "is not a directory",
		"a/Dockerfile": "is not a directory",
	} {
		if _, err := f.Resolve(f.ContextDir, rel, true); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), `"`+rel+`"`) {
			t.Errorf("Resolve(%q): %v, want %q", rel, err, want)
		}
	}
	if _, err := f.Resolve(f.ContextDir, "missing", true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Resolve(missing): %v", err)
	}
}
