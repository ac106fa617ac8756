package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

func TestIsTerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, tc := range map[string]struct {
		f    any
		want bool
	}{
		"/dev/null (a character device)": {null, false},
		"a pipe":                         {w, false},
		"a buffer":                       {&bytes.Buffer{}, false},
		"a pty":                          {testenv.Pty(t), true},
	} {
		if got := IsTerminal(tc.f); got != tc.want {
			t.Errorf("%s: IsTerminal = %v, want %v", name, got, tc.want)
		}
	}
}

// TestResolveMode: the flag beats BUILDKIT_PROGRESS, which beats auto; auto is tty only on a
// terminal; json is rawjson; a tty demanded off a terminal and unknown modes are refused,
// naming where the mode came from.
func TestResolveMode(t *testing.T) {
	tests := []struct {
		flag, env string
		terminal  bool
		want      string
		wantErr   string
	}{
		{"", "", false, Plain, ""},
		{"", "", true, TTY, ""},
		{"auto", "", false, Plain, ""},
		{"auto", "tty", false, Plain, ""}, // an explicit flag wins, even auto
		{"", "plain", true, Plain, ""},
		{"", "rawjson", false, RawJSON, ""},
		{"", "auto", true, TTY, ""},
		{"", " Quiet ", false, Quiet, ""},
		{"json", "plain", false, RawJSON, ""},
		{"rawjson", "", true, RawJSON, ""},
		{"quiet", "tty", false, Quiet, ""},
		{"plain", "bogus", false, Plain, ""}, // a bad env value does not matter when the flag is given
		{"tty", "", true, TTY, ""},
		{"tty", "", false, "", "--progress tty: standard error is not a terminal"},
		{"", "tty", false, "", "BUILDKIT_PROGRESS tty: standard error is not a terminal"},
		{"fancy", "", true, "", `--progress: unknown progress mode "fancy" (want auto, plain, tty, rawjson, json, quiet)`},
		{"", "fancy", true, "", `BUILDKIT_PROGRESS: unknown progress mode "fancy"`},
	}
	for _, tt := range tests {
		got, err := ResolveMode(tt.flag, tt.env, tt.terminal)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ResolveMode(%q, %q, %v) error = %v, want %q", tt.flag, tt.env, tt.terminal, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ResolveMode(%q, %q, %v) = %q, %v; want %q", tt.flag, tt.env, tt.terminal, got, err, tt.want)
		}
	}
}

// TestModesRender: every mode renders a step line where it should (plain and rawjson as text on
// a pipe-like writer, tty on a real pty), quiet renders nothing.
func TestModesRender(t *testing.T) {
	for _, mode := range []string{Plain, RawJSON, JSON, Quiet, Auto} {
		var buf bytes.Buffer
		p, err := New(&buf, mode)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		p.Log("fetching git source")
		if err := p.Close(); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		out := buf.String()
		switch mode {
		case Quiet:
			if out != "" {
				t.Errorf("quiet printed %q", out)
			}
		case RawJSON, JSON:
			if !strings.HasPrefix(out, "{") || !strings.Contains(out, "fetching git source") {
				t.Errorf("%s: %q", mode, out)
			}
		default: // auto on a buffer is plain
			if !strings.Contains(out, "[imagebuilder] fetching git source") || strings.HasPrefix(out, "{") {
				t.Errorf("%s: %q", mode, out)
			}
		}
	}
	tty := testenv.Pty(t)
	p, err := New(tty, Auto)
	if err != nil {
		t.Fatalf("auto on a pty: %v", err)
	}
	p.Log("on a terminal")
	if err := p.Close(); err != nil {
		t.Fatalf("tty display: %v", err)
	}
	if _, err := New(&bytes.Buffer{}, "fancy"); err == nil {
		t.Error("unknown mode accepted")
	}
}
