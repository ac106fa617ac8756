package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// runGit runs the git CLI in dir without any user or system configuration.
func runGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	base := []string{
		"-c", "protocol.file.allow=always", "-c", "init.defaultBranch=main",
		"-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "tag.gpgSign=false",
		"-c", "commit.gpgSign=false",
	}
	cmd := exec.Command("git", append(base, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_DATE=2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testRepo is a repository made by makeRepo, with the commits it holds.
type testRepo struct {
	dir                           string
	first, middle, second, branch string // commit ids: see makeRepo
}

// makeRepo makes a repository:
//
//	first  (tags v1 annotated, light lightweight): Dockerfile "v1", sub/Dockerfile.sub, app/
//	middle (no ref points here):                   Dockerfile "middle"
//	second (main):                                 Dockerfile "v2"
//	branch (feature, from first):                  Dockerfile "feature"
func makeRepo(t testing.TB) testRepo {
	t.Helper()
	dir := t.TempDir()
	runGit(t, dir, "init", "-q")
	writeFiles(t, dir, map[string]string{
		"Dockerfile":         "FROM scratch\n# v1\n",
		"sub/Dockerfile.sub": "FROM scratch\n# sub\n",
		"app/main.txt":       "app\n",
		".dockerignore":      "secret.txt\n",
	})
	runGit(t, dir, "add", "-A")
	runGit(t, dir, "commit", "-q", "-m", "first")
	r := testRepo{dir: dir, first: runGit(t, dir, "rev-parse", "HEAD")}
	runGit(t, dir, "tag", "-a", "v1", "-m", "release 1")
	runGit(t, dir, "tag", "light")
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\n# middle\n"})
	runGit(t, dir, "commit", "-q", "-am", "middle")
	r.middle = runGit(t, dir, "rev-parse", "HEAD")
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\n# v2\n"})
	runGit(t, dir, "commit", "-q", "-am", "second")
	r.second = runGit(t, dir, "rev-parse", "HEAD")
	runGit(t, dir, "checkout", "-q", "-b", "feature", r.first)
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\n# feature\n"})
	runGit(t, dir, "commit", "-q", "-am", "feature")
	r.branch = runGit(t, dir, "rev-parse", "HEAD")
	runGit(t, dir, "checkout", "-q", "main")
	return r
}

// newGitServer is testenv.NewGitServer.
func newGitServer(t testing.TB, root, user, pass string) *testenv.GitServer {
	t.Helper()
	return testenv.NewGitServer(t, root, user, pass)
}

// serveBare makes a bare copy of src named name+".git" below root.
func serveBare(t testing.TB, src, root, name string) {
	t.Helper()
	runGit(t, root, "clone", "-q", "--bare", src, name+".git")
}

// newWorkspace makes a workspace inside a parent directory of its own, so tests can check
// that nothing was written next to it.
func newWorkspace(t testing.TB) (ws, parent string) {
	t.Helper()
	parent = t.TempDir()
	ws = filepath.Join(parent, "ws")
	if err := os.Mkdir(ws, 0o700); err != nil {
		t.Fatal(err)
	}
	return ws, parent
}

// assertOnlyWorkspace fails when the parent holds anything but the workspace.
func assertOnlyWorkspace(t testing.TB, parent string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "ws" {
			t.Errorf("%s appeared next to the workspace", filepath.Join(parent, e.Name()))
		}
	}
}

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// logs collects the lines given to WithLogger.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) option() Option {
	return WithLogger(func(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() })
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// entry is one tar entry for makeTar.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
	size             int64 // header size when body is not given
}

func file(name, body string) entry { return entry{name: name, body: body, typ: tar.TypeReg} }
func dir(name string) entry        { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) entry {
	return entry{name: name, link: target, typ: tar.TypeSymlink}
}
func hardlink(name, target string) entry {
	return entry{name: name, link: target, typ: tar.TypeLink}
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if e.typ == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: e.typ, PAXRecords: map[string]string{"comment": "global"}}
		}
		if e.size != 0 {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("header %q: %v", e.name, err)
		}
		if e.size != 0 {
			return buf.Bytes() // a header promising more than there is: must be last
		}
		if e.typ == tar.TypeReg && e.body != "" {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// listTree lists the files below dir as "name" or "name -> target" lines.
func listTree(t testing.TB, dir string) string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			rel += " -> " + target
		case d.IsDir():
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

// noSecret fails when secret shows in any of the values.
// wantError checks err against the wanted message ("" means no error) and reports whether the
// test should go on checking a result.
func wantError(t testing.TB, err error, want string) bool {
	t.Helper()
	switch {
	case want != "" && (err == nil || err.Error() != want):
		t.Fatalf("error = %v\nwant %s", err, want)
	case want == "" && err != nil:
		t.Fatal(err)
	}
	return want == ""
}

func noSecret(t testing.TB, secret string, values ...any) {
	t.Helper()
	for _, v := range values {
		if s := fmt.Sprintf("%+v", v); strings.Contains(s, secret) {
			t.Errorf("secret leaked: %s", s)
		}
	}
}

func bg() context.Context { return context.Background() }
