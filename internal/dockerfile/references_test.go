package dockerfile

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

func TestReferences(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		buildArgs map[string]string
		want      []Reference
	}{
		{
			name: "every kind, platforms, stage names and indexes left out, repetitions kept",
			in: "ARG REG=127.0.0.1:5000\n" +
				"ARG BASE=${REG}/ns/base:candidate\n" +
				"ARG PLAT=linux/arm64\n" +
				"FROM --platform=$PLAT ${BASE} AS Build\n" +
				"RUN --mount=type=bind,from=ns/tools,target=/t \\\n  --mount=type=cache,target=/c true\n" +
				"FROM ${BASE}\n" +
				"COPY --from=build /a /a\n" +
				"COPY --from=BUILD /a /a\n" +
				"COPY --from=0 /a /a\n" +
				"COPY --from=ns/assets:1 /b /b\n" +
				"RUN --mount=from=build,target=/x true\n" +
				"FROM build AS again\n" +
				"FROM scratch\n" +
				"COPY --from=${REG}/expanded /c /c\n" +
				"COPY --from=scratch /c /c\n" +
				"COPY --from=ns/assets:1 /d /d\n",
			want: []Reference{
				{Ref: "127.0.0.1:5000/ns/base:candidate", Platform: "linux/arm64", Kind: RefFrom, Stage: 0, Line: 4},
				{Ref: "ns/tools", Kind: RefMount, Stage: 0, Line: 5},
				{Ref: "127.0.0.1:5000/ns/base:candidate", Kind: RefFrom, Stage: 1, Line: 7},
				{Ref: "ns/assets:1", Kind: RefCopy, Stage: 1, Line: 11},
				{Ref: "ns/assets:1", Kind: RefCopy, Stage: 3, Line: 17},
			},
		},
		{
			name:      "build args override ARG defaults; an empty FROM is no image",
			in:        "ARG BASE=a/b\nARG NONE\nFROM --platform=$BUILDPLATFORM $BASE\nFROM $NONE\n",
			buildArgs: map[string]string{"BASE": "c/d:2", "BUILDPLATFORM": "linux/riscv64"},
			want: []Reference{
				{Ref: "c/d:2", Platform: "linux/riscv64", Kind: RefFrom, Stage: 0, Line: 3},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.in), tc.buildArgs)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.References(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("References:\n got %+v\nwant %+v", got, tc.want)
			}
			if err := checkReferences(f); err != nil {
				t.Error(err)
			}
		})
	}
}

// checkReferences verifies what References promises on any parsed file:
// one "from" per stage built FROM a valid image, with its base, platform and
// line; COPY and RUN references inside their stage, never naming a stage,
// "scratch" or an invalid reference; file order; and ExternalImages being
// their Refs without repetitions.
func checkReferences(f *File) error {
	refs := f.References()
	froms := map[int]Reference{}
	var distinct []string
	prevLine := 0
	for _, r := range refs {
		if r.Stage < 0 || r.Stage >= len(f.stages) {
			return fmt.Errorf("reference %+v: no stage %d", r, r.Stage)
		}
		s := f.stages[r.Stage]
		if r.Line < s.StartLine || r.Line > s.EndLine || r.Line < prevLine {
			return fmt.Errorf("reference %+v: line outside stage %s (lines %d-%d) or out of order", r, s.Stage, s.StartLine, s.EndLine)
		}
		prevLine = r.Line
		if _, err := reference.ParseNormalizedNamed(r.Ref); err != nil || r.Ref == Scratch {
			return fmt.Errorf("reference %+v is no image", r)
		}
		switch r.Kind {
		case RefFrom:
			if _, dup := froms[r.Stage]; dup {
				return fmt.Errorf("stage %d has two FROM references", r.Stage)
			}
			froms[r.Stage] = r
			if r.Ref != s.Base || r.Platform != s.platform || r.Line != s.StartLine {
				return fmt.Errorf("reference %+v does not match stage %s (platform %q)", r, s.Stage, s.platform)
			}
		case RefCopy, RefMount:
			if r.Platform != "" || f.nameSet[strings.ToLower(r.Ref)] || strings.Contains(r.Ref, "$") {
				return fmt.Errorf("reference %+v names a stage, has a variable or a platform", r)
			}
		default:
			return fmt.Errorf("reference %+v: unknown kind", r)
		}
		if !slices.Contains(distinct, r.Ref) {
			distinct = append(distinct, r.Ref)
		}
	}
	for i, s := range f.stages {
		_, err := reference.ParseNormalizedNamed(s.Base)
		_, has := froms[i]
		if want := s.FromImage() && s.Base != "" && err == nil; has != want {
			return fmt.Errorf("stage %s: FROM reference present %v, want %v", s.Stage, has, want)
		}
	}
	if got := f.ExternalImages(); !slices.Equal(got, distinct) {
		return fmt.Errorf("ExternalImages = %q, want the distinct references %q", got, distinct)
	}
	return nil
}
