package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// poolFamily writes a family of n independent images that each sleep, built on a pool of the
// given endpoints, and returns it expanded.
func poolFamily(t *testing.T, reg, base, ns, nonce string, n int, endpoints ...string) *family.Family {
	t.Helper()
	dir := t.TempDir()
	var doc strings.Builder
	fmt.Fprintf(&doc, "registry: {url: %q}\nnamespace: %s\ntag: latest\nsources: {main: {local: {path: %q}}}\nbuilder:\n  endpoints:\n", reg, ns, dir)
	for _, e := range endpoints {
		fmt.Fprintf(&doc, "    - {endpoint: %q, jobs: 1}\n", e)
	}
	doc.WriteString("images:\n")
	for i := range n {
		name := fmt.Sprintf("img%d", i)
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		df := fmt.Sprintf("FROM %s\nRUN sleep 2 && echo %s %d > /id\n", base, nonce, i)
		if err := os.WriteFile(filepath.Join(dir, name, "Dockerfile"), []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&doc, "  - {name: %s, source: main, context: %s}\n", name, name)
	}
	return loadFamily(t, doc.String(), dir)
}

// loadFamily loads and expands a family document whose relative paths are relative to dir.
func loadFamily(t *testing.T, doc, dir string) *family.Family {
	t.Helper()
	f, err := family.Load([]byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	f.Dir = dir
	fam, err := f.Expand(family.ExpandOptions{Now: time.Now(), Getenv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	return fam
}

// TestFamilyPool: two BuildKit engines in the pool both build images of one family; when one is
// killed in the middle of a build, its image goes back to the queue and the family completes on
// the other.
func TestFamilyPool(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.BuildKit, testenv.Base)
	private := testenv.StartBuildkitd(t)
	shared := env[testenv.BuildKit]
	ns := fmt.Sprintf("pool-%d", time.Now().UnixNano())
	fam := poolFamily(t, env[testenv.Registry], env[testenv.Base], ns, "one", 4, shared, private.Addr)

	rep, err := RunFamily(context.Background(), fam, FamilyOptions{})
	if err != nil {
		t.Fatalf("%v\n%+v", err, rep)
	}
	used := map[string]int{}
	for _, img := range rep.Images {
		if img.Decision == result.DecisionPull {
			continue
		}
		if img.Decision != result.DecisionBuild {
			t.Errorf("%s: %s (%s)", img.Name, img.Decision, img.Reason)
		}
		used[img.Endpoint]++
	}
	if used[shared] == 0 || used[private.Addr] == 0 {
		t.Errorf("the pool was not shared: %v", used)
	}

	// Again with other content; the private engine dies as soon as it starts building.
	fam = poolFamily(t, env[testenv.Registry], env[testenv.Base], ns, "two", 4, shared, private.Addr)
	var once sync.Once
	rep, err = RunFamily(context.Background(), fam, FamilyOptions{Options: Options{Log: func(line string) {
		if strings.HasPrefix(line, "building ") && strings.HasSuffix(line, " on "+private.Addr) {
			once.Do(func() {
				go func() {
					time.Sleep(500 * time.Millisecond) // inside the RUN sleep
					private.Kill(t)
				}()
			})
		}
	}}})
	if err != nil {
		t.Fatalf("the family did not survive a lost engine: %v\n%+v", err, rep)
	}
	moved := 0
	for _, img := range rep.Images {
		if img.Decision == result.DecisionPull {
			continue
		}
		if img.Decision != result.DecisionBuild || img.Digest == "" {
			t.Errorf("%s: %s (%s)", img.Name, img.Decision, img.Reason)
		}
		if img.Attempts > 1 {
			moved++
			if img.Endpoint != shared {
				t.Errorf("%s finished on %s after its engine was lost", img.Name, img.Endpoint)
			}
		}
	}
	if moved == 0 {
		t.Errorf("no image was moved to the other engine: %+v", rep.Images)
	}
}
