package dockerfile

import (
	"strings"
	"testing"
)

func TestWrap(t *testing.T) {
	for name, tc := range map[string]struct {
		in, header, footer, target, want string
	}{
		"one stage": {
			in: "FROM a\nRUN x\n", header: "ENV P=1", footer: "ENV P=\n",
			want: "FROM a\nENV P=1\nRUN x\nENV P=\n",
		},
		"continued FROM, comments, no final newline": {
			in: "# c\nARG B=a\nFROM \\\n  $B AS one\n# FROM not-this\nRUN x", header: "ENV P=1", footer: "ENV P=",
			want: "# c\nARG B=a\nFROM \\\n  $B AS one\nENV P=1\n# FROM not-this\nRUN x\nENV P=\n",
		},
		"heredoc": {
			in: "FROM a\nRUN <<EOF\nFROM b\nEOF\nFROM c\nRUN y\n", header: "H", footer: "F",
			want: "FROM a\nH\nRUN <<EOF\nFROM b\nEOF\nFROM c\nH\nRUN y\nF\n",
		},
		"target by name": {
			in: "FROM a AS Build\nRUN x\nFROM b\nRUN y\n", footer: "F", target: "build",
			want: "FROM a AS Build\nRUN x\nF\nFROM b\nRUN y\n",
		},
		"target by index": {
			in: "FROM a\nRUN x\nFROM b\n", footer: "F", target: "0",
			want: "FROM a\nRUN x\nF\nFROM b\n",
		},
		"nothing to insert": {in: "FROM a\n", want: "FROM a\n"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Wrap([]byte(tc.in), tc.header, tc.footer, tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
	if _, err := Wrap([]byte("FROM a\n"), "H", "", "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown target: %v", err)
	}
	if _, err := Wrap([]byte("# only a comment\n"), "H", "", ""); err == nil {
		t.Error("wrapped a file without FROM")
	}
}
