// Package progress renders build progress — BuildKit status events and imagebuilder's own step
// lines — for humans (plain lines, or a TTY display) or machines (JSON lines), on a writer that
// is never the one carrying the result. Progress is data: producers only send events.
package progress

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	digest "github.com/opencontainers/go-digest"
)

// Modes.
const (
	Auto  = "auto"
	Plain = "plain"
	TTY   = "tty"
	JSON  = "json"
	Quiet = "quiet"
)

// Printer renders events until Close.
type Printer struct {
	ch     chan *client.SolveStatus
	done   chan struct{}
	err    error
	mu     sync.Mutex
	closed bool
	n      int
}

// New starts a printer on w. mode is auto, plain, tty, json or quiet; auto picks tty when w is a
// terminal.
func New(w io.Writer, mode string) (*Printer, error) {
	var m progressui.DisplayMode
	switch mode {
	case "", Auto:
		m = progressui.AutoMode
	case Plain:
		m = progressui.PlainMode
	case TTY:
		m = progressui.TtyMode
	case JSON:
		m = progressui.RawJSONMode
	case Quiet:
		m = progressui.QuietMode
	default:
		return nil, fmt.Errorf("unknown progress mode %q (want auto, plain, tty, json or quiet)", mode)
	}
	d, err := progressui.NewDisplay(w, m)
	if err != nil {
		return nil, fmt.Errorf("progress %s: %w", mode, err)
	}
	p := &Printer{ch: make(chan *client.SolveStatus, 64), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		// The display ends when the channel closes, not on cancellation, so that the last
		// events (the error) are still shown.
		_, p.err = d.UpdateFrom(context.Background(), p.ch)
	}()
	return p, nil
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Status forwards a BuildKit status event.
func (p *Printer) Status(s *client.SolveStatus) {
	if p == nil || s == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.ch <- s
	}
}

// Log shows one of imagebuilder's own step lines as a completed vertex.
func (p *Printer) Log(line string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.n++
	n := p.n
	p.mu.Unlock()
	now := time.Now()
	p.Status(&client.SolveStatus{Vertexes: []*client.Vertex{{
		Digest: digest.FromString(fmt.Sprintf("imagebuilder-log-%d", n)), // unique per printer
		Name:   "[imagebuilder] " + line, Started: &now, Completed: &now,
	}}})
}

// Close stops the display after it showed every event.
func (p *Printer) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.ch)
	}
	p.mu.Unlock()
	<-p.done
	if p.err == context.Canceled {
		return nil
	}
	return p.err
}
