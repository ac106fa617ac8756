package buildah

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// builderStatus is the BuildKit status event a build reports progress with.
type builderStatus = client.SolveStatus

// stepLine matches buildah's announcement of a Dockerfile instruction: "STEP 2/4: RUN make",
// in a multi-stage build "[1/2] STEP 2/4: RUN make".
var stepLine = regexp.MustCompile(`^(?:\[\d+/\d+\] )?STEP \d+/\d+: `)

const (
	cachePrefix  = "--> Using cache "
	commitPrefix = "COMMIT"
	errorPrefix  = "Error: "
)

// outputParser turns buildah's output into BuildKit status events: one vertex per STEP line
// (and one for the COMMIT), named with the platform prefix, each with the lines that follow it
// as its logs; "--> Using cache" marks the vertex cached. buildah's closing "Error: ..." line
// becomes the error of the vertex that was running, and is kept for the build's error.
type outputParser struct {
	prefix string
	emit   func(*builderStatus)
	now    func() time.Time

	cur       *client.Vertex // the running vertex, nil before the first line
	n         int
	errorLine string // buildah's "Error: ..." line, without the prefix
}

func newOutputParser(prefix string, emit func(*builderStatus)) *outputParser {
	return &outputParser{prefix: prefix, emit: emit, now: time.Now}
}

// start completes the running vertex and starts one named name.
func (p *outputParser) start(name string) {
	p.complete("")
	t := p.now()
	p.n++
	p.cur = &client.Vertex{
		Digest:  digest.FromString(fmt.Sprintf("buildah:%s:%d:%d", p.prefix, t.UnixNano(), p.n)),
		Name:    p.prefix + name,
		Started: &t,
	}
	p.send(&builderStatus{Vertexes: []*client.Vertex{p.copyCur()}})
}

// complete completes the running vertex, with errMsg as its error when not empty.
func (p *outputParser) complete(errMsg string) {
	if p.cur == nil {
		return
	}
	t := p.now()
	p.cur.Completed = &t
	p.cur.Error = errMsg
	p.send(&builderStatus{Vertexes: []*client.Vertex{p.copyCur()}})
	p.cur = nil
}

func (p *outputParser) copyCur() *client.Vertex {
	v := *p.cur
	return &v
}

func (p *outputParser) send(s *builderStatus) {
	if p.emit != nil {
		p.emit(s)
	}
}

// line takes one line of output, without its newline.
func (p *outputParser) line(l string) {
	switch {
	case stepLine.MatchString(l):
		p.start(l)
		return
	case l == commitPrefix || strings.HasPrefix(l, commitPrefix+" "):
		p.start(l)
		return
	case strings.HasPrefix(l, errorPrefix):
		// The error is reported once, as the vertex's error and the build's; its output
		// stays the step's own.
		p.errorLine = strings.TrimPrefix(l, errorPrefix)
		return
	}
	if p.cur == nil {
		p.start("buildah build")
	}
	if strings.HasPrefix(l, cachePrefix) && !p.cur.Cached {
		p.cur.Cached = true
		p.send(&builderStatus{Vertexes: []*client.Vertex{p.copyCur()}})
	}
	p.send(&builderStatus{Logs: []*client.VertexLog{{Vertex: p.cur.Digest, Stream: 1, Data: []byte(l + "\n"), Timestamp: p.now()}}})
}

// finish completes the running vertex once buildah exited with err: a failed build fails the
// step that was running with buildah's error line (or err).
func (p *outputParser) finish(err error) {
	if err == nil {
		p.complete("")
		return
	}
	msg := p.errorLine
	if msg == "" {
		msg = err.Error()
	}
	if p.cur == nil {
		p.start("buildah build")
	}
	p.complete(msg)
}
