package dockerfile

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Pin returns a copy of the Dockerfile data in which every use of an image named in pins — the
// base of a stage (also through a global ARG, as Inject does it), COPY --from and
// RUN --mount=from= — names pins[ref] instead. Keys are references as the Dockerfile resolves
// them (Stage.Base, ExternalImages); a family pins its parents to the digests just built, so a
// child builds FROM exactly them while tags move. buildArgs are the build's; the result's
// BuildArgs must be added to them. A key the Dockerfile does not use is ignored.
func Pin(data []byte, pins map[string]string, buildArgs map[string]string) (*Result, error) {
	f, err := Parse(data, buildArgs)
	if err != nil {
		return nil, err
	}
	// Stages are named by index: a reference may read like a stage index or name ("0").
	bases := map[string]string{}
	for _, s := range f.stages {
		if to, ok := pins[s.Base]; ok && s.FromImage() {
			bases[strconv.Itoa(s.Index)] = to
		}
	}
	res := &Result{Dockerfile: bytes.Clone(data), BuildArgs: map[string]string{}}
	if len(bases) > 0 {
		if res, err = Inject(data, Injection{Bases: bases}, buildArgs); err != nil {
			return nil, err
		}
	}
	// COPY --from and RUN --mount=from= are not expanded by BuildKit: their value is the text
	// as written, so the text is what is replaced.
	out := res.Dockerfile
	for _, from := range slices.Sorted(maps.Keys(pins)) {
		if !slices.Contains(f.ExternalImages(), from) {
			continue
		}
		out = replaceFlag(out, "--from="+from, "--from="+pins[from], func(byte) bool { return true })
		out = replaceFlag(out, "from="+from, "from="+pins[from], func(b byte) bool { return b == ',' || b == '=' })
	}
	res.Dockerfile = out
	g, err := Parse(out, mergeArgs(buildArgs, res.BuildArgs))
	if err != nil {
		return nil, fmt.Errorf("pinning images: %w: %w", errInternal, err)
	}
	for _, ref := range g.ExternalImages() {
		if _, left := pins[ref]; left && pins[ref] != ref {
			return nil, fmt.Errorf("pinning images: %w: %s is still used", errInternal, ref)
		}
	}
	return res, nil
}

// replaceFlag replaces old with new where old is a whole word: followed by white space, a comma,
// a line continuation or the end, and preceded by a byte that before accepts.
func replaceFlag(data []byte, old, new string, before func(byte) bool) []byte {
	var out bytes.Buffer
	for {
		i := bytes.Index(data, []byte(old))
		if i < 0 {
			out.Write(data)
			return out.Bytes()
		}
		end := i + len(old)
		whole := (end == len(data) || bytes.IndexByte([]byte(" \t\r\n,\\`"), data[end]) >= 0) &&
			(i == 0 || before(data[i-1]))
		if old[0] == '-' {
			whole = whole && (i == 0 || data[i-1] == ' ' || data[i-1] == '\t')
		}
		out.Write(data[:i])
		if whole {
			out.WriteString(new)
		} else {
			out.WriteString(old)
		}
		data = data[end:]
	}
}

func mergeArgs(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}
