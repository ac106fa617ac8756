package dockerfile

import (
	"bytes"
	"maps"
	"strings"
	"testing"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type injectCase struct {
	name      string
	in        string
	inj       Injection
	buildArgs map[string]string
	want      string            // expected Dockerfile; "" with wantErr set
	changes   []Change          // expected Changes
	wantArgs  map[string]string // expected BuildArgs (nil means empty)
	wantErr   string            // substring of the expected error
}

var injectCases = []injectCase{
	{
		name:    "single stage",
		in:      "FROM alpine:3.18\nRUN echo hi\n",
		inj:     Injection{Base: "python:3.8-alpine"},
		want:    "FROM python:3.8-alpine\nRUN echo hi\n",
		changes: []Change{{Stage: 0, From: "alpine:3.18", To: "python:3.8-alpine"}},
	},
	{
		name:    "AS alias",
		in:      "FROM golang:1.16 AS build\nRUN go build ./...\n",
		inj:     Injection{Base: "golang:1.21"},
		want:    "FROM golang:1.21 AS build\nRUN go build ./...\n",
		changes: []Change{{Stage: 0, StageName: "build", From: "golang:1.16", To: "golang:1.21"}},
	},
	{
		name:    "digest reference replaced and injected",
		in:      "FROM alpine@" + digest + " AS base\nRUN true\n",
		inj:     Injection{Base: "debian:12@" + digest},
		want:    "FROM debian:12@" + digest + " AS base\nRUN true\n",
		changes: []Change{{Stage: 0, StageName: "base", From: "alpine@" + digest, To: "debian:12@" + digest}},
	},
	{
		name: "comments containing FROM",
		in: "# FROM ubuntu:20.04 was the old base\n#FROM debian\n\nFROM alpine:3.18\n" +
			"# then FROM nothing else\nRUN echo FROM here # FROM\n",
		inj: Injection{Base: "python:3.8-alpine"},
		want: "# FROM ubuntu:20.04 was the old base\n#FROM debian\n\nFROM python:3.8-alpine\n" +
			"# then FROM nothing else\nRUN echo FROM here # FROM\n",
		changes: []Change{{Stage: 0, From: "alpine:3.18", To: "python:3.8-alpine"}},
	},
	{
		name:    "lowercase from",
		in:      "from alpine:3.18 as base\nrun true\n",
		inj:     Injection{Base: "python:3.8-alpine"},
		want:    "from python:3.8-alpine as base\nrun true\n",
		changes: []Change{{Stage: 0, StageName: "base", From: "alpine:3.18", To: "python:3.8-alpine"}},
	},
	{
		name: "multi-stage replaces the first image-based stage only",
		in: "FROM golang:1.16 AS build\nWORKDIR /src\nCOPY . .\nRUN go build -o /app\n\n" +
			"FROM alpine:3.18\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
		inj: Injection{Base: "golang:1.21"},
		want: "FROM golang:1.21 AS build\nWORKDIR /src\nCOPY . .\nRUN go build -o /app\n\n" +
			"FROM alpine:3.18\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
		changes: []Change{{Stage: 0, StageName: "build", From: "golang:1.16", To: "golang:1.21"}},
	},
	{
		name:    "platform flag",
		in:      "FROM --platform=$BUILDPLATFORM golang:1.16 AS build\nRUN true\nFROM scratch\nCOPY --from=build / /\n",
		inj:     Injection{Base: "golang:1.21"},
		want:    "FROM --platform=$BUILDPLATFORM golang:1.21 AS build\nRUN true\nFROM scratch\nCOPY --from=build / /\n",
		changes: []Change{{Stage: 0, StageName: "build", From: "golang:1.16", To: "golang:1.21"}},
	},
	{
		name:     "ARG-based FROM with braces",
		in:       "ARG BASE=alpine:3.18\nFROM ${BASE}\nRUN true\n",
		inj:      Injection{Base: "python:3.8-alpine"},
		want:     "ARG BASE=python:3.8-alpine\nFROM ${BASE}\nRUN true\n",
		changes:  []Change{{Stage: 0, From: "alpine:3.18", To: "python:3.8-alpine", Arg: "BASE"}},
		wantArgs: map[string]string{"BASE": "python:3.8-alpine"},
	},
	{
		name:     "ARG-based FROM without braces",
		in:       "ARG VERSION=1\nARG BASE=\"alpine:3.18\"\n\nFROM $BASE AS app\n",
		inj:      Injection{Base: "python:3.8-alpine"},
		want:     "ARG VERSION=1\nARG BASE=python:3.8-alpine\n\nFROM $BASE AS app\n",
		changes:  []Change{{Stage: 0, StageName: "app", From: "alpine:3.18", To: "python:3.8-alpine", Arg: "BASE"}},
		wantArgs: map[string]string{"BASE": "python:3.8-alpine"},
	},
	{
		name:     "ARG without default",
		in:       "ARG BASE\nFROM ${BASE}\n",
		inj:      Injection{Base: "python:3.8-alpine"},
		want:     "ARG BASE=python:3.8-alpine\nFROM ${BASE}\n",
		changes:  []Change{{Stage: 0, From: "", To: "python:3.8-alpine", Arg: "BASE"}},
		wantArgs: map[string]string{"BASE": "python:3.8-alpine"},
	},
	{
		name:     "ARG among several on one line, declared twice",
		in:       "ARG A=1 BASE=alpine:3.18 B=2\nARG BASE\nFROM ${BASE}\n",
		inj:      Injection{Bases: map[string]string{"alpine:3.18": "debian:12"}},
		want:     "ARG A=1 BASE=debian:12 B=2\nARG BASE\nFROM ${BASE}\n",
		changes:  []Change{{Stage: 0, From: "alpine:3.18", To: "debian:12", Arg: "BASE"}},
		wantArgs: map[string]string{"BASE": "debian:12"},
	},
	{
		name:    "ARG shared with a stage that is not replaced",
		in:      "ARG BASE=alpine:3.18\nFROM $BASE AS a\nFROM $BASE AS b\n",
		inj:     Injection{Bases: map[string]string{"b": "debian:12"}},
		want:    "ARG BASE=alpine:3.18\nFROM $BASE AS a\nFROM debian:12 AS b\n",
		changes: []Change{{Stage: 1, StageName: "b", From: "alpine:3.18", To: "debian:12"}},
	},
	{
		name:    "ARG feeding another ARG used by a stage that is not replaced",
		in:      "ARG BASE=alpine:3.18\nARG OTHER=${BASE}\nFROM $BASE AS a\nFROM ${OTHER} AS b\n",
		inj:     Injection{Base: "debian:12"},
		want:    "ARG BASE=alpine:3.18\nARG OTHER=${BASE}\nFROM debian:12 AS a\nFROM ${OTHER} AS b\n",
		changes: []Change{{Stage: 0, StageName: "a", From: "alpine:3.18", To: "debian:12"}},
	},
	{
		name:     "ARG shared by two replaced stages",
		in:       "ARG BASE=alpine:3.18\nFROM $BASE AS a\nFROM $BASE AS b\n",
		inj:      Injection{Bases: map[string]string{"alpine:3.18": "debian:12"}},
		want:     "ARG BASE=debian:12\nFROM $BASE AS a\nFROM $BASE AS b\n",
		changes:  []Change{{Stage: 0, StageName: "a", From: "alpine:3.18", To: "debian:12", Arg: "BASE"}, {Stage: 1, StageName: "b", From: "alpine:3.18", To: "debian:12", Arg: "BASE"}},
		wantArgs: map[string]string{"BASE": "debian:12"},
	},
	{
		name:     "ARG also used in a FROM that is rewritten anyway",
		in:       "ARG TAG=3.18\nFROM alpine:${TAG} AS a\nFROM $TAG AS b\n",
		inj:      Injection{Bases: map[string]string{"a": "alpine:3.19", "b": "busybox:1"}},
		want:     "ARG TAG=busybox:1\nFROM alpine:3.19 AS a\nFROM $TAG AS b\n",
		changes:  []Change{{Stage: 0, StageName: "a", From: "alpine:3.18", To: "alpine:3.19"}, {Stage: 1, StageName: "b", From: "3.18", To: "busybox:1", Arg: "TAG"}},
		wantArgs: map[string]string{"TAG": "busybox:1"},
	},
	{
		name:      "ARG also set by the build args",
		in:        "ARG BASE=alpine:3.18\nFROM ${BASE}\n",
		inj:       Injection{Base: "python:3.8-alpine"},
		buildArgs: map[string]string{"BASE": "alpine:3.19"},
		wantErr:   "stage 0 ${BASE} (= alpine:3.19) takes its base from ARG BASE, which the build args also set",
	},
	{
		name:      "variables mixed with text rewrite the argument",
		in:        "ARG GO_VERSION=1.16\nFROM golang:${GO_VERSION}-alpine AS build\n",
		inj:       Injection{Base: "golang:1.21"},
		buildArgs: map[string]string{"GO_VERSION": "1.17"},
		want:      "ARG GO_VERSION=1.16\nFROM golang:1.21 AS build\n",
		changes:   []Change{{Stage: 0, StageName: "build", From: "golang:1.17-alpine", To: "golang:1.21"}},
	},
	{
		name:    "bases by stage name",
		in:      "FROM golang:1.16 AS build\nFROM alpine:3.18 AS run\nCOPY --from=build /a /a\n",
		inj:     Injection{Bases: map[string]string{"RUN": "alpine:3.19"}},
		want:    "FROM golang:1.16 AS build\nFROM alpine:3.19 AS run\nCOPY --from=build /a /a\n",
		changes: []Change{{Stage: 1, StageName: "run", From: "alpine:3.18", To: "alpine:3.19"}},
	},
	{
		name:    "bases by index",
		in:      "FROM golang:1.16 AS build\nFROM alpine:3.18\n",
		inj:     Injection{Bases: map[string]string{"1": "alpine:3.19", "0": "golang:1.21"}},
		want:    "FROM golang:1.21 AS build\nFROM alpine:3.19\n",
		changes: []Change{{Stage: 0, StageName: "build", From: "golang:1.16", To: "golang:1.21"}, {Stage: 1, From: "alpine:3.18", To: "alpine:3.19"}},
	},
	{
		name:    "bases by reference replaces every match",
		in:      "FROM alpine:3.18 AS a\nFROM golang:1.16\nFROM docker.io/library/alpine:3.18 AS c\n",
		inj:     Injection{Bases: map[string]string{"alpine:3.18": "alpine:3.19"}},
		want:    "FROM alpine:3.19 AS a\nFROM golang:1.16\nFROM alpine:3.19 AS c\n",
		changes: []Change{{Stage: 0, StageName: "a", From: "alpine:3.18", To: "alpine:3.19"}, {Stage: 2, StageName: "c", From: "docker.io/library/alpine:3.18", To: "alpine:3.19"}},
	},
	{
		name:    "bases by reference as written",
		in:      "ARG V=1.16\nFROM golang:${V}\n",
		inj:     Injection{Bases: map[string]string{"golang:${V}": "golang:1.21"}},
		want:    "ARG V=1.16\nFROM golang:1.21\n",
		changes: []Change{{Stage: 0, From: "golang:1.16", To: "golang:1.21"}},
	},
	{
		name:    "unknown key lists the stages",
		in:      "FROM golang:1.16 AS build\nFROM alpine:3.18\nFROM build\n",
		inj:     Injection{Bases: map[string]string{"foo": "alpine:3.19"}},
		wantErr: `bases key "foo" matches no stage or image; stages: 0 (build) golang:1.16, 1 alpine:3.18, 2 build (stage)`,
	},
	{
		name: "escape directive with backtick continuation",
		in: "# escape=`\n\nFROM mcr.microsoft.com/windows/servercore:ltsc2022 `\n    AS build\n" +
			"RUN echo a `\n    && echo b\nFROM mcr.microsoft.com/windows/nanoserver:ltsc2022\nCOPY --from=build C:\\out C:\\out\n",
		inj: Injection{Base: "mcr.microsoft.com/windows/servercore:ltsc2025"},
		want: "# escape=`\n\nFROM mcr.microsoft.com/windows/servercore:ltsc2025 `\n    AS build\n" +
			"RUN echo a `\n    && echo b\nFROM mcr.microsoft.com/windows/nanoserver:ltsc2022\nCOPY --from=build C:\\out C:\\out\n",
		changes: []Change{{Stage: 0, StageName: "build", From: "mcr.microsoft.com/windows/servercore:ltsc2022", To: "mcr.microsoft.com/windows/servercore:ltsc2025"}},
	},
	{
		name:    "heredoc containing FROM",
		in:      "# syntax=docker/dockerfile:1\nFROM alpine:3.18\nRUN <<EOF\nFROM ubuntu\necho FROM\nEOF\nFROM debian:12\nCOPY <<EOT /x\nFROM y\nEOT\n",
		inj:     Injection{Bases: map[string]string{"1": "debian:13"}, Base: "alpine:3.19"},
		want:    "# syntax=docker/dockerfile:1\nFROM alpine:3.19\nRUN <<EOF\nFROM ubuntu\necho FROM\nEOF\nFROM debian:13\nCOPY <<EOT /x\nFROM y\nEOT\n",
		changes: []Change{{Stage: 0, From: "alpine:3.18", To: "alpine:3.19"}, {Stage: 1, From: "debian:12", To: "debian:13"}},
	},
	{
		name:    "heredoc FROM is not a stage",
		in:      "FROM alpine:3.18\nRUN <<EOF\nFROM ubuntu\nEOF\n",
		inj:     Injection{Bases: map[string]string{"ubuntu": "debian:12"}},
		wantErr: `bases key "ubuntu" matches no stage or image; stages: 0 alpine:3.18`,
	},
	{
		name:    "CRLF line endings",
		in:      "FROM golang:1.16 AS build\r\nRUN go build \\\r\n    ./...\r\n\r\nFROM alpine:3.18\r\nCOPY --from=build /a /a\r\n",
		inj:     Injection{Bases: map[string]string{"alpine:3.18": "alpine:3.19"}},
		want:    "FROM golang:1.16 AS build\r\nRUN go build \\\r\n    ./...\r\n\r\nFROM alpine:3.19\r\nCOPY --from=build /a /a\r\n",
		changes: []Change{{Stage: 1, From: "alpine:3.18", To: "alpine:3.19"}},
	},
	{
		name:    "stage and scratch bases are skipped by base",
		in:      "FROM scratch AS files\nCOPY a /a\nFROM files AS again\nFROM alpine:3.18\nCOPY --from=again /a /a\n",
		inj:     Injection{Base: "alpine:3.19"},
		want:    "FROM scratch AS files\nCOPY a /a\nFROM files AS again\nFROM alpine:3.19\nCOPY --from=again /a /a\n",
		changes: []Change{{Stage: 2, From: "alpine:3.18", To: "alpine:3.19"}},
	},
	{
		name:    "FROM an earlier stage replaced when selected by name",
		in:      "FROM golang:1.16 AS build\nFROM build AS test\n",
		inj:     Injection{Bases: map[string]string{"test": "golang:1.21"}},
		want:    "FROM golang:1.16 AS build\nFROM golang:1.21 AS test\n",
		changes: []Change{{Stage: 1, StageName: "test", From: "build", To: "golang:1.21"}},
	},
	{
		name:    "no stage built from an image",
		in:      "FROM scratch\nCOPY a /\n",
		inj:     Injection{Base: "alpine:3.19"},
		wantErr: `base "alpine:3.19": no stage is built FROM an image; stages: 0 scratch`,
	},
	{
		name:    "base and bases agree",
		in:      "FROM golang:1.16 AS build\n",
		inj:     Injection{Base: "golang:1.21", Bases: map[string]string{"build": "golang:1.21"}},
		want:    "FROM golang:1.21 AS build\n",
		changes: []Change{{Stage: 0, StageName: "build", From: "golang:1.16", To: "golang:1.21"}},
	},
	{
		name:    "base and bases disagree",
		in:      "FROM golang:1.16 AS build\n",
		inj:     Injection{Base: "golang:1.21", Bases: map[string]string{"build": "golang:1.22"}},
		wantErr: `base and bases key "build" both replace the base of stage 0 (build) golang:1.16, with "golang:1.21" and "golang:1.22"`,
	},
	{
		name:    "two keys disagree",
		in:      "FROM golang:1.16 AS build\n",
		inj:     Injection{Bases: map[string]string{"0": "golang:1.21", "golang:1.16": "golang:1.22"}},
		wantErr: `bases key "0" and bases key "golang:1.16" both replace`,
	},
	{
		name:    "invalid replacement",
		in:      "FROM golang:1.16\n",
		inj:     Injection{Base: "Not A Ref"},
		wantErr: `base: invalid image reference "Not A Ref"`,
	},
	{
		name:    "invalid replacement in bases",
		in:      "FROM golang:1.16\n",
		inj:     Injection{Bases: map[string]string{"0": "Alpine:3"}},
		wantErr: `bases key "0": invalid image reference "Alpine:3"`,
	},
	{
		name:    "replacement names a stage",
		in:      "FROM golang:1.16 AS build\nFROM alpine\n",
		inj:     Injection{Bases: map[string]string{"1": "build"}},
		wantErr: `bases key "1": image reference "build" is the name of stage 0 (build) golang:1.16, so BuildKit would build FROM that stage`,
	},
	{
		name:    "replacement names a later stage",
		in:      "FROM golang:1.16 AS build\nFROM alpine AS alpine\n",
		inj:     Injection{Base: "alpine"},
		want:    "FROM alpine AS build\nFROM alpine AS alpine\n",
		changes: []Change{{Stage: 0, StageName: "build", From: "golang:1.16", To: "alpine"}},
	},
	{
		name:    "argument split over lines",
		in:      "FROM gol\\\nang:1.16 \\\n  AS build\nRUN true\n",
		inj:     Injection{Base: "golang:1.21"},
		want:    "FROM golang:1.21 \\\n  AS build\nRUN true\n",
		changes: []Change{{Stage: 0, StageName: "build", From: "golang:1.16", To: "golang:1.21"}},
	},
	{
		name:    "continuation with comment and flag",
		in:      "FROM \\\n# a comment FROM x\n    --platform=linux/amd64 \\\n\talpine:3.18 \\\n  as base\n",
		inj:     Injection{Base: "alpine:3.19"},
		want:    "FROM \\\n# a comment FROM x\n    --platform=linux/amd64 \\\n\talpine:3.19 \\\n  as base\n",
		changes: []Change{{Stage: 0, StageName: "base", From: "alpine:3.18", To: "alpine:3.19"}},
	},
	{
		name:    "byte-order mark",
		in:      "\ufeffFROM alpine:3.18\n",
		inj:     Injection{Base: "alpine:3.19"},
		want:    "\ufeffFROM alpine:3.19\n",
		changes: []Change{{Stage: 0, From: "alpine:3.18", To: "alpine:3.19"}},
	},
	{
		name:     "ARG continued over lines",
		in:       "ARG BASE=alpine:3.18 \\\n  OTHER=1\nFROM $BASE\n",
		inj:      Injection{Base: "debian:12"},
		want:     "ARG BASE=debian:12 \\\n  OTHER=1\nFROM $BASE\n",
		changes:  []Change{{Stage: 0, From: "alpine:3.18", To: "debian:12", Arg: "BASE"}},
		wantArgs: map[string]string{"BASE": "debian:12"},
	},
	{
		name:    "ARG also used by --platform",
		in:      "ARG P=linux/amd64\nFROM --platform=$P $P\n",
		inj:     Injection{Base: "debian:12"},
		want:    "ARG P=linux/amd64\nFROM --platform=$P debian:12\n",
		changes: []Change{{Stage: 0, From: "linux/amd64", To: "debian:12"}},
	},
	{
		name:    "quoted argument and odd white space",
		in:      "  from\t\"alpine:3.18\"\rAS a \t\nFROM \\\n\n  alpine:3.18\n",
		inj:     Injection{Bases: map[string]string{"alpine:3.18": "debian:12"}},
		want:    "  from\tdebian:12\rAS a \t\nFROM \\\n\n  debian:12\n",
		changes: []Change{{Stage: 0, StageName: "a", From: "alpine:3.18", To: "debian:12"}, {Stage: 1, From: "alpine:3.18", To: "debian:12"}},
	},
	{
		name: "no injection",
		in:   "FROM alpine:3.18\n",
		want: "FROM alpine:3.18\n",
	},
	{
		name:    "no trailing newline",
		in:      "FROM alpine:3.18",
		inj:     Injection{Base: "alpine:3.19"},
		want:    "FROM alpine:3.19",
		changes: []Change{{Stage: 0, From: "alpine:3.18", To: "alpine:3.19"}},
	},
	{name: "empty", in: "", inj: Injection{Base: "alpine"}, wantErr: "file is empty"},
	{name: "comments only", in: "# nothing\n\n", inj: Injection{Base: "alpine"}, wantErr: "file with no instructions"},
	{name: "no FROM", in: "ARG A=1\n", inj: Injection{Base: "alpine"}, wantErr: "no FROM instruction"},
	{name: "bad FROM", in: "FROM a b\n", inj: Injection{Base: "alpine"}, wantErr: "FROM requires either one or three arguments"},
	{name: "instruction before FROM", in: "RUN true\nFROM alpine\n", inj: Injection{Base: "alpine"}, wantErr: "parsing Dockerfile: line 1: no build stage in current context"},
}

func TestInject(t *testing.T) {
	for _, tc := range injectCases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			res, err := Inject(in, tc.inj, tc.buildArgs)
			if string(in) != tc.in {
				t.Fatalf("Inject modified its input")
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Inject: %v", err)
			}
			if got := string(res.Dockerfile); got != tc.want {
				t.Errorf("Dockerfile:\n got %q\nwant %q", got, tc.want)
			}
			if !equalChanges(res.Changes, tc.changes) {
				t.Errorf("Changes = %+v, want %+v", res.Changes, tc.changes)
			}
			wantArgs := tc.wantArgs
			if wantArgs == nil {
				wantArgs = map[string]string{}
			}
			if !maps.Equal(res.BuildArgs, wantArgs) || res.BuildArgs == nil {
				t.Errorf("BuildArgs = %v, want %v", res.BuildArgs, wantArgs)
			}
			if err := checkInjected(in, res, tc.buildArgs); err != nil {
				t.Error(err)
			}
		})
	}
}

func equalChanges(a, b []Change) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestInjectKeepsOtherStagesBytes checks a larger file stage by stage.
func TestInjectKeepsOtherStagesBytes(t *testing.T) {
	in := []byte("# syntax=docker/dockerfile:1.7\r\n" +
		"ARG ALPINE=alpine:3.18\r\n" +
		"FROM --platform=$BUILDPLATFORM golang:1.22 AS build\r\n" +
		"# FROM comment\r\n" +
		"RUN --mount=type=cache,target=/root/.cache \\\r\n    go build ./...\r\n" +
		"FROM ${ALPINE} AS runtime\r\n" +
		"RUN <<EOF\r\nFROM inside heredoc\r\nEOF\r\n" +
		"from build as test\r\n" +
		"RUN go test ./...\r\n")
	res, err := Inject(in, Injection{Bases: map[string]string{"runtime": "alpine:3.19"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Replace(in, []byte("ARG ALPINE=alpine:3.18"), []byte("ARG ALPINE=alpine:3.19"), 1)
	if !bytes.Equal(res.Dockerfile, want) {
		t.Fatalf("got %q\nwant %q", res.Dockerfile, want)
	}
	if err := checkInjected(in, res, nil); err != nil {
		t.Fatal(err)
	}
}
