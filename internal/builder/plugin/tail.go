package plugin

import (
	"strings"
	"sync"
)

const (
	// stderrLines and stderrBytes bound what an error quotes of a plugin's stderr.
	stderrLines = 20
	stderrBytes = 4096
)

// tail keeps the last lines written to it: a plugin's stderr, for errors.
type tail struct {
	mu      sync.Mutex
	lines   []string
	partial strings.Builder
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(p)
	for {
		line, rest, ok := strings.Cut(s, "\n")
		if !ok {
			if t.partial.Len() < stderrBytes {
				t.partial.WriteString(line)
			}
			break
		}
		t.partial.WriteString(line)
		t.push(t.partial.String())
		t.partial.Reset()
		s = rest
	}
	return len(p), nil
}

func (t *tail) push(line string) {
	line = strings.TrimRight(line, "\r")
	if strings.TrimSpace(line) == "" {
		return
	}
	if len(line) > stderrBytes {
		line = line[:stderrBytes]
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > stderrLines {
		t.lines = t.lines[len(t.lines)-stderrLines:]
	}
}

// String returns the last lines (and an unfinished one), at most stderrBytes.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if t.partial.Len() > 0 {
		lines = append(lines[:len(lines):len(lines)], t.partial.String())
	}
	out := strings.Join(lines, "\n")
	for len(out) > stderrBytes && len(lines) > 1 {
		lines = lines[1:]
		out = strings.Join(lines, "\n")
	}
	return out
}
