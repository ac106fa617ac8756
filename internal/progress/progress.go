// Package progress renders build progress — BuildKit status events and imagebuilder's own step
// lines — for humans (plain lines, or a TTY display) or machines (JSON lines), on a writer that
// is never the one carrying the result. Progress is data: producers only send events.
package progress

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/term"
)

// Modes, named as buildx and buildctl name them (--progress, BUILDKIT_PROGRESS).
const (
	Auto    = "auto"
	Plain   = "plain"
	TTY     = "tty"
	RawJSON = "rawjson" // BuildKit's status events, one JSON object per line
	JSON    = "json"    // an alias of rawjson
	Quiet   = "quiet"
)

// Modes lists the accepted modes, for help texts and completion.
var Modes = []string{Auto, Plain, TTY, RawJSON, JSON, Quiet}

// EnvMode is the environment variable buildx and buildctl read for the progress mode.
const EnvMode = "BUILDKIT_PROGRESS"

// ResolveMode decides the mode as buildx does: the flag when given (flag != ""), else
// BUILDKIT_PROGRESS when set (env), else auto; auto is tty when the output is a terminal and
// plain otherwise. It returns plain, tty, rawjson or quiet.
func ResolveMode(flag, env string, terminal bool) (string, error) {
	mode, from := flag, "--progress"
	if mode == "" {
		mode, from = strings.TrimSpace(env), EnvMode
	}
	switch strings.ToLower(mode) {
	case "", Auto:
		if terminal {
			return TTY, nil
		}
		return Plain, nil
	case Plain:
		return Plain, nil
	case TTY:
		if !terminal {
			return "", fmt.Errorf("%s %s: standard error is not a terminal (use plain or auto)", from, mode)
		}
		return TTY, nil
	case RawJSON, JSON:
		return RawJSON, nil
	case Quiet:
		return Quiet, nil
	}
	return "", fmt.Errorf("%s: unknown progress mode %q (want %s)", from, mode, strings.Join(Modes, ", "))
}

// Printer renders events until Close.
type Printer struct {
	ch     chan *client.SolveStatus
	done   chan struct{}
	err    error
	mu     sync.Mutex
	closed bool
	n      int
}

// New starts a printer on w. mode is one of [Modes]; auto picks tty when w is a terminal.
func New(w io.Writer, mode string) (*Printer, error) {
	var m progressui.DisplayMode
	switch mode {
	case "", Auto:
		if IsTerminal(w) {
			m = progressui.TtyMode
		} else {
			m = progressui.PlainMode
		}
	case Plain:
		m = progressui.PlainMode
	case TTY:
		m = progressui.TtyMode
	case RawJSON, JSON:
		m = progressui.RawJSONMode
	case Quiet:
		m = progressui.QuietMode
	default:
		return nil, fmt.Errorf("unknown progress mode %q (want %s)", mode, strings.Join(Modes, ", "))
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

// IsTerminal reports whether f (a writer or reader) is a terminal: an *os.File the terminal
// ioctl accepts. Character devices that are not terminals (/dev/null) are not.
func IsTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
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
