// Package graph is the dependency graph of an image family: which image is
// built FROM (or copies from, or mounts) which other image of the family,
// the order and the parallelism that follow, the selection of images to
// build, and a Graphviz picture of it all.
//
// # Internal parents and externals
//
// Each [Node] brings the image references its Dockerfile makes
// ([dockerfile.Reference]: every FROM, COPY --from and RUN --mount=from=
// naming an image, after ARG expansion). A reference is an internal parent
// when it names the repository of another node of the family; the tag or
// digest it carries does not matter (the engine builds children FROM their
// parent's fresh digest). Two names match when:
//
//   - their normalized names are equal (github.com/distribution/reference:
//     "127.0.0.1:5000/ns/base:1" names "127.0.0.1:5000/ns/base"), or
//   - the reference names no registry and its path equals a node's Path:
//     CORD writes "FROM xosproject/xos-base:candidate" while it pushes to a
//     private registry, so "xosproject/xos-base" is the family's image
//     whatever registry the family pushes to. A one-word reference ("base")
//     matches a node whose Path is "base" or "library/base". A reference that
//     spells out Docker Hub ("docker.io/library/debian") never matches by
//     path: that is how a family image named like a Docker Hub image is built
//     FROM the Docker Hub one.
//
// Every other reference is external: it is pulled, not built. An image that
// references itself, or a cycle of images, is a [*CycleError].
//
// # Selection
//
// [Graph.Select] follows Kolla: the images named (by exact name, or else by a
// regular expression matched anywhere in the name, Python's re.search; anchor
// it with ^...$ to match whole names) plus all their ancestors, so that each
// selected image is built on fresh parents. With skipParents only the named
// images are selected, and they are built FROM their parents as the registry
// serves them. Excluded images are removed from the selection; an excluded
// ancestor is, like a skipped parent, used as the registry serves it, and its
// own ancestors are only selected when another selected image needs them.
package graph

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/distribution/reference"

	"github.com/imagebuilder/imagebuilder/internal/dockerfile"
)

// Node is one image of the family.
type Node struct {
	// Name identifies the image in the family (unique).
	Name string
	// Repository is where the image is pushed, normalized with its registry,
	// without tag, e.g. "127.0.0.1:5000/ns/base". It is normalized again by
	// New ("ns/base" becomes "docker.io/ns/base").
	Repository string
	// Path is Repository without its registry, e.g. "ns/base"; New derives it
	// from Repository when empty.
	Path string
	// Refs are the image references of the image's Dockerfile.
	Refs []dockerfile.Reference
}

// Edge is one reference of Child to its internal parent Parent.
type Edge struct {
	Parent, Child string
	Ref           dockerfile.Reference
}

// CycleError is the error of a family whose images depend on each other in a
// circle. Path lists the cycle from parent to child, its first image
// repeated at the end: ["a", "b", "a"] is a built FROM b built FROM a. An
// image that references itself has the path [a, a].
type CycleError struct {
	Path []string
}

func (e *CycleError) Error() string {
	return "dependency cycle: " + strings.Join(e.Path, " -> ")
}

// Graph is the dependency graph of a family. It is immutable and safe for
// concurrent use.
type Graph struct {
	nodes     []Node
	index     map[string]int
	parents   [][]Edge                 // per node, one per internal reference, in file order
	externals [][]dockerfile.Reference // per node, in file order
	children  [][]int                  // per node, distinct, in input order
	order     []int                    // topological, ties in input order
	level     []int                    // 0 for images without internal parents
}

// New builds the graph of nodes. It fails on an empty or repeated name, an
// invalid or repeated repository, a reference that matches several nodes
// by path, and on cycles ([*CycleError]).
func New(nodes []Node) (*Graph, error) {
	g := &Graph{
		nodes:     slices.Clone(nodes),
		index:     make(map[string]int, len(nodes)),
		parents:   make([][]Edge, len(nodes)),
		externals: make([][]dockerfile.Reference, len(nodes)),
		children:  make([][]int, len(nodes)),
	}
	byRepo := map[string]int{}
	byPath := map[string][]int{}
	for i := range g.nodes {
		n := &g.nodes[i]
		if n.Name == "" {
			return nil, fmt.Errorf("image %d has no name", i)
		}
		if j, dup := g.index[n.Name]; dup {
			return nil, fmt.Errorf("images %d and %d are both named %q", j, i, n.Name)
		}
		g.index[n.Name] = i
		named, err := reference.ParseNormalizedNamed(n.Repository)
		if err != nil {
			return nil, fmt.Errorf("image %q: repository %q: %w", n.Name, n.Repository, err)
		}
		n.Repository = named.Name()
		if n.Path == "" {
			n.Path = reference.Path(named)
		}
		if j, dup := byRepo[n.Repository]; dup {
			return nil, fmt.Errorf("images %q and %q both push to %s", g.nodes[j].Name, n.Name, n.Repository)
		}
		byRepo[n.Repository] = i
		byPath[n.Path] = append(byPath[n.Path], i)
	}
	for i, n := range g.nodes {
		for _, r := range n.Refs {
			p, err := g.match(r.Ref, byRepo, byPath)
			if err != nil {
				return nil, fmt.Errorf("image %q: line %d: %w", n.Name, r.Line, err)
			}
			if p < 0 {
				g.externals[i] = append(g.externals[i], r)
				continue
			}
			if p == i {
				return nil, &CycleError{Path: []string{n.Name, n.Name}}
			}
			g.parents[i] = append(g.parents[i], Edge{Parent: g.nodes[p].Name, Child: n.Name, Ref: r})
		}
	}
	for i := range g.nodes {
		for _, p := range g.parentIndexes(i) {
			g.children[p] = append(g.children[p], i)
		}
	}
	for p := range g.children {
		slices.Sort(g.children[p])
	}
	if err := g.sort(); err != nil {
		return nil, err
	}
	return g, nil
}

// match returns the node ref names, or -1 for an external reference.
func (g *Graph) match(ref string, byRepo map[string]int, byPath map[string][]int) (int, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return -1, nil // not an image name: external, and the build will say why
	}
	if i, ok := byRepo[named.Name()]; ok {
		return i, nil
	}
	if namesRegistry(ref) {
		return -1, nil
	}
	path := reference.Path(named) // "library/base" for "base"
	found := byPath[path]
	if short := strings.TrimPrefix(path, "library/"); short != path {
		found = append(slices.Clone(found), byPath[short]...)
	}
	switch len(found) {
	case 0:
		return -1, nil
	case 1:
		return found[0], nil
	}
	var repos []string
	for _, i := range found {
		repos = append(repos, g.nodes[i].Repository)
	}
	return -1, fmt.Errorf("reference %q names no registry and matches several images: %s", ref, strings.Join(repos, ", "))
}

// namesRegistry reports whether ref starts with a registry host, by the rule
// github.com/distribution/reference normalizes with: a first path component
// with a '.' or ':', "localhost", or upper-case letters.
func namesRegistry(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	return ok && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first)
}

// parentIndexes are the distinct internal parents of node i, in the order of
// their first reference.
func (g *Graph) parentIndexes(i int) []int {
	var out []int
	for _, e := range g.parents[i] {
		if p := g.index[e.Parent]; !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// sort computes the topological order (Kahn's algorithm, always taking the
// ready image that comes first in the input) and the levels, or finds a
// cycle.
func (g *Graph) sort() error {
	n := len(g.nodes)
	pending := make([]int, n) // internal parents not yet ordered
	var ready []int           // sorted
	for i := range n {
		pending[i] = len(g.parentIndexes(i))
		if pending[i] == 0 {
			ready = append(ready, i)
		}
	}
	g.level = make([]int, n)
	for len(ready) > 0 {
		i := ready[0]
		ready = ready[1:]
		g.order = append(g.order, i)
		for _, c := range g.children[i] {
			g.level[c] = max(g.level[c], g.level[i]+1)
			if pending[c]--; pending[c] == 0 {
				pos, _ := slices.BinarySearch(ready, c)
				ready = slices.Insert(ready, pos, c)
			}
		}
	}
	if len(g.order) == n {
		return nil
	}
	// Every image left has a parent left: walk up from the first one until
	// an image repeats.
	start := slices.IndexFunc(pending, func(p int) bool { return p > 0 })
	seen := map[int]int{} // node -> position in walk
	var walk []int
	for i := start; ; {
		if at, ok := seen[i]; ok {
			walk = walk[at:]
			break
		}
		seen[i] = len(walk)
		walk = append(walk, i)
		for _, p := range g.parentIndexes(i) {
			if pending[p] > 0 {
				i = p
				break
			}
		}
	}
	// walk goes child -> parent; print parent -> child, starting at the
	// image that comes first in the input.
	slices.Reverse(walk)
	first := slices.Index(walk, slices.Min(walk))
	walk = append(walk[first:], walk[:first]...)
	path := make([]string, 0, len(walk)+1)
	for _, i := range walk {
		path = append(path, g.nodes[i].Name)
	}
	return &CycleError{Path: append(path, path[0])}
}

// Nodes returns the nodes as New normalized them, in input order.
func (g *Graph) Nodes() []Node { return slices.Clone(g.nodes) }

// Node returns the node named name.
func (g *Graph) Node(name string) (Node, bool) {
	i, ok := g.index[name]
	if !ok {
		return Node{}, false
	}
	return g.nodes[i], true
}

// Parents returns one edge per reference of name to an internal parent, in
// file order (an image copying from its base has two edges to it).
func (g *Graph) Parents(name string) []Edge {
	i, ok := g.index[name]
	if !ok {
		return nil
	}
	return slices.Clone(g.parents[i])
}

// Children returns the images that reference name, each once, in input order.
func (g *Graph) Children(name string) []string {
	i, ok := g.index[name]
	if !ok {
		return nil
	}
	return g.names(g.children[i])
}

// Externals returns the references of name to images outside the family, in
// file order.
func (g *Graph) Externals(name string) []dockerfile.Reference {
	i, ok := g.index[name]
	if !ok {
		return nil
	}
	return slices.Clone(g.externals[i])
}

// Order returns every image after all its parents; images that could go in
// either order keep their input order.
func (g *Graph) Order() []string { return g.names(g.order) }

// Levels groups the images by depth: level 0 holds the images without
// internal parents, level k those whose deepest parent is in level k-1, each
// level in input order. The images of a level never depend on each other, so
// the widest level is the most images that can usefully build at once.
func (g *Graph) Levels() [][]string {
	var out [][]string
	for _, i := range g.order {
		l := g.level[i]
		for len(out) <= l {
			out = append(out, nil)
		}
		out[l] = append(out[l], g.nodes[i].Name)
	}
	for _, lv := range out {
		slices.SortFunc(lv, func(a, b string) int { return g.index[a] - g.index[b] })
	}
	return out
}

func (g *Graph) names(idx []int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = g.nodes[i].Name
	}
	return out
}

// Select returns the images to build, in [Graph.Order]: those include names
// plus all their ancestors (only those include names with skipParents),
// minus those exclude names. An empty include selects every image. An entry
// of include or exclude is an image name when one is called that, and
// otherwise a regular expression (Go's RE2 syntax) matched anywhere in the
// names, as Kolla's re.search: "nova" selects "nova-api" and "nova-compute",
// "^nova$" only "nova". An invalid regular expression, or an entry that
// matches no image, is an error naming it. An excluded ancestor is not
// built: its children use it as the registry serves it, and its own
// ancestors are selected only when another selected image needs them.
func (g *Graph) Select(include, exclude []string, skipParents bool) ([]string, error) {
	excluded, err := g.matchAll(exclude, "--exclude")
	if err != nil {
		return nil, err
	}
	var roots map[int]bool
	if len(include) == 0 {
		roots = make(map[int]bool, len(g.nodes))
		for i := range g.nodes {
			roots[i] = true
		}
	} else if roots, err = g.matchAll(include, "image"); err != nil {
		return nil, err
	}
	selected := map[int]bool{}
	var visit func(i int)
	visit = func(i int) {
		if selected[i] || excluded[i] {
			return
		}
		selected[i] = true
		if !skipParents {
			for _, p := range g.parentIndexes(i) {
				visit(p)
			}
		}
	}
	for i := range roots {
		visit(i)
	}
	var out []string
	for _, i := range g.order {
		if selected[i] {
			out = append(out, g.nodes[i].Name)
		}
	}
	return out, nil
}

// ErrNoMatch is wrapped by the errors of Select about an entry that matches
// no image.
var ErrNoMatch = errors.New("matches no image")

// matchAll resolves names or regular expressions to node indexes; what names
// the list in errors.
func (g *Graph) matchAll(patterns []string, what string) (map[int]bool, error) {
	out := map[int]bool{}
	for _, p := range patterns {
		if i, ok := g.index[p]; ok {
			out[i] = true
			continue
		}
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("%s %q: not an image name, and not a valid regular expression: %w", what, p, err)
		}
		n := 0
		for i, node := range g.nodes {
			if re.MatchString(node.Name) {
				out[i] = true
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%s %q: %w", what, p, ErrNoMatch)
		}
	}
	return out, nil
}
