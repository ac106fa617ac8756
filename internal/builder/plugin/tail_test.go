package plugin

import (
	"fmt"
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	var tl tail
	fmt.Fprint(&tl, "first\r\n\n  \nsec")
	fmt.Fprint(&tl, "ond\nunfinished")
	if got, want := tl.String(), "first\nsecond\nunfinished"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for i := range 100 {
		fmt.Fprintf(&tl, "line %d\n", i)
	}
	lines := strings.Split(tl.String(), "\n")
	if len(lines) != stderrLines || lines[0] != "line 80" || lines[len(lines)-1] != "line 99" {
		t.Errorf("kept %d lines, %q ... %q", len(lines), lines[0], lines[len(lines)-1])
	}
	// A flood without newlines stays bounded, and so do long lines.
	var big tail
	big.Write([]byte(strings.Repeat("x", 3*stderrBytes)))
	big.Write([]byte("\n" + strings.Repeat("y", 3*stderrBytes) + "\nlast\n"))
	if s := big.String(); len(s) > stderrBytes || !strings.HasSuffix(s, "last") {
		t.Errorf("%d bytes, ends %q", len(s), s[max(0, len(s)-10):])
	}
}
