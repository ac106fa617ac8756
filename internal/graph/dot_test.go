package graph

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// dotFamily is the diamond with every decision, a node whose name needs
// escaping, and an external reference written like an image name.
func dotFamily(t *testing.T) (*Graph, func(string) string) {
	odd := node(t, `odd "name" <&>`, "FROM ns/base\nCOPY --from=top /t /t\n")
	odd.Repository = reg + "/ns/odd"
	g := mustNew(t,
		node(t, "top", "FROM "+reg+"/ns/left:candidate\nCOPY --from="+reg+"/ns/right /x /x\nRUN --mount=from=ns/right,target=/r true\n"),
		node(t, "left", "FROM ns/base\nCOPY --from=ns/base /a /a\nCOPY --from=ns/base /b /b\n"),
		node(t, "right", "ARG TAG=1\nFROM --platform=linux/arm64 "+reg+"/ns/base:${TAG}\nCOPY --from=busybox:1.36 /bin/sh /sh\n"),
		node(t, "base", "FROM debian:12\n"),
		odd,
		node(t, "other", "FROM --platform=linux/arm64 alpine\n"),
	)
	decisions := map[string]string{"base": "skip", "left": "build", "right": "failed", "top": "parent_failed", "other": "pull"}
	return g, func(name string) string { return decisions[name] }
}

func TestDOT(t *testing.T) {
	g, decide := dotFamily(t)
	var b bytes.Buffer
	if err := g.DOT(&b, decide); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"digraph family {\n",
		`"base" [label="base\nskip", fillcolor="#a1d99b"];`,
		`"right" [label="right\nfailed", fillcolor="#fc9272"];`,
		`"odd \"name\" <&>" [label="odd \"name\" <&>"];`,
		`"debian:12" [label="debian:12", shape=box, fillcolor="#d9d9d9"];`,
		`"external:top" [label="top", shape=box, fillcolor="#d9d9d9"];`,
		`"base" -> "left";`,
		`"base" -> "left" [style=dashed, label="COPY --from"];`,
		`"base" -> "right" [label="--platform=linux/arm64"];`,
		`"right" -> "top" [style=dashed, label="COPY --from"];`,
		`"right" -> "top" [style=dashed, label="RUN --mount"];`,
		`"external:top" -> "odd \"name\" <&>" [style=dashed, label="COPY --from"];`,
		`"alpine" -> "other" [label="--platform=linux/arm64"];`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("DOT lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, `"base" -> "left" [style=dashed`); n != 1 {
		t.Errorf("two COPY --from of the same image make %d edges, want 1", n)
	}
	var nodec bytes.Buffer
	if err := g.DOT(&nodec, nil); err != nil || strings.Contains(nodec.String(), "skip") || strings.Contains(nodec.String(), "#a1d99b") {
		t.Errorf("DOT without decisions: %v\n%s", err, nodec.String())
	}
}

// TestDOTRenders runs Graphviz's dot on the output and finds every edge of
// the graph in the SVG, under the title dot gives it ("parent->child",
// XML-escaped).
func TestDOTRenders(t *testing.T) {
	dot := testenv.Dot(t)
	g, decide := dotFamily(t)
	var b bytes.Buffer
	if err := g.DOT(&b, decide); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(context.Background(), dot, "-Tsvg")
	cmd.Stdin = &b
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	svg, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("dot -Tsvg: %v\n%s\n%s", err, stderr.String(), b.String())
	}
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "-", "&#45;")
	type edge struct{ from, to, kind, platform string }
	want := map[edge]bool{}
	for _, n := range g.Nodes() {
		for _, e := range g.Parents(n.Name) {
			want[edge{e.Parent, e.Child, e.Ref.Kind, e.Ref.Platform}] = true
		}
		for _, r := range g.Externals(n.Name) {
			from := r.Ref
			if _, clash := g.Node(from); clash {
				from = "external:" + from
			}
			want[edge{from, n.Name, r.Kind, r.Platform}] = true
		}
	}
	if len(want) != 11 {
		t.Fatalf("the family has %d edges, want 11: %v", len(want), want)
	}
	for e := range want {
		title := "<title>" + esc.Replace(e.from) + "&#45;&gt;" + esc.Replace(e.to) + "</title>"
		if !strings.Contains(string(svg), title) {
			t.Errorf("the SVG has no edge %s", title)
		}
	}
	if n := strings.Count(string(svg), `class="edge"`); n != len(want) {
		t.Errorf("the SVG has %d edges, want %d", n, len(want))
	}
	if n := strings.Count(string(svg), `class="node"`); n != len(g.Nodes())+4 {
		t.Errorf("the SVG has %d nodes, want %d images and 4 externals", n, len(g.Nodes()))
	}
}
