package dockerfile

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

var updateCorpus = flag.Bool("update-corpus", false, "write the Inject table cases to testdata/fuzz/FuzzInject")

// fuzzArgs turns a table case into FuzzInject's arguments: the Dockerfile,
// base, one bases key and its reference, and one build arg as "K=V".
func fuzzArgs(tc injectCase) [5]string {
	var key, ref, arg string
	if keys := slices.Sorted(maps.Keys(tc.inj.Bases)); len(keys) > 0 {
		key, ref = keys[0], tc.inj.Bases[keys[0]]
	}
	for _, k := range slices.Sorted(maps.Keys(tc.buildArgs)) {
		arg = k + "=" + tc.buildArgs[k]
		break
	}
	return [5]string{tc.in, tc.inj.Base, key, ref, arg}
}

func FuzzInject(f *testing.F) {
	for _, tc := range injectCases {
		a := fuzzArgs(tc)
		f.Add(a[0], a[1], a[2], a[3], a[4])
	}
	f.Fuzz(func(t *testing.T, dockerfile, base, key, ref, buildArg string) {
		inj := Injection{Base: base}
		if key != "" || ref != "" {
			inj.Bases = map[string]string{key: ref}
		}
		var args map[string]string
		if k, v, ok := strings.Cut(buildArg, "="); ok {
			args = map[string]string{k: v}
		}
		in := []byte(dockerfile)
		res, err := Inject(in, inj, args)
		if string(in) != dockerfile {
			t.Fatal("Inject modified its input")
		}
		if errors.Is(err, errInternal) {
			t.Fatal(err)
		}
		if err != nil {
			return
		}
		if err := checkInjected(in, res, args); err != nil {
			t.Fatal(err)
		}
		// Replace each stage alone, and all at once, to check every kind of
		// FROM the input has, not only the one the arguments select.
		file, err := Parse(in, args)
		if err != nil {
			t.Fatalf("Inject succeeded but Parse fails: %v", err)
		}
		if err := checkReferences(file); err != nil {
			t.Fatal(err)
		}
		checkPin(t, in, file, args)
		all := map[string]string{}
		for i := range min(len(file.stages), 8) {
			key := strconv.Itoa(i)
			all[key] = "example.com/fuzz:" + key
			res, err := Inject(in, Injection{Bases: map[string]string{key: all[key]}}, args)
			if errors.Is(err, errInternal) {
				t.Fatalf("stage %d: %v", i, err)
			}
			if err == nil {
				if err := checkInjected(in, res, args); err != nil {
					t.Fatalf("stage %d: %v", i, err)
				}
			}
		}
		res, err = Inject(in, Injection{Bases: all}, args)
		if errors.Is(err, errInternal) {
			t.Fatalf("all stages: %v", err)
		}
		if err == nil {
			if err := checkInjected(in, res, args); err != nil {
				t.Fatalf("all stages: %v", err)
			}
		}
	})
}

// TestWriteFuzzCorpus regenerates the seed corpus from the table cases when
// run with -update-corpus.
func TestWriteFuzzCorpus(t *testing.T) {
	testenv.OnlyWith(t, *updateCorpus, "-update-corpus to rewrite testdata/fuzz/FuzzInject/seed-*")
	dir := filepath.Join("testdata", "fuzz", "FuzzInject")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	unsafe := regexp.MustCompile(`[^a-z0-9]+`)
	for _, tc := range injectCases {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, s := range fuzzArgs(tc) {
			fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(s))
		}
		name := "seed-" + strings.Trim(unsafe.ReplaceAllString(strings.ToLower(tc.name), "-"), "-")
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkInjected verifies what every successful Inject guarantees: the output
// parses with BuildKit's parser; it resolves to the new bases, with
// BuildArgs; stages without a change are byte for byte the same; a stage
// changed through an ARG is too; a stage changed directly differs only in its
// FROM argument; and the part before the first FROM only changes for ARGs.
func checkInjected(in []byte, res *Result, buildArgs map[string]string) error {
	out := res.Dockerfile
	pr, err := parser.Parse(bytes.NewReader(out))
	if err != nil {
		return fmt.Errorf("output does not parse: %v\n%q", err, out)
	}
	if _, _, err := instructions.Parse(pr.AST, linter.New(&linter.Config{})); err != nil {
		return fmt.Errorf("output does not parse: %v\n%q", err, out)
	}
	a, err := Parse(in, buildArgs)
	if err != nil {
		return fmt.Errorf("input: %v", err)
	}
	merged := maps.Clone(buildArgs)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, res.BuildArgs)
	b, err := Parse(out, merged)
	if err != nil {
		return fmt.Errorf("output: %v\n%q", err, out)
	}
	if len(a.stages) != len(b.stages) {
		return fmt.Errorf("%d stages became %d:\n%q", len(a.stages), len(b.stages), out)
	}
	changed := map[int]Change{}
	viaArg := false
	for _, c := range res.Changes {
		changed[c.Stage] = c
		if c.Arg != "" {
			viaArg = true
			if res.BuildArgs[c.Arg] != c.To {
				return fmt.Errorf("change %+v: BuildArgs[%s] = %q", c, c.Arg, res.BuildArgs[c.Arg])
			}
		}
	}
	for i, sa := range a.stages {
		ina, outb := stageBytes(a, i), stageBytes(b, i)
		want := ina
		c, ok := changed[i]
		if ok && c.Arg == "" {
			off := a.src.lineOffset(sa.StartLine)
			want = slices.Concat(ina[:sa.token.start-off], []byte(c.To), ina[sa.token.end-off:])
		}
		if !bytes.Equal(outb, want) {
			return fmt.Errorf("stage %d: got %q, want %q", i, outb, want)
		}
		wantBase := sa.Base
		if ok {
			wantBase = c.To
		}
		if sb := b.stages[i]; sb.Base != wantBase || sb.Name != sa.Name || sb.Platform != sa.Platform || sb.platform != sa.platform {
			return fmt.Errorf("stage %s became %s, want base %q", sa.Stage, sb.Stage, wantBase)
		}
	}
	pa := in[:a.src.lineOffset(a.stages[0].StartLine)]
	pb := out[:b.src.lineOffset(b.stages[0].StartLine)]
	if !viaArg && !bytes.Equal(pa, pb) {
		return fmt.Errorf("text before the first FROM changed: %q became %q", pa, pb)
	}
	return nil
}

// stageBytes returns the source of stage i: from its FROM line to the next
// FROM line.
func stageBytes(f *File, i int) []byte {
	start := f.src.lineOffset(f.stages[i].StartLine)
	end := len(f.src.data)
	if i+1 < len(f.stages) {
		end = f.src.lineOffset(f.stages[i+1].StartLine)
	}
	return f.src.data[start:end]
}

// checkPin pins every image the Dockerfile uses (as a family pins its parents) and checks that
// the result uses exactly the pinned references, or that Pin refused with a user error.
func checkPin(t *testing.T, in []byte, file *File, args map[string]string) {
	t.Helper()
	pins := map[string]string{}
	for i, ref := range file.ExternalImages() {
		pins[ref] = fmt.Sprintf("example.com/pinned%d@sha256:%064d", i, i)
	}
	res, err := Pin(in, pins, args)
	if errors.Is(err, errInternal) {
		t.Fatalf("Pin: %v", err)
	}
	if err != nil {
		return // a base that Inject refuses to replace (an ARG the build args also set, say)
	}
	merged := maps.Clone(args)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, res.BuildArgs)
	out, err := Parse(res.Dockerfile, merged)
	if err != nil {
		t.Fatalf("pinned Dockerfile does not parse: %v\n%s", err, res.Dockerfile)
	}
	for _, ref := range out.ExternalImages() {
		if _, unpinned := pins[ref]; unpinned {
			t.Fatalf("%s is still used after pinning:\n%s", ref, res.Dockerfile)
		}
	}
}
