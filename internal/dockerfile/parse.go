package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Scratch is the base name BuildKit treats as an empty file system.
const Scratch = "scratch"

// Stage describes one FROM instruction and the stage it starts.
type Stage struct {
	// Index is the stage's position in the file, starting at 0.
	Index int
	// Name is the name given with "AS name", lowercased as BuildKit does it,
	// or "" when there is none.
	Name string
	// BaseWritten is the FROM argument exactly as written, e.g. "${BASE}".
	BaseWritten string
	// Base is BaseWritten after expanding the global ARGs (their defaults,
	// overridden by the build args given to Parse) and BuildKit's built-in
	// platform ARGs, e.g. "golang:1.16"; "" when it expands to nothing (an ARG
	// with no default and no build arg).
	Base string
	// Platform is the --platform flag as written, "" when there is none.
	Platform string
	// FromStage reports that Base is the name of an earlier stage (compared
	// exactly, as BuildKit does).
	FromStage bool
	// Scratch reports that Base is "scratch": the stage starts from an
	// empty file system, neither an earlier stage nor an image.
	Scratch bool
	// StartLine is the line of the FROM instruction and EndLine the last line
	// of the stage's last instruction (1-based, inclusive).
	StartLine, EndLine int
}

// FromImage reports whether the stage is built FROM an image: neither FROM
// an earlier stage nor FROM scratch.
func (s Stage) FromImage() bool { return !s.FromStage && !s.Scratch }

// String describes the stage for messages: `0 (build) golang:1.16`,
// `1 ${BASE} (= alpine:3.18)`, `2 build (stage)`.
func (s Stage) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(s.Index))
	if s.Name != "" {
		fmt.Fprintf(&b, " (%s)", s.Name)
	}
	b.WriteByte(' ')
	switch {
	case s.BaseWritten == s.Base:
		b.WriteString(s.Base)
	case s.Base == "":
		fmt.Fprintf(&b, "%s (empty)", s.BaseWritten)
	default:
		fmt.Fprintf(&b, "%s (= %s)", s.BaseWritten, s.Base)
	}
	if s.FromStage {
		b.WriteString(" (stage)")
	}
	return b.String()
}

// File is a parsed Dockerfile.
type File struct {
	src     *text
	stages  []stageInfo
	args    []argDecl // global ARG declarations, in order
	argEnv  *env      // the global ARG scope the FROMs are expanded in
	refs    []Reference
	nameSet map[string]bool
}

type stageInfo struct {
	Stage
	token    span   // the image argument of the FROM
	argRef   string // NAME when the argument is exactly $NAME or ${NAME}
	platform string // Platform expanded like Base (as written if that fails)
}

// argDecl is one NAME[=value] of a global ARG instruction.
type argDecl struct {
	name     string
	hasValue bool
	// value is the raw value after '=', or the insertion point just after
	// NAME when there is no '='. Zero with located false when it could not
	// be located.
	value   span
	located bool
}

// errInternal marks failures where this package and BuildKit's parser
// disagree about a file BuildKit accepts: bugs, never the user's fault.
var errInternal = errors.New("internal error")

var pureVarRef = regexp.MustCompile(`^\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})$`)

// Parse parses a Dockerfile with BuildKit's parser. buildArgs are the build
// arguments the build will be given (may be nil); they override global ARG
// defaults when resolving FROM arguments, as in BuildKit.
func Parse(data []byte, buildArgs map[string]string) (*File, error) {
	if len(bytes.TrimSpace(bytes.TrimPrefix(data, bom))) == 0 {
		return nil, errors.New("parsing Dockerfile: file is empty")
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parsing Dockerfile: %w", withLine(err))
	}
	lint := linter.New(&linter.Config{SkipAll: true}) // instructions.Parse needs a non-nil linter for "# check=" comments
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		if !strings.Contains(err.Error(), "line ") {
			err = withLine(err)
		}
		return nil, fmt.Errorf("parsing Dockerfile: %w", err)
	}
	if len(stages) == 0 {
		return nil, errors.New("parsing Dockerfile: no FROM instruction")
	}

	f := &File{
		src:     newText(data, res.EscapeToken),
		nameSet: map[string]bool{},
	}
	var fromNodes, argNodes []*parser.Node
	var lastLines []int // last line of each stage
	for _, n := range res.AST.Children {
		switch {
		case strings.EqualFold(n.Value, "from"):
			fromNodes = append(fromNodes, n)
			lastLines = append(lastLines, n.EndLine)
		case len(fromNodes) == 0 && strings.EqualFold(n.Value, "arg"):
			argNodes = append(argNodes, n)
		case len(lastLines) > 0:
			lastLines[len(lastLines)-1] = n.EndLine
		}
	}
	if len(fromNodes) != len(stages) || len(argNodes) != len(metaArgs) {
		return nil, fmt.Errorf("parsing Dockerfile: %w: %d FROM and %d global ARG instructions, but BuildKit found %d stages and %d global ARGs", errInternal, len(fromNodes), len(argNodes), len(stages), len(metaArgs))
	}

	f.argEnv, err = globalArgs(stages, metaArgs, buildArgs, res.EscapeToken)
	if err != nil {
		return nil, fmt.Errorf("parsing Dockerfile: %w", err)
	}
	for i, n := range argNodes {
		decls := f.locateArgs(n)
		if len(decls) != len(metaArgs[i].Args) {
			return nil, fmt.Errorf("parsing Dockerfile: line %d: %w: ARG has %d names, BuildKit found %d", n.StartLine, errInternal, len(decls), len(metaArgs[i].Args))
		}
		f.args = append(f.args, decls...)
	}

	lex := shell.NewLex(res.EscapeToken)
	for i, st := range stages {
		n := fromNodes[i]
		expanded, err := lex.ProcessWordWithMatches(st.BaseName, f.argEnv)
		if err != nil {
			return nil, fmt.Errorf("parsing Dockerfile: line %d: expanding FROM %q: %w", n.StartLine, st.BaseName, err)
		}
		si := stageInfo{Stage: Stage{
			Index:       i,
			Name:        st.Name,
			BaseWritten: st.BaseName,
			Base:        expanded.Result,
			Platform:    st.Platform,
			FromStage:   f.nameSet[expanded.Result],
			Scratch:     expanded.Result == Scratch,
			StartLine:   n.StartLine,
			EndLine:     lastLines[i],
		}}
		si.platform = st.Platform
		if p, err := lex.ProcessWordWithMatches(st.Platform, f.argEnv); err == nil {
			si.platform = p.Result
		}
		if m := pureVarRef.FindStringSubmatch(st.BaseName); m != nil {
			si.argRef = m[1] + m[2]
		}
		var words []string
		for w := n.Next; w != nil; w = w.Next {
			words = append(words, w.Value)
		}
		ll := f.src.logicalLine(n.StartLine)
		if len(words) == 0 || words[0] != st.BaseName {
			return nil, fmt.Errorf("parsing Dockerfile: line %d: %w: FROM arguments %q do not start with the base %q", n.StartLine, errInternal, words, st.BaseName)
		}
		starts, err := wordsFromEnd(ll.text, words, isFromSep)
		if err != nil {
			return nil, fmt.Errorf("parsing Dockerfile: line %d: %w: %w", n.StartLine, errInternal, err)
		}
		si.token = ll.span(starts[0], starts[0]+len(words[0]))
		if st.Name != "" {
			f.nameSet[st.Name] = true
		}
		f.stages = append(f.stages, si)
	}
	f.refs = f.references(stages)
	return f, nil
}

// withLine adds the line number BuildKit's parser attaches to its errors.
func withLine(err error) error {
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		if line := le.Locations[0][0].Start.Line; line > 0 {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return err
}

// locateArgs finds the NAME[=value] words of a global ARG instruction.
func (f *File) locateArgs(n *parser.Node) []argDecl {
	var words []string
	for w := n.Next; w != nil; w = w.Next {
		words = append(words, w.Value)
	}
	ll := f.src.logicalLine(n.StartLine)
	starts, err := wordsFromEnd(ll.text, words, unicode.IsSpace)
	decls := make([]argDecl, len(words))
	for i, w := range words {
		name, value, hasValue := strings.Cut(w, "=")
		decls[i] = argDecl{name: name, hasValue: hasValue}
		if err != nil {
			continue // the default cannot be rewritten; Inject falls back to the FROM argument
		}
		decls[i].located = true
		if hasValue {
			end := starts[i] + len(w)
			decls[i].value = ll.span(end-len(value), end)
		} else {
			decls[i].value = ll.span(starts[i]+len(w), starts[i]+len(w))
		}
	}
	return decls
}

// Stages returns the stages in file order.
func (f *File) Stages() []Stage {
	out := make([]Stage, len(f.stages))
	for i, s := range f.stages {
		out[i] = s.Stage
	}
	return out
}

// ExternalImages returns the distinct images the Dockerfile depends on, in
// the order they first appear: the resolved bases of stages built FROM an
// image, then, in file order, images named by COPY --from and
// RUN --mount=from= that are not stage names or indexes (BuildKit does not
// expand variables there; such values are left out). Values that are "",
// "scratch" or not a valid reference are left out. References are returned as
// resolved, not normalized: compare them with reference.ParseNormalizedNamed.
// It is the Ref of each of [File.References], without repetitions.
func (f *File) ExternalImages() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range f.refs {
		if !seen[r.Ref] {
			seen[r.Ref] = true
			out = append(out, r.Ref)
		}
	}
	return out
}

// Reference is one place where the Dockerfile uses an image: a FROM, a
// COPY --from or a RUN --mount=from= that names neither a stage nor scratch.
type Reference struct {
	// Ref is the image as resolved: a FROM argument after ARG expansion, a
	// --from value as written (BuildKit does not expand those). Not
	// normalized: compare with reference.ParseNormalizedNamed.
	Ref string `json:"ref"`
	// Platform is a FROM's --platform after ARG expansion, "" when there is
	// none (and always for COPY and RUN).
	Platform string `json:"platform,omitempty"`
	// Kind is [RefFrom], [RefCopy] or [RefMount].
	Kind string `json:"kind"`
	// Stage is the index of the stage the instruction belongs to.
	Stage int `json:"stage"`
	// Line is the 1-based line of the instruction.
	Line int `json:"line"`
}

// Kinds of [Reference].
const (
	RefFrom  = "from"  // FROM image
	RefCopy  = "copy"  // COPY --from=image
	RefMount = "mount" // RUN --mount=from=image
)

// References returns every use of an image, in file order (within a stage:
// its FROM, then its COPY and RUN instructions): the FROM of each stage built
// FROM an image, and each COPY --from and RUN --mount=from= naming an image.
// Repetitions are kept, so the same image may appear with different kinds
// and platforms. What counts as an image is as for [File.ExternalImages].
func (f *File) References() []Reference {
	return append([]Reference(nil), f.refs...)
}

func (f *File) references(stages []instructions.Stage) []Reference {
	var out []Reference
	add := func(r Reference) {
		if r.Ref == "" || r.Ref == Scratch {
			return
		}
		if _, err := reference.ParseNormalizedNamed(r.Ref); err != nil {
			return // not an image: BuildKit would fail on it, and so would a lookup
		}
		out = append(out, r)
	}
	// COPY --from and RUN --mount=from name a stage (of any position, case
	// insensitively) or, failing that, an image; they are not expanded.
	addFrom := func(kind, from string, stage int, cmd instructions.Command) {
		if strings.Contains(from, "$") || f.nameSet[strings.ToLower(from)] {
			return
		}
		add(Reference{Ref: from, Kind: kind, Stage: stage, Line: line(cmd)})
	}
	for i, s := range f.stages {
		if s.FromImage() {
			add(Reference{Ref: s.Base, Platform: s.platform, Kind: RefFrom, Stage: i, Line: s.StartLine})
		}
		for _, cmd := range stages[i].Commands {
			switch c := cmd.(type) {
			case *instructions.CopyCommand:
				if _, err := strconv.Atoi(c.From); err != nil {
					addFrom(RefCopy, c.From, i, c)
				}
			case *instructions.RunCommand:
				for _, m := range instructions.GetMounts(c) {
					addFrom(RefMount, m.From, i, c)
				}
			}
		}
	}
	return out
}

// line is the first line of an instruction, 0 when BuildKit gave none.
func line(cmd instructions.Command) int {
	if loc := cmd.Location(); len(loc) > 0 {
		return loc[0].Start.Line
	}
	return 0
}

// env is the global ARG scope, in the shape BuildKit's shell lexer reads.
type env struct {
	keys []string
	vals map[string]string
}

func (e *env) Get(k string) (string, bool) { v, ok := e.vals[k]; return v, ok }
func (e *env) Keys() []string              { return e.keys }

func (e *env) set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

// globalArgs builds the scope FROM arguments are expanded in, as BuildKit's
// dockerfile2llb does: the built-in platform ARGs (for the platform this
// program runs on unless buildArgs set them), then the global ARGs in order,
// each taking its build arg if given, else its expanded default.
func globalArgs(stages []instructions.Stage, metaArgs []instructions.ArgCommand, buildArgs map[string]string, escape rune) (*env, error) {
	e := &env{vals: map[string]string{}}
	p := platforms.Normalize(platforms.DefaultSpec())
	target := stages[len(stages)-1].Name
	if target == "" {
		target = "default"
	}
	for _, kv := range [...][2]string{
		{"BUILDPLATFORM", platforms.Format(p)},
		{"BUILDOS", p.OS},
		{"BUILDOSVERSION", p.OSVersion},
		{"BUILDARCH", p.Architecture},
		{"BUILDVARIANT", p.Variant},
		{"TARGETPLATFORM", platforms.Format(p)},
		{"TARGETOS", p.OS},
		{"TARGETOSVERSION", p.OSVersion},
		{"TARGETARCH", p.Architecture},
		{"TARGETVARIANT", p.Variant},
		{"TARGETSTAGE", target},
	} {
		v := kv[1]
		if ov, ok := buildArgs[kv[0]]; ok {
			v = ov
		}
		e.set(kv[0], v)
	}
	lex := shell.NewLex(escape)
	for _, cmd := range metaArgs {
		for _, kp := range cmd.Args {
			if v, ok := buildArgs[kp.Key]; ok {
				e.set(kp.Key, v)
				continue
			}
			if kp.Value == nil {
				continue
			}
			res, err := lex.ProcessWordWithMatches(*kp.Value, e)
			if err != nil {
				return nil, fmt.Errorf("expanding the default of ARG %s: %w", kp.Key, err)
			}
			e.set(kp.Key, res.Result)
		}
	}
	return e, nil
}
