package dockerfile

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// genDockerfile writes a random Dockerfile from the pieces that break naive
// rewriting: directives, escape characters, CRLF, continuations with comments
// and empty lines inside, flags, ARG-based FROMs, stage references, scratch,
// heredocs and comments mentioning FROM.
func genDockerfile(r *rand.Rand) string {
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	nl := pick("\n", "\r\n")
	esc := `\`
	var b strings.Builder
	if r.IntN(3) == 0 {
		b.WriteString("# syntax=docker/dockerfile:1" + nl)
	}
	if r.IntN(3) == 0 {
		esc = "`"
		b.WriteString("# escape=`" + nl)
	}
	// sep is white space between words, sometimes a line continuation with
	// comments and empty lines in it.
	sep := func() string {
		switch r.IntN(6) {
		case 0:
			return "\t"
		case 1:
			return " " + esc + nl + pick("", "# FROM a comment"+nl, nl) + pick(" ", "  ", "\t")
		case 2:
			return esc + nl + " "
		default:
			return " "
		}
	}
	argNames := []string{"BASE", "TAG", "IMG"}
	for range r.IntN(4) {
		name := pick(argNames...)
		b.WriteString(pick("ARG", "arg") + " ")
		if r.IntN(4) == 0 {
			b.WriteString("X=1" + sep())
		}
		switch r.IntN(5) {
		case 0:
			b.WriteString(name)
		case 1:
			b.WriteString(name + `="alpine:3.18"`)
		case 2:
			b.WriteString(name + "=${TAG:-3.18}")
		default:
			b.WriteString(name + "=" + pick("alpine:3.18", "golang:1.16", "3.18", "debian"))
		}
		b.WriteString(nl)
	}
	var names []string
	for i := range 1 + r.IntN(4) {
		b.WriteString(pick("", " ", "\t") + pick("FROM", "from", "From"))
		b.WriteString(pick(" ", "\t", " "+esc+nl+"  "))
		if r.IntN(3) == 0 {
			b.WriteString(pick("--platform=$BUILDPLATFORM", "--platform=linux/amd64", "--platform=${TARGETPLATFORM}") + sep())
		}
		bases := []string{"alpine:3.18", "golang:1.16", "alpine@" + digest, "docker.io/library/alpine", "scratch",
			"$BASE", "${BASE}", "${IMG}", "alpine:${TAG}", `"alpine:3.18"`}
		if len(names) > 0 {
			bases = append(bases, names[r.IntN(len(names))])
		}
		b.WriteString(pick(bases...))
		if r.IntN(2) == 0 {
			name := "s" + strconv.Itoa(i)
			names = append(names, name)
			b.WriteString(sep() + pick("AS", "as") + sep() + name)
		}
		b.WriteString(pick("", " ", "\t") + nl)
		for range r.IntN(4) {
			switch r.IntN(6) {
			case 0:
				b.WriteString("# FROM ubuntu" + nl)
			case 1:
				b.WriteString(nl)
			case 2:
				b.WriteString("RUN <<EOF" + nl + "FROM inside" + nl + "EOF" + nl)
			case 3:
				b.WriteString("RUN echo FROM " + esc + nl + "  && true" + nl)
			case 4:
				if len(names) > 0 {
					b.WriteString("COPY --from=" + pick(names[0], strings.ToUpper(names[0])) + " /a /a" + nl)
				} else {
					b.WriteString(pick("COPY --from=busybox:1.36 /a /a", "COPY --from=0 /a /a", "COPY --from=$IMG /a /a",
						"RUN --mount=from=alpine:3.18,target=/x true", "RUN --mount=type=cache,target=/c true") + nl)
				}
			default:
				b.WriteString("ARG BASE" + nl + "LABEL base=$BASE" + nl)
			}
		}
	}
	return b.String()
}

// TestInjectRandom checks the Inject properties on generated Dockerfiles,
// replacing each stage in turn, all of them, and the "base" one.
func TestInjectRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 400
	if testing.Short() {
		n = 100
	}
	parsed, viaArg, direct := 0, 0, 0
	for range n {
		in := []byte(genDockerfile(r))
		var args map[string]string
		if r.IntN(5) == 0 {
			args = map[string]string{"TAG": "3.19"}
		}
		f, err := Parse(in, args)
		if errors.Is(err, errInternal) {
			t.Fatalf("%q: %v", in, err)
		}
		if err != nil {
			continue
		}
		parsed++
		if err := checkReferences(f); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		var injs []Injection
		all := map[string]string{}
		for i := range f.stages {
			ref := fmt.Sprintf("example.com/variant:%d", i)
			all[strconv.Itoa(i)] = ref
			injs = append(injs, Injection{Bases: map[string]string{strconv.Itoa(i): ref}})
		}
		injs = append(injs, Injection{Bases: all}, Injection{Base: "example.com/base:1"})
		for _, inj := range injs {
			res, err := Inject(in, inj, args)
			if errors.Is(err, errInternal) {
				t.Fatalf("%q %+v: %v", in, inj, err)
			}
			if err != nil {
				continue
			}
			if err := checkInjected(in, res, args); err != nil {
				t.Fatalf("%q %+v: %v", in, inj, err)
			}
			for _, c := range res.Changes {
				if c.Arg != "" {
					viaArg++
				} else {
					direct++
				}
			}
		}
	}
	t.Logf("%d files parsed, %d bases changed through an ARG, %d directly", parsed, viaArg, direct)
	if parsed < n/2 || viaArg < n/10 || direct < n/2 {
		t.Fatal("the generator does not cover enough cases")
	}
}
