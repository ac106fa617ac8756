package graph

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/dockerfile"
)

const reg = "127.0.0.1:5000"

// node parses a Dockerfile into the node of image name, pushed to
// reg/ns/name.
func node(t *testing.T, name, df string) Node {
	t.Helper()
	f, err := dockerfile.Parse([]byte(df), nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return Node{Name: name, Repository: reg + "/ns/" + name, Refs: f.References()}
}

func mustNew(t *testing.T, nodes ...Node) *Graph {
	t.Helper()
	g, err := New(nodes)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func parentNames(g *Graph, name string) []string {
	var out []string
	for _, e := range g.Parents(name) {
		if e.Child != name {
			panic("edge of another child")
		}
		out = append(out, e.Parent+"/"+e.Ref.Kind)
	}
	return out
}

func refs(rs []dockerfile.Reference) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Ref)
	}
	return out
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// diamond: base <- left, right <- top (top copies from right), plus an
// unrelated root; input order puts the children first.
func diamond(t *testing.T) *Graph {
	return mustNew(t,
		node(t, "top", "FROM "+reg+"/ns/left:candidate\nCOPY --from="+reg+"/ns/right@sha256:"+strings.Repeat("a", 64)+" /x /x\n"),
		node(t, "left", "FROM ns/base\nRUN true\n"),
		node(t, "right", "ARG TAG=1\nFROM "+reg+"/ns/base:${TAG}\nCOPY --from=busybox:1.36 /bin/sh /sh\n"),
		node(t, "base", "FROM debian:12\n"),
		node(t, "other", "FROM --platform=linux/arm64 alpine\n"),
	)
}

func TestDiamond(t *testing.T) {
	g := diamond(t)
	equal(t, "Order", g.Order(), []string{"base", "left", "right", "top", "other"})
	equal(t, "Levels", g.Levels(), [][]string{{"base", "other"}, {"left", "right"}, {"top"}})
	equal(t, "Parents(top)", parentNames(g, "top"), []string{"left/from", "right/copy"})
	equal(t, "Parents(left)", parentNames(g, "left"), []string{"base/from"})
	equal(t, "Parents(base)", parentNames(g, "base"), nil)
	equal(t, "Children(base)", g.Children("base"), []string{"left", "right"})
	equal(t, "Children(top)", g.Children("top"), []string{})
	equal(t, "Externals(right)", refs(g.Externals("right")), []string{"busybox:1.36"})
	equal(t, "Externals(base)", refs(g.Externals("base")), []string{"debian:12"})
	equal(t, "Externals(top)", refs(g.Externals("top")), nil)
	if e := g.Parents("top")[1]; e.Ref.Kind != dockerfile.RefCopy || e.Ref.Line != 2 {
		t.Errorf("top's second edge = %+v, want the COPY on line 2", e)
	}
	if g.Parents("nope") != nil || g.Children("nope") != nil || g.Externals("nope") != nil {
		t.Error("an unknown image has relations")
	}
}

func TestARGParent(t *testing.T) {
	g := mustNew(t,
		node(t, "app", "ARG REGISTRY="+reg+"\nARG BASE=${REGISTRY}/ns/runtime\nFROM golang:1.22 AS build\nFROM ${BASE}:candidate\nCOPY --from=build /a /a\n"),
		node(t, "runtime", "FROM scratch\n"),
	)
	equal(t, "Parents(app)", parentNames(g, "app"), []string{"runtime/from"})
	equal(t, "Externals(app)", refs(g.Externals("app")), []string{"golang:1.22"})
	equal(t, "Order", g.Order(), []string{"runtime", "app"})
}

func TestCopyAndMountParents(t *testing.T) {
	g := mustNew(t,
		node(t, "app", "FROM alpine\nCOPY --from=ns/assets /a /a\nRUN --mount=from="+reg+"/ns/tools:2,target=/t true\nCOPY --from=ns/assets /b /b\n"),
		node(t, "assets", "FROM scratch\n"),
		node(t, "tools", "FROM scratch\n"),
	)
	equal(t, "Parents(app)", parentNames(g, "app"), []string{"assets/copy", "tools/mount", "assets/copy"})
	equal(t, "Children(assets)", g.Children("assets"), []string{"app"})
	equal(t, "Levels", g.Levels(), [][]string{{"assets", "tools"}, {"app"}})
}

func TestRegistrylessMatching(t *testing.T) {
	nodes := []Node{
		{Name: "xos-base", Repository: reg + "/xosproject/xos-base", Refs: []dockerfile.Reference{{Ref: "ubuntu:22.04", Kind: "from"}}},
		{Name: "base", Repository: "registry.example.com/base"},
		{Name: "core", Repository: reg + "/xosproject/xos-core", Refs: []dockerfile.Reference{
			{Ref: "xosproject/xos-base:candidate", Kind: "from"},         // no registry: by path
			{Ref: "docker.io/xosproject/xos-base", Kind: "copy"},         // Docker Hub spelled out: external
			{Ref: "other.example.com/xosproject/xos-base", Kind: "copy"}, // another registry: external
			{Ref: "base", Kind: "copy"},                                  // docker.io/library/base: path "base"
			{Ref: "localhost/base", Kind: "copy"},                        // a registry called localhost
		}},
	}
	g := mustNew(t, nodes...)
	equal(t, "Parents(core)", parentNames(g, "core"), []string{"xos-base/from", "base/copy"})
	equal(t, "Externals(core)", refs(g.Externals("core")), []string{"docker.io/xosproject/xos-base", "other.example.com/xosproject/xos-base", "localhost/base"})
	if n, _ := g.Node("base"); n.Path != "base" || n.Repository != "registry.example.com/base" {
		t.Errorf("Node(base) = %+v", n)
	}

	// Two registries with the same path make a registry-less reference
	// ambiguous.
	_, err := New([]Node{
		{Name: "a", Repository: "r1.example.com/ns/x"},
		{Name: "b", Repository: "r2.example.com/ns/x"},
		{Name: "c", Repository: "r1.example.com/ns/c", Refs: []dockerfile.Reference{{Ref: "ns/x", Kind: "from", Line: 3}}},
	})
	if err == nil || !strings.Contains(err.Error(), `image "c": line 3: reference "ns/x" names no registry and matches several images: r1.example.com/ns/x, r2.example.com/ns/x`) {
		t.Errorf("ambiguous path: %v", err)
	}
	// ...but its full name is not.
	_, err = New([]Node{
		{Name: "a", Repository: "r1.example.com/ns/x"},
		{Name: "b", Repository: "r2.example.com/ns/x"},
		{Name: "c", Repository: "r1.example.com/ns/c", Refs: []dockerfile.Reference{{Ref: "r2.example.com/ns/x", Kind: "from"}}},
	})
	if err != nil {
		t.Error(err)
	}
}

func TestNewErrors(t *testing.T) {
	from := func(ref string) []dockerfile.Reference { return []dockerfile.Reference{{Ref: ref, Kind: "from"}} }
	tests := []struct {
		name  string
		nodes []Node
		want  string
		cycle []string
	}{
		{"self", []Node{{Name: "a", Repository: "ns/a", Refs: from("ns/a:old")}}, "dependency cycle: a -> a", []string{"a", "a"}},
		{"cycle", []Node{
			{Name: "x", Repository: "ns/x"},
			{Name: "a", Repository: "ns/a", Refs: from("ns/c")},
			{Name: "b", Repository: "ns/b", Refs: from("ns/a")},
			{Name: "c", Repository: "ns/c", Refs: append(from("ns/x"), from("ns/b")...)},
			{Name: "d", Repository: "ns/d", Refs: from("ns/c")},
		}, "dependency cycle: a -> b -> c -> a", []string{"a", "b", "c", "a"}},
		{"cycle listed from its first image", []Node{
			{Name: "p", Repository: "ns/p", Refs: from("ns/q")},
			{Name: "q", Repository: "ns/q", Refs: from("ns/p")},
		}, "dependency cycle: p -> q -> p", []string{"p", "q", "p"}},
		{"no name", []Node{{Repository: "ns/a"}}, "image 0 has no name", nil},
		{"same name", []Node{{Name: "a", Repository: "ns/a"}, {Name: "a", Repository: "ns/b"}}, `images 0 and 1 are both named "a"`, nil},
		{"same repository", []Node{{Name: "a", Repository: "ns/a"}, {Name: "b", Repository: "docker.io/ns/a"}}, `images "a" and "b" both push to docker.io/ns/a`, nil},
		{"bad repository", []Node{{Name: "a", Repository: "NS/A"}}, `image "a": repository "NS/A"`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.nodes)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			var ce *CycleError
			if errors.As(err, &ce) != (tc.cycle != nil) || (ce != nil && !slices.Equal(ce.Path, tc.cycle)) {
				t.Errorf("CycleError = %+v, want path %q", ce, tc.cycle)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	g := diamond(t)
	tests := []struct {
		name             string
		include, exclude []string
		skipParents      bool
		want             []string
		err              string
	}{
		{name: "everything", want: []string{"base", "left", "right", "top", "other"}},
		{name: "leaf and its ancestors", include: []string{"top"}, want: []string{"base", "left", "right", "top"}},
		{name: "skip parents", include: []string{"top"}, skipParents: true, want: []string{"top"}},
		{name: "a root", include: []string{"base"}, want: []string{"base"}},
		{name: "regex searches anywhere", include: []string{"ght"}, want: []string{"base", "right"}},
		{name: "anchored regex", include: []string{"^(left|other)$"}, want: []string{"base", "left", "other"}},
		{name: "exclude an ancestor: used from the registry", include: []string{"top"}, exclude: []string{"left"}, want: []string{"base", "right", "top"}},
		{name: "excluded ancestors are not walked through", include: []string{"left"}, exclude: []string{"left"}, want: nil},
		{name: "exclude by regex from everything", exclude: []string{"^(top|other)"}, want: []string{"base", "left", "right"}},
		{name: "unknown", include: []string{"top", "nova"}, err: `image "nova": matches no image`},
		{name: "unknown exclude", exclude: []string{"nova"}, err: `--exclude "nova": matches no image`},
		{name: "invalid regexp", include: []string{"a("}, err: `image "a(": not an image name, and not a valid regular expression`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := g.Select(tc.include, tc.exclude, tc.skipParents)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "Select", got, tc.want)
		})
	}
	if _, err := g.Select([]string{"zzz"}, nil, false); !errors.Is(err, ErrNoMatch) {
		t.Errorf("error %v does not wrap ErrNoMatch", err)
	}

	// A name is taken as a name before it is taken as a regular expression.
	g = mustNew(t, Node{Name: "nova", Repository: "ns/nova"}, Node{Name: "nova-api", Repository: "ns/nova-api"})
	got, err := g.Select([]string{"nova"}, nil, false)
	equal(t, "Select(nova)", got, []string{"nova"})
	got, err2 := g.Select([]string{"nov"}, []string{"nova"}, false)
	equal(t, "Select(nov, exclude nova)", got, []string{"nova-api"})
	if err != nil || err2 != nil {
		t.Error(err, err2)
	}
}

// TestRandomDAGs checks Order and Levels on random acyclic families: every
// image after its parents, levels one more than the deepest parent, ties in
// input order, and a cycle made by one more edge is found.
func TestRandomDAGs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		n := 1 + r.IntN(25)
		perm := r.Perm(n) // perm[i] is the topological rank of input node i
		byRank := make([]int, n)
		for i, k := range perm {
			byRank[k] = i
		}
		nodes := make([]Node, n)
		for i := range nodes {
			nodes[i] = Node{Name: fmt.Sprintf("n%d", i), Repository: fmt.Sprintf("ns/n%d", i)}
			for range r.IntN(3) {
				if perm[i] == 0 {
					break
				}
				p := byRank[r.IntN(perm[i])] // a node of lower rank
				nodes[i].Refs = append(nodes[i].Refs, dockerfile.Reference{Ref: "ns/n" + fmt.Sprint(p), Kind: "from"})
			}
		}
		g, err := New(nodes)
		if err != nil {
			t.Fatal(err)
		}
		pos := map[string]int{}
		for k, name := range g.Order() {
			pos[name] = k
		}
		level := map[string]int{}
		for l, names := range g.Levels() {
			if len(names) == 0 {
				t.Fatalf("empty level %d", l)
			}
			for _, name := range names {
				level[name] = l
			}
		}
		if len(pos) != n || len(level) != n {
			t.Fatalf("Order %q / Levels %q do not list the %d images once", g.Order(), g.Levels(), n)
		}
		for _, nd := range nodes {
			want := 0
			for _, e := range g.Parents(nd.Name) {
				if pos[e.Parent] >= pos[nd.Name] {
					t.Fatalf("%s ordered before its parent %s: %q", nd.Name, e.Parent, g.Order())
				}
				want = max(want, level[e.Parent]+1)
			}
			if level[nd.Name] != want {
				t.Fatalf("%s on level %d, want %d", nd.Name, level[nd.Name], want)
			}
		}
		// Stability: an image comes right after the previous one in input
		// order unless a parent of it comes later.
		order := g.Order()
		for k := 1; k < len(order); k++ {
			a, b := g.index[order[k-1]], g.index[order[k]]
			if b < a && len(g.Parents(order[k])) == 0 {
				t.Fatalf("root %s comes after %s although it comes first in the input: %q", order[k], order[k-1], order)
			}
		}
		// An edge from the last image in order to the first closes a cycle
		// when there is a path from first to last.
		first, last := g.index[order[0]], g.index[order[n-1]]
		if n > 1 && reaches(g, order[0], order[n-1]) {
			nodes[first].Refs = append(nodes[first].Refs, dockerfile.Reference{Ref: nodes[last].Repository, Kind: "copy"})
			var ce *CycleError
			if _, err := New(nodes); !errors.As(err, &ce) {
				t.Fatalf("closing %s -> %s: error %v, want a cycle", order[n-1], order[0], err)
			}
			for k := 1; k < len(ce.Path); k++ {
				if !slices.ContainsFunc(g.Parents(ce.Path[k]), func(e Edge) bool { return e.Parent == ce.Path[k-1] }) &&
					(ce.Path[k] != order[0] || ce.Path[k-1] != order[n-1]) {
					t.Fatalf("cycle %q: %s is no parent of %s", ce.Path, ce.Path[k-1], ce.Path[k])
				}
			}
		}
	}
}

func reaches(g *Graph, from, to string) bool {
	if from == to {
		return true
	}
	for _, c := range g.Children(from) {
		if reaches(g, c, to) {
			return true
		}
	}
	return false
}
