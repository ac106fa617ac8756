package source

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus in testdata/fuzz/FuzzExtract")

// FuzzExtract feeds arbitrary bytes to the extractor: it must never panic, never write
// outside its directory, and leave only files, directories and symlinks that stay inside.
func FuzzExtract(f *testing.F) {
	lim := Limits{TarBytes: 1 << 20, TarEntries: 1000}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		ws := filepath.Join(parent, "ws")
		if err := os.Mkdir(ws, 0o700); err != nil {
			t.Fatal(err)
		}
		err := extract(bg(), bytes.NewReader(data), ws, lim)
		assertOnlyWorkspace(t, parent)
		if err != nil {
			return
		}
		walkErr := filepath.WalkDir(ws, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch typ := d.Type(); {
			case typ.IsRegular(), typ.IsDir():
			case typ&fs.ModeSymlink != 0:
				rel, _ := filepath.Rel(ws, p)
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				if err := checkSymlink(filepath.ToSlash(rel), target); err != nil {
					t.Errorf("%s: %v", rel, err)
				}
				if real, err := filepath.EvalSymlinks(p); err == nil && !inside(ws, real) {
					t.Errorf("%s -> %s resolves to %s", rel, target, real)
				}
			default:
				t.Errorf("%s: unexpected file type %s", p, typ)
			}
			return nil
		})
		if walkErr != nil {
			t.Fatal(walkErr)
		}
	})
}

// TestFuzzCorpus writes the seed corpus when run with -update-corpus.
func TestFuzzCorpus(t *testing.T) {
	testenv.OnlyWith(t, *updateCorpus, "-update-corpus to rewrite the seed corpus")
	seeds := map[string][]byte{
		"good":          goodTar(t),
		"good-gzip":     gzipped(t, goodTar(t)),
		"empty":         {},
		"traversal":     makeTar(t, file("../x", "evil"), file("ok", "fine")),
		"absolute":      makeTar(t, file("/tmp/x", "evil")),
		"symlink":       makeTar(t, symlink("link", "../../etc"), file("link/x", "evil")),
		"symlink-chain": makeTar(t, symlink("here", "."), symlink("up", "here/.."), file("up/x", "evil")),
		"hardlink":      makeTar(t, file("a", "a"), hardlink("h", "a"), hardlink("e", "../a")),
		"hardlink-sym":  makeTar(t, symlink("sub/l", "../x"), hardlink("h", "sub/l")),
		"devices": makeTar(t, entry{name: "c", typ: tar.TypeChar}, entry{name: "b", typ: tar.TypeBlock},
			entry{name: "p", typ: tar.TypeFifo}),
		"replace":  makeTar(t, dir("d"), file("d/x", "1"), symlink("d/x", "."), file("d/x", "2")),
		"dirmodes": makeTar(t, entry{name: "ro/", typ: tar.TypeDir, mode: 0o500}, file("ro/f", "x")),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzExtract")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
