package source

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/params"
)

// goodTar holds what build contexts hold: files, directories (listed or not), an executable,
// symlinks and a hardlink inside the archive, a pax global header (git archive writes one),
// and an entry that replaces an earlier one.
func goodTar(t testing.TB) []byte {
	return makeTar(t,
		entry{typ: tar.TypeXGlobalHeader, name: "pax_global_header"},
		dir("./"),
		file("./Dockerfile", "FROM scratch\nCOPY . /\n"),
		dir("app/"),
		entry{name: "app/run.sh", body: "#!/bin/sh\n", typ: tar.TypeReg, mode: 0o755},
		file("deep/er/file.txt", "deep\n"),
		symlink("app/link", "../deep/er/file.txt"),
		symlink("self", "."),
		hardlink("app/hard", "deep/er/file.txt"),
		file("replaced", "old"),
		file("replaced", "new"),
		symlink("relink", "app"),
		symlink("relink", "deep"),
		entry{name: "docker/", typ: tar.TypeDir, mode: 0o555},
		file("docker/Dockerfile.alt", "FROM scratch\n# alt\n"),
	)
}

const goodTree = `Dockerfile
app/
app/hard
app/link -> ../deep/er/file.txt
app/run.sh
deep/
deep/er/
deep/er/file.txt
docker/
docker/Dockerfile.alt
relink -> deep
replaced
self -> .`

func TestTarGood(t *testing.T) {
	plain := goodTar(t)
	gz := gzipped(t, plain)
	const user, canary = "carol", "canary-Tar-aa71"
	srv := fileServer(t, user, canary, map[string]string{"/ctx.tgz": string(gz), "/ctx": string(plain)})

	dir := t.TempDir()
	for name, b := range map[string][]byte{"ctx.tar": plain, "ctx.tar.weird": gz} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name string
		tar  params.Tar
		data []byte
		url  string
	}{
		{name: "plain file", tar: params.Tar{Path: filepath.Join(dir, "ctx.tar")}, data: plain},
		{name: "gzip file with another extension", tar: params.Tar{Path: filepath.Join(dir, "ctx.tar.weird")}, data: gz},
		{name: "gzip URL", tar: params.Tar{URL: srv.URL + "/ctx.tgz", Username: user, Password: canary}, data: gz, url: srv.URL + "/ctx.tgz"},
		{name: "plain URL", tar: params.Tar{URL: srv.URL + "/ctx", Username: user, Password: canary}, data: plain, url: srv.URL + "/ctx"},
		{name: "dockerfile and workdir", tar: params.Tar{Path: filepath.Join(dir, "ctx.tar"), Dockerfile: "docker/Dockerfile.alt", Workdir: "app"}, data: plain},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var l logs
			ws, parent := newWorkspace(t)
			res, err := Fetch(bg(), params.Source{Tar: &tt.tar}, ws, l.option())
			assertOnlyWorkspace(t, parent)
			noSecret(t, canary, err, res, l.String())
			if err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(ws, tarDir)
			if got := listTree(t, root); got != goodTree {
				t.Errorf("tree:\n%s\nwant:\n%s", got, goodTree)
			}
			sum := sha256.Sum256(tt.data)
			if res.Kind != KindTar || res.URL != tt.url || res.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("result = %+v", res)
			}
			wantDf, wantCtx := filepath.Join(root, "Dockerfile"), root
			if tt.tar.Dockerfile != "" {
				wantDf, wantCtx = filepath.Join(root, "docker", "Dockerfile.alt"), filepath.Join(root, "app")
			}
			if res.Dockerfile != wantDf || res.ContextDir != wantCtx {
				t.Errorf("paths = %s, %s; want %s, %s", res.Dockerfile, res.ContextDir, wantDf, wantCtx)
			}
			if got := readFile(t, filepath.Join(root, "replaced")); got != "new" {
				t.Errorf("replaced = %q", got)
			}
			checkMode(t, filepath.Join(root, "app", "run.sh"), 0o755)
			checkMode(t, filepath.Join(root, "docker"), 0o555|os.ModeDir)
			a, _ := os.Stat(filepath.Join(root, "app", "hard"))
			b, _ := os.Stat(filepath.Join(root, "deep", "er", "file.txt"))
			if !os.SameFile(a, b) {
				t.Error("app/hard is not a hardlink of deep/er/file.txt")
			}
		})
	}
}

func checkMode(t *testing.T, name string, want os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 && fi.IsDir() {
		want |= 0o700
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %s, want %s", name, fi.Mode(), want)
	}
}

func TestTarRejected(t *testing.T) {
	small := Limits{DockerfileBytes: 1, TarBytes: 100, TarEntries: 4}
	big := strings.Repeat("x", 60)
	for _, tt := range []struct {
		name    string
		entries []entry
		raw     []byte
		want    string
		also    string // a second part of the message
	}{
		{name: "traversal", entries: []entry{file("../x", "evil")}, want: `entry "../x": path leaves the archive root`},
		{name: "nested traversal", entries: []entry{file("a/../../x", "evil")}, want: `entry "a/../../x": path leaves the archive root`},
		{name: "absolute", entries: []entry{file("/tmp/x", "evil")}, want: `entry "/tmp/x": absolute path`},
		{
			name:    "symlink escape",
			entries: []entry{symlink("link", "../../etc"), file("link/x", "evil")},
			want:    `entry "link": symlink target "../../etc" leads outside the archive root`,
		},
		{
			name:    "nested symlink escape",
			entries: []entry{symlink("a/b/link", "../../.."), file("a/b/link/x", "evil")},
			want:    `entry "a/b/link": symlink target "../../.." leads outside the archive root`,
		},
		{
			name:    "absolute symlink",
			entries: []entry{symlink("link", "/etc"), file("link/x", "evil")},
			want:    `entry "link": symlink target "/etc" is absolute: it leads outside the archive root`,
		},
		{
			name:    "symlink through a symlink",
			entries: []entry{symlink("here", "."), symlink("up", "here/..")},
			want:    `entry "up": symlink target "here/.." leads outside the archive root`,
		},
		{
			name:    "write through a symlink through a symlink",
			entries: []entry{symlink("here", "."), symlink("up", "here/.."), file("up/x", "evil")},
			want:    `entry "up/x": `,
			also:    "path escapes from parent",
		},
		{
			name:    "hardlink escape",
			entries: []entry{hardlink("h", "../outside")},
			want:    `entry "h": hardlink target "../outside": path leaves the archive root`,
		},
		{
			name:    "absolute hardlink",
			entries: []entry{hardlink("h", "/etc/passwd")},
			want:    `entry "h": hardlink target "/etc/passwd": absolute path`,
		},
		{
			name:    "hardlink moves a symlink",
			entries: []entry{symlink("sub/l", "../x"), hardlink("h", "sub/l")},
			want:    `entry "h": symlink target "../x" leads outside the archive root`,
		},
		{name: "char device", entries: []entry{{name: "dev/null", typ: tar.TypeChar}}, want: `entry "dev/null": character device entries are not allowed`},
		{name: "block device", entries: []entry{{name: "sda", typ: tar.TypeBlock}}, want: `entry "sda": block device entries are not allowed`},
		{name: "fifo", entries: []entry{{name: "pipe", typ: tar.TypeFifo}}, want: `entry "pipe": fifo entries are not allowed`},
		{
			name:    "too many bytes",
			entries: []entry{file("a", big), file("b", big)},
			want:    `entry "b": the files in the archive exceed the limit of 100 bytes`,
		},
		{
			name:    "huge size",
			entries: []entry{{name: "huge", typ: tar.TypeReg, size: 1 << 40}},
			want:    `entry "huge": the files in the archive exceed the limit of 100 bytes`,
		},
		{
			name:    "too many entries",
			entries: []entry{file("a", ""), file("b", ""), dir("c"), file("d", ""), file("e", "")},
			want:    `entry "e": the archive has more than 4 entries`,
		},
		{name: "file named like the root", entries: []entry{file(".", "")}, want: `entry ".": not a directory, but names the archive root`},
		{name: "file over a directory", entries: []entry{dir("d"), file("d/x", ""), file("d", "")}, want: `entry "d": a directory of that name is already there`},
		{name: "not a tarball", raw: []byte(strings.Repeat("garbage!", 100)), want: "reading the archive: archive/tar: invalid tar header"},
		{name: "zip", raw: []byte("PK\x03\x04rest"), want: "a zip archive: only plain and gzip tarballs are supported"},
		{name: "xz", raw: []byte("\xfd7zXZ\x00rest"), want: "compressed with bzip2, xz or zstd: only plain and gzip tarballs are supported"},
		{name: "truncated gzip", raw: gzipped(t, goodTar(t))[:200], want: "unexpected EOF"},
		{name: "trailing data", raw: append(makeTar(t, file("a", "")), make([]byte, 2<<20)...), want: "more than 1048576 bytes of data after the end of the archive"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.raw
			if data == nil {
				data = makeTar(t, tt.entries...)
			}
			for _, compress := range []bool{false, true} {
				if compress && tt.raw != nil {
					continue
				}
				if compress {
					data = gzipped(t, data)
				}
				ws, parent := newWorkspace(t)
				tarball := filepath.Join(t.TempDir(), "ctx.tar")
				if err := os.WriteFile(tarball, data, 0o644); err != nil {
					t.Fatal(err)
				}
				_, err := Fetch(bg(), params.Source{Tar: &params.Tar{Path: tarball}}, ws, WithLimits(small))
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.also) || !strings.HasPrefix(err.Error(), `extracting tarball "`+tarball+`": `) {
					t.Errorf("gzip %v: error = %v\nwant %q", compress, err, tt.want)
				}
				assertOnlyWorkspace(t, parent)
			}
		})
	}
}

// TestTarPreexistingEscape checks the last line of defence: even a symlink that leads out
// and is already in the directory (not from the archive) is not written through.
func TestTarPreexistingEscape(t *testing.T) {
	ws, parent := newWorkspace(t)
	if err := os.Symlink(parent, filepath.Join(ws, "evil")); err != nil {
		t.Fatal(err)
	}
	for _, e := range []entry{file("evil/x", "evil"), dir("evil/d"), hardlink("evil/h", "evil"), symlink("evil/s", "..")} {
		err := extract(bg(), bytes.NewReader(makeTar(t, e)), ws, DefaultLimits)
		if err == nil || !strings.Contains(err.Error(), "path escapes from parent") {
			t.Errorf("%s: error = %v", e.name, err)
		}
	}
	assertOnlyWorkspace(t, parent)
}

func TestTarCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(bg())
	cancel()
	ws, _ := newWorkspace(t)
	err := extract(ctx, bytes.NewReader(goodTar(t)), ws, DefaultLimits)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

func TestTarMissingFile(t *testing.T) {
	ws, _ := newWorkspace(t)
	_, err := Fetch(bg(), params.Source{Tar: &params.Tar{Path: "/nonexistent/ctx.tar"}}, ws)
	if err == nil || !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), "/nonexistent/ctx.tar") {
		t.Errorf("error = %v", err)
	}
}

// TestTarEvilInputs runs the committed hostile tarballs (testdata/evil) through Fetch.
func TestTarEvilInputs(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"dangling-escape.tar", `entry "l": symlink target "here/../imagebuilder-does-not-exist" leads outside the archive root`},
		{"dangling-escape-nested.tar", `entry "d/l": symlink target "self/../../imagebuilder-gone" leads outside the archive root`},
	} {
		ws, parent := newWorkspace(t)
		tarball, err := filepath.Abs(filepath.Join("testdata", "evil", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Fetch(bg(), params.Source{Tar: &params.Tar{Path: tarball}}, ws)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v\nwant %q", tt.file, err, tt.want)
		}
		assertOnlyWorkspace(t, parent)
	}

	ws, _ := newWorkspace(t)
	res, err := Fetch(bg(), params.Source{Tar: &params.Tar{Path: filepath.Join("testdata", "evil", "setuid.tar")}}, ws)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"bin/tool": 0o755, "shared": os.ModeDir | 0o777, "group": os.ModeDir | 0o775} {
		fi, err := os.Lstat(filepath.Join(res.ContextDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModeDir | os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky); got != want {
			t.Errorf("%s: mode %v, want %v (setuid, setgid and sticky dropped)", name, got, want)
		}
	}
}

func TestLeavesRoot(t *testing.T) {
	root := t.TempDir()
	for name, target := range map[string]string{"here": ".", "sub/up": "..", "sub/self": ".", "abs": "/etc", "loop": "loop"} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		rel string
		out bool
		err bool
	}{
		{rel: "a/b/c"}, {rel: "here/x"}, {rel: "here/here/sub/up/x"}, {rel: "sub/up"},
		{rel: "..", out: true}, {rel: "here/../x", out: true}, {rel: "sub/up/up", out: false},
		{rel: "sub/up/../x", out: true}, {rel: "sub/self/../../x", out: true}, {rel: "abs/x", out: true},
		{rel: "missing/../../x", out: true}, {rel: "loop/x", err: true},
	} {
		out, err := leavesRoot(root, tt.rel)
		if out != tt.out || (err != nil) != tt.err {
			t.Errorf("leavesRoot(%q) = %v, %v; want %v (error %v)", tt.rel, out, err, tt.out, tt.err)
		}
	}
}
