package dockerfile

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// This file maps BuildKit's parse tree back to bytes of the original file.
// BuildKit's parser records only the physical lines an instruction spans, so
// the logical line it parsed is rebuilt here with the same rules (comment and
// empty lines inside a continuation are skipped, the continuation character is
// removed, leading white space is kept on continuation lines), remembering the
// offset in the file of every byte.

var bom = []byte{0xEF, 0xBB, 0xBF}

// span is a half-open byte range [start, end) of the original file. An empty
// span is an insertion point.
type span struct{ start, end int }

// text is a Dockerfile split into physical lines the way BuildKit's scanner
// splits it (on '\n', keeping line endings).
type text struct {
	data         []byte
	lineStarts   []int // lineStarts[i] is the offset of physical line i+1
	continuation *regexp.Regexp
}

func newText(data []byte, escape rune) *text {
	s := &text{data: data}
	for off := 0; off < len(data); {
		s.lineStarts = append(s.lineStarts, off)
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
	}
	// Same expression as BuildKit's parser (directives.setEscapeToken).
	e := string(escape)
	s.continuation = regexp.MustCompile(`([^\` + e + `])\` + e + `[ \t]*$|^\` + e + `[ \t]*$`)
	return s
}

// lineOffset returns the offset of the start of physical line n (1-based), or
// len(data) past the last line.
func (s *text) lineOffset(n int) int {
	if n-1 < len(s.lineStarts) && n >= 1 {
		return s.lineStarts[n-1]
	}
	return len(s.data)
}

// physLine returns physical line n (1-based) with its line ending and its
// offset, without the byte-order mark on line 1 (BuildKit drops it).
func (s *text) physLine(n int) ([]byte, int) {
	start := s.lineOffset(n)
	end := s.lineOffset(n + 1)
	line := s.data[start:end]
	if n == 1 && bytes.HasPrefix(line, bom) {
		return line[len(bom):], start + len(bom)
	}
	return line, start
}

// logical is an instruction's text as BuildKit's parser saw it; pos[i] is the
// file offset of text[i].
type logical struct {
	text string
	pos  []int
}

// logicalLine rebuilds the instruction that starts on physical line start.
func (s *text) logicalLine(start int) logical {
	var (
		buf []byte
		pos []int
	)
	for n := start; n <= len(s.lineStarts); n++ {
		raw, off := s.physLine(n)
		line := bytes.TrimRight(raw, "\r\n")
		if n == start {
			trimmed := bytes.TrimLeftFunc(line, unicode.IsSpace)
			off += len(line) - len(trimmed)
			line = trimmed
		} else {
			if isComment(raw) || len(bytes.TrimLeftFunc(line, unicode.IsSpace)) == 0 {
				continue
			}
		}
		keep, more := len(line), false
		if loc := s.continuation.FindSubmatchIndex(line); loc != nil {
			more = true
			if loc[2] >= 0 {
				keep = loc[3]
			} else {
				keep = loc[0]
			}
		}
		buf = append(buf, line[:keep]...)
		for i := range keep {
			pos = append(pos, off+i)
		}
		if !more {
			break
		}
	}
	return logical{text: string(buf), pos: pos}
}

func isComment(line []byte) bool {
	line = bytes.TrimLeftFunc(line, unicode.IsSpace)
	return len(line) > 0 && line[0] == '#'
}

// span maps the logical range [a, b) to the file. A range split over several
// physical lines maps to the whole stretch between its first and last byte.
func (l logical) span(a, b int) span {
	if a == b {
		if a == 0 {
			return span{} // not reached: insertions always follow a word
		}
		p := l.pos[a-1] + 1
		return span{p, p}
	}
	return span{l.pos[a], l.pos[b-1] + 1}
}

// wordsFromEnd finds the start offsets in text of the given words, which must
// be the last words of text, separated by runs of characters for which sep
// reports true (BuildKit's parser gives the words, not where they are, and the
// words are always at the end of the instruction).
func wordsFromEnd(text string, words []string, sep func(rune) bool) ([]int, error) {
	starts := make([]int, len(words))
	rest := strings.TrimRightFunc(text, unicode.IsSpace)
	for i := len(words) - 1; i >= 0; i-- {
		w := words[i]
		if w == "" || !strings.HasSuffix(rest, w) {
			return nil, fmt.Errorf("cannot locate %q in %q", w, text)
		}
		rest = rest[:len(rest)-len(w)]
		starts[i] = len(rest)
		if i == 0 {
			break
		}
		trimmed := strings.TrimRightFunc(rest, sep)
		if len(trimmed) == len(rest) {
			return nil, fmt.Errorf("cannot locate %q in %q", w, text)
		}
		rest = trimmed
	}
	return starts, nil
}

// isFromSep reports the separators BuildKit splits FROM arguments on.
func isFromSep(r rune) bool {
	switch r {
	case ' ', '\t', '\v', '\f', '\r':
		return true
	}
	return false
}
