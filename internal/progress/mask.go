package progress

import (
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// Masker masks secrets in BuildKit status events before passing them on, so that every display
// mode (the TTY display included, which must write to the terminal itself) and every consumer
// of the events sees them masked. Vertex names, errors, statuses and warnings are masked as
// they come; step output is masked line by line per vertex and stream (a secret split across
// two chunks of output is still caught), and a partial last line is passed on when its vertex
// completes or the Masker is closed.
type Masker struct {
	mu      sync.Mutex
	red     *redact.Redactor
	next    func(*client.SolveStatus)
	streams map[logStream]*redact.Writer
	out     []*client.VertexLog // masked output collected while one event is handled
	now     time.Time           // timestamp for that output
}

type logStream struct {
	vertex digest.Digest
	stream int
}

// NewMasker returns a Masker passing masked events to next.
func NewMasker(red *redact.Redactor, next func(*client.SolveStatus)) *Masker {
	return &Masker{red: red, next: next, streams: map[logStream]*redact.Writer{}}
}

// Status masks s and passes it on. It does not modify s. Safe for concurrent use.
func (m *Masker) Status(s *client.SolveStatus) {
	if m == nil || m.next == nil || s == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &client.SolveStatus{}
	for _, l := range s.Logs {
		m.now = l.Timestamp
		w := m.streams[logStream{l.Vertex, l.Stream}]
		if w == nil {
			w = m.red.Writer(&logSink{m: m, key: logStream{l.Vertex, l.Stream}})
			m.streams[logStream{l.Vertex, l.Stream}] = w
		}
		_, _ = w.Write(l.Data)
	}
	for _, v := range s.Vertexes {
		if v.Completed != nil {
			m.flushVertex(v.Digest)
		}
		c := *v
		c.Name = m.red.String(v.Name)
		c.Error = m.red.String(v.Error)
		out.Vertexes = append(out.Vertexes, &c)
	}
	for _, st := range s.Statuses {
		c := *st
		c.ID = m.red.String(st.ID)
		c.Name = m.red.String(st.Name)
		out.Statuses = append(out.Statuses, &c)
	}
	for _, w := range s.Warnings {
		c := *w
		c.Short = []byte(m.red.String(string(w.Short)))
		c.Detail = make([][]byte, len(w.Detail))
		for i, d := range w.Detail {
			c.Detail[i] = []byte(m.red.String(string(d)))
		}
		c.URL = m.red.String(w.URL)
		out.Warnings = append(out.Warnings, &c)
	}
	out.Logs, m.out = m.out, nil
	if len(out.Logs) > 0 || len(out.Vertexes) > 0 || len(out.Statuses) > 0 || len(out.Warnings) > 0 {
		m.next(out)
	}
}

// flushVertex passes on the rest of a completed vertex's output; m.mu is held.
func (m *Masker) flushVertex(d digest.Digest) {
	for k, w := range m.streams {
		if k.vertex == d {
			_ = w.Flush()
			delete(m.streams, k)
		}
	}
}

// Close passes on what output is still held back.
func (m *Masker) Close() {
	if m == nil || m.next == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = time.Now()
	for k, w := range m.streams {
		_ = w.Flush()
		delete(m.streams, k)
	}
	if len(m.out) > 0 {
		logs := m.out
		m.out = nil
		m.next(&client.SolveStatus{Logs: logs})
	}
}

// logSink turns masked output back into log entries of one stream.
type logSink struct {
	m   *Masker
	key logStream
}

func (s *logSink) Write(p []byte) (int, error) {
	s.m.out = append(s.m.out, &client.VertexLog{
		Vertex: s.key.vertex, Stream: s.key.stream, Data: append([]byte(nil), p...), Timestamp: s.m.now,
	})
	return len(p), nil
}
