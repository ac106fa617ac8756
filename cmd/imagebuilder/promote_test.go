package main

import (
	"strings"
	"testing"
)

// TestPromoteUsage: how promote is called, and which file it is given, is checked before any
// registry is contacted (exit 2, a message saying what is wrong).
func TestPromoteUsage(t *testing.T) {
	params := `{"source": {"git_repo": {"url": "https://example.com/r.git"}}, "target": {"registry": {"url": "127.0.0.1:1"}, "images": [{"image": "a", "tag": "b"}]}}`
	for _, tt := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"promote"}, "nothing to promote"},
		{params, []string{"promote", "-f", "-", "127.0.0.1:1/a:s=127.0.0.1:1/a:b"}, "not both"},
		{"", []string{"promote", "127.0.0.1:1/a:s"}, "want SRC=DST"},
		{"", []string{"promote", "--var", "a=b", "127.0.0.1:1/a:s=127.0.0.1:1/a:b"}, "--var is for -f FILE"},
		{`{"foo": 1}`, []string{"promote", "-f", "-"}, "neither build params (they have a target) nor a family file"},
		{params, []string{"promote", "-f", "-"}, "no stage_tag: nothing is staged to promote"},
		{"registry: {url: 127.0.0.1:1}\nimages: [{name: a, source: {local: {path: .}}}]\n", []string{"promote", "-f", "-"}, "/registry/stage_tag"},
		{"", []string{"sweep", "127.0.0.1:1/a", "--match", "(", "--older-than", "1d"}, "is not a regular expression"},
	} {
		code, _, stderr := ib(t, tt.stdin, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
}

// TestPromoteScope: a promote writing outside the credentials' repositories is refused before any
// request (the registry does not even listen), naming the rule.
func TestPromoteScope(t *testing.T) {
	params := `{"source": {"git_repo": {"url": "https://example.com/r.git"}}, "target": {"registry": {"url": "127.0.0.1:1",
		"stage_tag": "s_{{.Tag}}", "repositories": ["^team/"]}, "images": [{"image": "other/x", "tag": "b"}]}}`
	code, stdout, stderr := ib(t, params, "promote", "-f", "-")
	if code != 1 || !strings.Contains(stdout, `"step": "check"`) || !strings.Contains(stderr, "^team/ (/target/registry/repositories)") || strings.Contains(stderr, "connection refused") {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}
