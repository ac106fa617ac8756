package graph

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/imagebuilder/imagebuilder/internal/dockerfile"
)

// Fill colours of the images in DOT, by decision.
var decisionColors = map[string]string{
	"build":         "#9ecae1", // blue
	"skip":          "#a1d99b", // green
	"pull":          "#fdd49e", // light orange
	"failed":        "#fc9272", // red
	"parent_failed": "#fcbba1", // pale red
}

const externalColor = "#d9d9d9" // grey

// DOT writes the graph in Graphviz's DOT language, for `dot -Tsvg`: one
// ellipse per image, labelled with its name and, when decide is not nil,
// decide(name) (build, skip, pull, failed or parent_failed, which also choose
// its fill colour); one grey box per external reference (as written, tag
// included); an edge from each parent to each child: solid for FROM, dashed
// and labelled for COPY --from and RUN --mount=from=, with the --platform of
// a FROM as its label. References repeated with the same kind and platform
// make one edge. Node IDs are the image names and the references, quoted;
// an external reference written like an image name gets the prefix
// "external:".
func (g *Graph) DOT(w io.Writer, decide func(name string) string) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("digraph family {\n")
	bw.WriteString("\tnode [style=filled, fontname=\"Helvetica\", fillcolor=\"white\"];\n")
	bw.WriteString("\tedge [fontname=\"Helvetica\", fontsize=10];\n")
	for _, i := range g.order {
		n := g.nodes[i]
		label := n.Name
		attrs := ""
		if decide != nil {
			d := decide(n.Name)
			if d != "" {
				label += "\n" + d
			}
			if c, ok := decisionColors[d]; ok {
				attrs = ", fillcolor=" + quoteID(c)
			}
		}
		fmt.Fprintf(bw, "\t%s [label=%s%s];\n", quoteID(n.Name), quoteLabel(label), attrs)
	}
	extID := map[string]string{} // reference -> node ID
	for _, i := range g.order {
		for _, r := range g.externals[i] {
			if _, done := extID[r.Ref]; done {
				continue
			}
			id := r.Ref
			if _, clash := g.index[id]; clash {
				id = "external:" + id
			}
			extID[r.Ref] = id
			fmt.Fprintf(bw, "\t%s [label=%s, shape=box, fillcolor=%s];\n", quoteID(id), quoteLabel(r.Ref), quoteID(externalColor))
		}
	}
	type edgeKey struct{ from, to, kind, platform string }
	seen := map[edgeKey]bool{}
	edge := func(from, to string, r dockerfile.Reference) {
		k := edgeKey{from, to, r.Kind, r.Platform}
		if seen[k] {
			return
		}
		seen[k] = true
		var attrs []string
		switch r.Kind {
		case dockerfile.RefCopy:
			attrs = append(attrs, "style=dashed", "label="+quoteLabel("COPY --from"))
		case dockerfile.RefMount:
			attrs = append(attrs, "style=dashed", "label="+quoteLabel("RUN --mount"))
		default:
			if r.Platform != "" {
				attrs = append(attrs, "label="+quoteLabel("--platform="+r.Platform))
			}
		}
		fmt.Fprintf(bw, "\t%s -> %s", quoteID(from), quoteID(to))
		if len(attrs) > 0 {
			fmt.Fprintf(bw, " [%s]", strings.Join(attrs, ", "))
		}
		bw.WriteString(";\n")
	}
	for _, i := range g.order {
		for _, e := range g.parents[i] {
			edge(e.Parent, e.Child, e.Ref)
		}
		for _, r := range g.externals[i] {
			edge(extID[r.Ref], g.nodes[i].Name, r)
		}
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// quoteID makes s a DOT quoted ID: in those only a double quote is escaped
// (a backslash stays as it is, and so it is in the SVG's titles).
func quoteID(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

// quoteLabel makes s a DOT quoted label: a double quote and a backslash are
// escaped, a newline becomes a line break.
func quoteLabel(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "")
	return `"` + r.Replace(s) + `"`
}
