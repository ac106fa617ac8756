package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// familyFixture copies testdata/family to a fresh directory with the registry and a namespace
// of its own filled in, and returns the family file's path.
func familyFixture(t *testing.T, registry, ns string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir("testdata/family", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/family", path)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		data = bytes.ReplaceAll(data, []byte("@REGISTRY@"), []byte(registry))
		data = bytes.ReplaceAll(data, []byte("@NS@"), []byte(ns))
		return os.WriteFile(out, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dst, "family.yaml")
}

type familyCLIRun struct {
	code   int
	stdout string
	stderr string
	rep    result.Report
}

// ibFamily runs the binary with args and decodes the report it prints.
func ibFamily(t *testing.T, tmp string, args ...string) familyCLIRun {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	err := cmd.Run()
	r := familyCLIRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(strings.TrimSpace(r.stdout), "{") {
		if err := json.Unmarshal(out.Bytes(), &r.rep); err != nil {
			t.Fatalf("stdout is not one JSON report: %v\n%s", err, r.stdout)
		}
	}
	return r
}

func (r familyCLIRun) image(t *testing.T, name string) result.FamilyImage {
	t.Helper()
	for _, img := range r.rep.Images {
		if img.Name == name {
			return img
		}
	}
	t.Fatalf("no image %s in the report:\n%s\n%s", name, r.stdout, r.stderr)
	return result.FamilyImage{}
}

// decisions maps each family image (not the pulled references) to its decision.
func (r familyCLIRun) decisions() map[string]string {
	out := map[string]string{}
	for _, img := range r.rep.Images {
		if img.Decision != result.DecisionPull {
			out[img.Name] = img.Decision
		}
	}
	return out
}

// tagDigest is the digest ref's tag serves, "" when it does not exist.
func tagDigest(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == 404 {
		return ""
	}
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return d.Digest.String()
}

// layers lists the layer digests of ref's image for platform ("": the only one).
func layers(t *testing.T, ref, platform string) []string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var opts []remote.Option
	if platform != "" {
		p, _ := v1.ParsePlatform(platform)
		opts = append(opts, remote.WithPlatform(*p))
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		d, _ := l.Digest()
		out = append(out, d.String())
	}
	return out
}

var familyNames = []string{"alt-root", "app", "argchild", "base", "component", "docs", "leaf-fail", "leaf-ok", "lib", "templated", "tools"}

// TestFamilyE2E is issue 11's acceptance on the fixture family (eleven images, two roots, a
// diamond through COPY --from, an ARG-based FROM, a template with header and footer, a component
// from a second source, a multi-platform image, a failing leaf), through the binary, BuildKit and
// the registry.
func TestFamilyE2E(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.BuildKit)
	reg := env[testenv.Registry]
	ns := fmt.Sprintf("family-%d", time.Now().UnixNano())
	file := familyFixture(t, reg, ns)
	dir := filepath.Dir(file)
	tmp := t.TempDir()
	builderFlag := "--builder=" + env[testenv.BuildKit]
	ref := func(img, tag string) string { return reg + "/" + ns + "/" + img + ":" + tag }

	// All or nothing: the failing leaf fails the run, and no tag of any image moves.
	logs := filepath.Join(dir, "logs")
	r := ibFamily(t, tmp, "family", "build", "-f", file, builderFlag, "--progress=plain", "--logs", logs, "--jobs", "3")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := r.image(t, "leaf-fail"); got.Decision != result.DecisionFailed || !strings.Contains(got.Error, "exit code: 3") {
		t.Errorf("leaf-fail: %+v", got)
	}
	if len(r.rep.Failed) != 1 || r.rep.Failed[0].Image != "leaf-fail" || r.rep.Changed {
		t.Errorf("failed %+v, changed %v", r.rep.Failed, r.rep.Changed)
	}
	for _, n := range familyNames {
		for _, tag := range []string{"latest", "candidate"} {
			if d := tagDigest(t, ref(n, tag)); d != "" {
				t.Errorf("%s was published (%s) although the run failed", ref(n, tag), d)
			}
		}
	}
	failedLog, err := os.ReadFile(filepath.Join(logs, "FAILED_leaf-fail.log"))
	if err != nil || !strings.Contains(string(failedLog), "fails on purpose") {
		t.Errorf("FAILED_leaf-fail.log: %v\n%s", err, failedLog)
	}
	noWorkspace(t, tmp)

	// --keep-going publishes everything but the failing leaf.
	r = ibFamily(t, tmp, "family", "build", "-f", file, builderFlag, "--progress=plain", "--keep-going", "--report", filepath.Join(dir, "report.yaml"))
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !r.rep.Changed || r.rep.Totals[result.DecisionFailed] != 1 {
		t.Errorf("changed %v, totals %v", r.rep.Changed, r.rep.Totals)
	}
	if d := tagDigest(t, ref("leaf-fail", "latest")); d != "" {
		t.Errorf("the failed leaf was published: %s", d)
	}
	byName := map[string]result.FamilyImage{}
	for _, img := range r.rep.Images {
		byName[img.Name] = img
	}
	for _, n := range slices.DeleteFunc(slices.Clone(familyNames), func(s string) bool { return s == "leaf-fail" }) {
		img := byName[n]
		if img.Decision != result.DecisionBuild || img.Digest == "" {
			t.Errorf("%s: %s (%s) %s", n, img.Decision, img.Reason, img.Error)
			continue
		}
		for _, tag := range []string{"latest", "candidate"} {
			if d := tagDigest(t, ref(n, tag)); d != img.Digest {
				t.Errorf("%s serves %s, the report says %s", ref(n, tag), d, img.Digest)
			}
		}
		// No image starts before all its parents finished; each names its parents' digests.
		for _, p := range img.Parents {
			parent := byName[p.Name]
			if p.Digest != parent.Digest {
				t.Errorf("%s built on %s@%s, which built %s", n, p.Name, p.Digest, parent.Digest)
			}
			if img.Started < parent.Finished {
				t.Errorf("%s started %s before its parent %s finished %s", n, img.Started, p.Name, parent.Finished)
			}
		}
	}
	parents := map[string][]string{
		"lib": {"base"}, "app": {"lib", "tools"}, "argchild": {"base"}, "templated": {"base"},
		"component": {"base"}, "docs": {"templated"}, "leaf-ok": {"app"}, "tools": {"alt-root"},
	}
	for child, want := range parents {
		var got []string
		for _, p := range byName[child].Parents {
			got = append(got, p.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("parents of %s: %v, want %v", child, got, want)
		}
	}
	// Built FROM the parent's very digest: the child's layers start with the parent's.
	for child, parent := range map[string]string{"lib": "base", "app": "lib", "argchild": "base", "docs": "templated", "leaf-ok": "app", "tools": "alt-root"} {
		pl := layers(t, reg+"/"+ns+"/"+parent+"@"+byName[parent].Digest, "linux/amd64")
		cl := layers(t, reg+"/"+ns+"/"+child+"@"+byName[child].Digest, "")
		if len(cl) <= len(pl) || !slices.Equal(cl[:len(pl)], pl) {
			t.Errorf("%s is not built FROM %s@%s:\n%v\n%v", child, parent, byName[parent].Digest, cl, pl)
		}
	}
	if got := fileIn(t, ref("component", "latest"), "", "/comp.txt"); got != "component from the second source\n" {
		t.Errorf("component: %q", got)
	}
	if got := fileIn(t, ref("templated", "latest"), "", "/greeting.txt"); got != "hello from the family\n" {
		t.Errorf("templated: %q", got)
	}
	if got := fileIn(t, ref("app", "latest"), "", "/app.txt"); got != "base v1\nlib v1\ntools\n" {
		t.Errorf("app (the diamond): %q", got)
	}
	if ps := byName["alt-root"].Platforms; len(ps) != 2 || ps[0].Digest == "" || ps[1].Digest == "" {
		t.Errorf("alt-root platforms: %+v", ps)
	}
	var fromFile result.Report
	if data, err := os.ReadFile(filepath.Join(dir, "report.yaml")); err != nil {
		t.Error(err)
	} else if err := yaml.Unmarshal(data, &fromFile); err != nil || len(fromFile.Images) != len(r.rep.Images) {
		t.Errorf("--report YAML: %v, %d images", err, len(fromFile.Images))
	}

	// A rerun without changes skips everything and sends nothing to BuildKit: its engine does
	// not even exist.
	r = ibFamily(t, tmp, "family", "build", "-f", file, "--builder=unix:///nonexistent/buildkitd.sock", "--exclude", "leaf-fail")
	if r.code != 0 {
		t.Fatalf("no-op rerun: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for n, d := range r.decisions() {
		if d != result.DecisionSkip {
			t.Errorf("no-op rerun: %s %s (%s)", n, d, r.image(t, n).Reason)
		}
	}
	if r.rep.Changed {
		t.Error("no-op rerun changed something")
	}

	// One file changed in lib's context: exactly lib and its descendants rebuild.
	if err := os.WriteFile(filepath.Join(dir, "main", "lib", "lib.txt"), []byte("lib v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = ibFamily(t, tmp, "family", "build", "-f", file, builderFlag, "--exclude", "leaf-fail")
	if r.code != 0 {
		t.Fatalf("after a change: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for n, d := range r.decisions() {
		want := result.DecisionSkip
		if n == "lib" || n == "app" || n == "leaf-ok" {
			want = result.DecisionBuild
		}
		if d != want {
			t.Errorf("after changing lib: %s %s, want %s (%s)", n, d, want, r.image(t, n).Reason)
		}
	}
	if got := fileIn(t, ref("leaf-ok", "latest"), "", "/app.txt"); got != "base v1\nlib v2\ntools\n" {
		t.Errorf("leaf-ok after the change: %q", got)
	}

	// Selection: a leaf brings its ancestors; --skip-parents only itself.
	// A plan takes its build's command line (--jobs, --keep-going, --logs change nothing).
	r = ibFamily(t, tmp, "family", "plan", "-f", file, "leaf-ok", "--jobs", "2", "--keep-going", "--logs", filepath.Join(dir, "plan-logs"))
	if got, want := slices.Sorted(maps.Keys(r.decisions())), []string{"alt-root", "app", "base", "leaf-ok", "lib", "tools"}; !slices.Equal(got, want) || r.code != 0 {
		t.Errorf("plan leaf-ok: exit %d, %v, want %v\n%s", r.code, got, want, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "plan-logs")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a plan wrote a logs directory: %v", err)
	}
	r = ibFamily(t, tmp, "family", "plan", "-f", file, "leaf-ok", "--skip-parents")
	if got := slices.Sorted(maps.Keys(r.decisions())); !slices.Equal(got, []string{"leaf-ok"}) || r.code != 0 {
		t.Errorf("plan leaf-ok --skip-parents: exit %d, %v\n%s", r.code, got, r.stderr)
	}

	// The graph renders with graphviz and has every edge.
	r = ibFamily(t, tmp, "family", "graph", "-f", file)
	if r.code != 0 {
		t.Fatalf("graph: exit %d\n%s", r.code, r.stderr)
	}
	dot := testenv.Dot(t)
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = strings.NewReader(r.stdout)
	svg, err := cmd.Output()
	if err != nil {
		t.Fatalf("dot -Tsvg: %v\n%s", err, r.stdout)
	}
	for child, ps := range parents {
		for _, p := range ps {
			esc := func(s string) string { return strings.ReplaceAll(s, "-", "&#45;") }
			if edge := esc(p) + "&#45;&gt;" + esc(child); !bytes.Contains(svg, []byte(edge)) {
				t.Errorf("edge %s -> %s missing from the SVG", p, child)
			}
		}
	}

	// CORD's view of the report.
	r = ibFamily(t, tmp, "family", "plan", "-f", file, "--report-format", "cord")
	var cord map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &cord); err != nil || cord["ib_preexisting"] == nil || cord["ib_built"] == nil {
		t.Errorf("--report-format cord: %v\n%s", err, r.stdout)
	}
	noWorkspace(t, tmp)
}
