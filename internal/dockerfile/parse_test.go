package dockerfile

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		buildArgs map[string]string
		stages    []Stage
		images    []string
	}{
		{
			name: "ARG defaults, stage references, scratch, platform",
			in: "# syntax=docker/dockerfile:1\n" +
				"ARG REGISTRY=registry.example.com:5000\n" +
				"ARG TAG=3.18\n" +
				"ARG BASE=${REGISTRY}/alpine:${TAG}\n" +
				"FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n" +
				"RUN go build \\\n  ./...\n" +
				"\n" +
				"FROM ${BASE} AS runtime\n" +
				"COPY --from=build /app /app\n" +
				"COPY --from=nginx:1.25 /etc/nginx /etc/nginx\n" +
				"COPY --from=0 /x /x\n" +
				"RUN --mount=type=bind,from=busybox:1.36,target=/bb true\n" +
				"FROM runtime\n" +
				"FROM scratch AS final\n" +
				"COPY --from=runtime / /\n" +
				"# trailing comment\n",
			stages: []Stage{
				{Index: 0, Name: "build", BaseWritten: "golang:1.22", Base: "golang:1.22", Platform: "$BUILDPLATFORM", StartLine: 5, EndLine: 7},
				{Index: 1, Name: "runtime", BaseWritten: "${BASE}", Base: "registry.example.com:5000/alpine:3.18", StartLine: 9, EndLine: 13},
				{Index: 2, BaseWritten: "runtime", Base: "runtime", FromStage: true, StartLine: 14, EndLine: 14},
				{Index: 3, Name: "final", BaseWritten: "scratch", Base: "scratch", Scratch: true, StartLine: 15, EndLine: 16},
			},
			images: []string{"golang:1.22", "registry.example.com:5000/alpine:3.18", "nginx:1.25", "busybox:1.36"},
		},
		{
			name:      "build args override defaults",
			in:        "ARG TAG=3.18\nFROM alpine:$TAG\nFROM alpine:${TAG}\n",
			buildArgs: map[string]string{"TAG": "3.19", "UNDECLARED": "x"},
			stages: []Stage{
				{Index: 0, BaseWritten: "alpine:$TAG", Base: "alpine:3.19", StartLine: 2, EndLine: 2},
				{Index: 1, BaseWritten: "alpine:${TAG}", Base: "alpine:3.19", StartLine: 3, EndLine: 3},
			},
			images: []string{"alpine:3.19"},
		},
		{
			name:      "built-in platform ARGs",
			in:        "FROM alpine AS base-arm64\nFROM alpine AS base-amd64\nFROM base-${TARGETARCH}\n",
			buildArgs: map[string]string{"TARGETARCH": "arm64"},
			stages: []Stage{
				{Index: 0, Name: "base-arm64", BaseWritten: "alpine", Base: "alpine", StartLine: 1, EndLine: 1},
				{Index: 1, Name: "base-amd64", BaseWritten: "alpine", Base: "alpine", StartLine: 2, EndLine: 2},
				{Index: 2, BaseWritten: "base-${TARGETARCH}", Base: "base-arm64", FromStage: true, StartLine: 3, EndLine: 3},
			},
			images: []string{"alpine"},
		},
		{
			name: "ARG without default and default modifiers",
			in:   "ARG BASE\nARG TAG\nFROM $BASE\nFROM alpine:${TAG:-3.18}\n",
			stages: []Stage{
				{Index: 0, BaseWritten: "$BASE", Base: "", StartLine: 3, EndLine: 3},
				{Index: 1, BaseWritten: "alpine:${TAG:-3.18}", Base: "alpine:3.18", StartLine: 4, EndLine: 4},
			},
			images: []string{"alpine:3.18"},
		},
		{
			name: "a stage cannot refer to a later one, and names are case-sensitive in FROM",
			in:   "FROM later\nFROM alpine AS later\nFROM LATER\n",
			stages: []Stage{
				{Index: 0, BaseWritten: "later", Base: "later", StartLine: 1, EndLine: 1},
				{Index: 1, Name: "later", BaseWritten: "alpine", Base: "alpine", StartLine: 2, EndLine: 2},
				{Index: 2, BaseWritten: "LATER", Base: "LATER", StartLine: 3, EndLine: 3},
			},
			images: []string{"later", "alpine"},
		},
		{
			name: "escape directive, CRLF, heredoc",
			in:   "# escape=`\r\nFROM `\r\n  alpine:3.18 AS a\r\nRUN <<EOF\r\nFROM nope\r\nEOF\r\nFROM a\r\n",
			stages: []Stage{
				{Index: 0, Name: "a", BaseWritten: "alpine:3.18", Base: "alpine:3.18", StartLine: 2, EndLine: 6},
				{Index: 1, BaseWritten: "a", Base: "a", FromStage: true, StartLine: 7, EndLine: 7},
			},
			images: []string{"alpine:3.18"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.in), tc.buildArgs)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Stages(); !reflect.DeepEqual(got, tc.stages) {
				t.Errorf("Stages:\n got %#v\nwant %#v", got, tc.stages)
			}
			if got := f.ExternalImages(); !reflect.DeepEqual(got, tc.images) {
				t.Errorf("ExternalImages = %q, want %q", got, tc.images)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "parsing Dockerfile: file is empty"},
		{"white space", " \n\t\r\n", "parsing Dockerfile: file is empty"},
		{"comments", "# hello\n", "file with no instructions"},
		{"no FROM", "ARG A=1\n", "parsing Dockerfile: no FROM instruction"},
		{"FROM without argument", "FROM\n", "FROM requires either one or three arguments"},
		{"bad stage name", "FROM alpine AS 1x\n", "invalid name for build stage"},
		{"bad escape", "# escape=x\nFROM alpine\n", "invalid escape token"},
		{"unterminated heredoc", "FROM alpine\nRUN <<EOF\necho\n", "unterminated heredoc"},
		{"bad ARG expansion", "ARG A=${B\nFROM alpine\n", "expanding the default of ARG A"},
		{"bad FROM expansion", "FROM alpine:${TAG\n", "line 1: expanding FROM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestStageString(t *testing.T) {
	tests := []struct {
		s    Stage
		want string
	}{
		{Stage{Index: 0, Name: "build", BaseWritten: "golang:1.16", Base: "golang:1.16"}, "0 (build) golang:1.16"},
		{Stage{Index: 1, BaseWritten: "${BASE}", Base: "alpine"}, "1 ${BASE} (= alpine)"},
		{Stage{Index: 2, BaseWritten: "$X", Base: ""}, "2 $X (empty)"},
		{Stage{Index: 3, BaseWritten: "build", Base: "build", FromStage: true}, "3 build (stage)"},
	}
	for _, tc := range tests {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
