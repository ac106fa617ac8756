package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"
)

// Injection says which base images to replace. The zero value replaces
// nothing.
type Injection struct {
	// Base replaces the base of the first stage built FROM an image (not
	// FROM an earlier stage, not FROM scratch). SODALITE's "base".
	Base string
	// Bases maps a key to a replacement reference. A key is a stage name
	// ("build"), a stage index ("0"), or an image reference as written in a
	// FROM or as resolved ("golang:1.16"); every stage the key matches has
	// its base replaced.
	Bases map[string]string
}

// Change records one replaced base.
type Change struct {
	Stage     int
	StageName string // "" when the stage has no name
	From      string // the base before, resolved (Stage.Base)
	To        string // the injected base
	// Arg is the global ARG whose default was changed (and which is passed in
	// Result.BuildArgs), or "" when the FROM argument itself was rewritten.
	Arg string
}

// Result is a rewritten Dockerfile.
type Result struct {
	// Dockerfile is the rewritten copy; the input is not modified.
	Dockerfile []byte
	// Changes lists the replaced bases, by stage index.
	Changes []Change
	// BuildArgs are build args the build must be given on top of the
	// caller's own, for bases injected through an ARG. Never nil.
	BuildArgs map[string]string
}

// edit replaces the bytes of at with text.
type edit struct {
	at   span
	text string
}

// Inject returns a copy of the Dockerfile data with the bases inj asks for
// replaced. buildArgs are the build args the build will use (for resolving
// ARG-based FROMs); they are not modified. See the package documentation for
// the rules.
func Inject(data []byte, inj Injection, buildArgs map[string]string) (*Result, error) {
	f, err := Parse(data, buildArgs)
	if err != nil {
		return nil, err
	}
	want, err := f.targets(inj)
	if err != nil {
		return nil, err
	}
	res := &Result{Dockerfile: bytes.Clone(data), BuildArgs: map[string]string{}}
	if len(want) == 0 {
		return res, nil
	}

	// Stages whose FROM argument is exactly $NAME or ${NAME}, NAME being a
	// global ARG, get the new base through that ARG's default when that
	// changes nothing else.
	groups := map[string][]int{}
	for i := range want {
		if name := f.stages[i].argRef; name != "" && f.argDecl(name) != nil {
			groups[name] = append(groups[name], i)
		}
	}
	viaArg := map[int]string{}
	var edits []edit
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		idxs := groups[name]
		slices.Sort(idxs)
		if _, ok := buildArgs[name]; ok {
			return nil, fmt.Errorf("stage %s takes its base from ARG %s, which the build args also set: remove that build arg or the base override", f.stages[idxs[0]].Stage, name)
		}
		to := want[idxs[0]]
		same := true
		for _, i := range idxs {
			same = same && want[i] == to
		}
		d := f.argDecl(name)
		if !same || !d.located {
			continue // rewrite the FROM arguments instead
		}
		// Try the edit alone. Other replaced stages do not count: they get
		// their new base from a literal, whichever way.
		e := argEdit(d, to)
		exp, skip := map[int]string{}, map[int]bool{}
		for i := range want {
			skip[i] = true
		}
		for _, i := range idxs {
			exp[i], skip[i] = want[i], false
		}
		if f.check(apply(data, []edit{e}), buildArgs, map[string]string{name: to}, exp, skip) != nil {
			continue // the ARG feeds something else too: rewrite the FROM arguments instead
		}
		edits = append(edits, e)
		res.BuildArgs[name] = to
		for _, i := range idxs {
			viaArg[i] = name
		}
	}

	for _, i := range slices.Sorted(maps.Keys(want)) {
		s := f.stages[i]
		arg, ok := viaArg[i]
		if !ok {
			edits = append(edits, edit{at: s.token, text: want[i]})
		}
		res.Changes = append(res.Changes, Change{Stage: i, StageName: s.Name, From: s.Base, To: want[i], Arg: arg})
	}
	res.Dockerfile = apply(data, edits)
	if err := f.check(res.Dockerfile, buildArgs, res.BuildArgs, want, nil); err != nil {
		return nil, fmt.Errorf("rewriting Dockerfile: %w: %w", errInternal, err)
	}
	return res, nil
}

// targets resolves the injection to the replacement reference per stage.
func (f *File) targets(inj Injection) (map[int]string, error) {
	want := map[int]string{}
	by := map[int]string{}
	assign := func(i int, ref, sel string) error {
		if j := slices.IndexFunc(f.stages[:i], func(s stageInfo) bool { return s.Name == ref }); j >= 0 {
			return fmt.Errorf("%s: image reference %q is the name of stage %s, so BuildKit would build FROM that stage; qualify the image (for example docker.io/library/%s)", sel, ref, f.stages[j].Stage, ref)
		}
		if prev, ok := want[i]; ok && prev != ref {
			return fmt.Errorf("%s and %s both replace the base of stage %s, with %q and %q", by[i], sel, f.stages[i].Stage, prev, ref)
		}
		if _, ok := want[i]; !ok {
			want[i], by[i] = ref, sel
		}
		return nil
	}
	if inj.Base != "" {
		if err := validRef(inj.Base); err != nil {
			return nil, fmt.Errorf("base: %w", err)
		}
		i := slices.IndexFunc(f.stages, func(s stageInfo) bool { return s.FromImage() })
		if i < 0 {
			return nil, fmt.Errorf("base %q: no stage is built FROM an image; stages: %s", inj.Base, f.describeStages())
		}
		if err := assign(i, inj.Base, "base"); err != nil {
			return nil, err
		}
	}
	for _, key := range slices.Sorted(maps.Keys(inj.Bases)) {
		ref := inj.Bases[key]
		if key == "" {
			return nil, errors.New(`bases: empty key`)
		}
		if err := validRef(ref); err != nil {
			return nil, fmt.Errorf("bases key %q: %w", key, err)
		}
		idxs := f.match(key)
		if len(idxs) == 0 {
			return nil, fmt.Errorf("bases key %q matches no stage or image; stages: %s", key, f.describeStages())
		}
		for _, i := range idxs {
			if err := assign(i, ref, fmt.Sprintf("bases key %q", key)); err != nil {
				return nil, err
			}
		}
	}
	return want, nil
}

// validRef checks a replacement reference.
func validRef(ref string) error {
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return nil
}

// match returns the stages a bases key selects: the stage with that index or
// name if there is one, else the stages whose FROM names that image.
func (f *File) match(key string) []int {
	if n, err := strconv.Atoi(key); err == nil && strconv.Itoa(n) == key && n >= 0 && n < len(f.stages) {
		return []int{n}
	}
	var out []int
	for i, s := range f.stages {
		if s.Name != "" && s.Name == strings.ToLower(key) {
			out = append(out, i)
		}
	}
	if len(out) > 0 {
		return out
	}
	for i, s := range f.stages {
		if s.BaseWritten == key || s.Base == key || (s.FromImage() && sameImage(key, s.Base)) {
			out = append(out, i)
		}
	}
	return out
}

// sameImage reports whether a and b name the same image once normalized
// ("golang" and "docker.io/library/golang:latest").
func sameImage(a, b string) bool {
	ra, err := reference.ParseNormalizedNamed(a)
	if err != nil {
		return false
	}
	rb, err := reference.ParseNormalizedNamed(b)
	if err != nil {
		return false
	}
	return reference.TagNameOnly(ra).String() == reference.TagNameOnly(rb).String()
}

func (f *File) describeStages() string {
	parts := make([]string, len(f.stages))
	for i, s := range f.stages {
		parts[i] = s.Stage.String()
	}
	return strings.Join(parts, ", ")
}

// argDecl returns the global declaration of name that sets the value FROM
// arguments see: the last one with a default, else the last one.
func (f *File) argDecl(name string) *argDecl {
	var last *argDecl
	for i := range f.args {
		d := &f.args[i]
		if d.name != name {
			continue
		}
		if d.hasValue || last == nil || !last.hasValue {
			last = d
		}
	}
	return last
}

func argEdit(d *argDecl, to string) edit {
	if d.hasValue {
		return edit{at: d.value, text: to}
	}
	return edit{at: d.value, text: "=" + to}
}

// apply returns data with the non-overlapping edits applied.
func apply(data []byte, edits []edit) []byte {
	edits = slices.Clone(edits)
	slices.SortFunc(edits, func(a, b edit) int { return a.at.start - b.at.start })
	var out bytes.Buffer
	last := 0
	for _, e := range edits {
		out.Write(data[last:e.at.start])
		out.WriteString(e.text)
		last = e.at.end
	}
	out.Write(data[last:])
	return out.Bytes()
}

// check parses a rewritten file, with buildArgs and with buildArgs plus
// extra, and verifies every stage keeps its name and platform (as written and
// resolved) and, unless skipped, resolves to want[i] if set, else to its
// original base.
func (f *File) check(out []byte, buildArgs, extra map[string]string, want map[int]string, skip map[int]bool) error {
	merged := maps.Clone(buildArgs)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, extra)
	for _, args := range []map[string]string{buildArgs, merged} {
		g, err := Parse(out, args)
		if err != nil {
			return err
		}
		if len(g.stages) != len(f.stages) {
			return fmt.Errorf("%d stages instead of %d", len(g.stages), len(f.stages))
		}
		for i, s := range f.stages {
			t := g.stages[i]
			if skip[i] {
				if t.Name != s.Name || t.Platform != s.Platform || t.platform != s.platform {
					return fmt.Errorf("stage %s became %s", s.Stage, t.Stage)
				}
				continue
			}
			exp, ok := want[i]
			if !ok {
				exp = s.Base
			}
			if t.Name != s.Name || t.Platform != s.Platform || t.platform != s.platform || t.Base != exp {
				return fmt.Errorf("stage %s became %s, want base %q", s.Stage, t.Stage, exp)
			}
		}
	}
	return nil
}
