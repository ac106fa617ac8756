package redact

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	r := New("s3cr3t/+x", "", "s3cr3t")
	got := r.String(`login s3cr3t/+x failed; url https://u:s3cr3t%2F%2Bx@h/ and s3cr3t`)
	if strings.Contains(got, "s3cr3t") {
		t.Fatalf("secret left in %q", got)
	}
	if want := "login ******** failed"; !strings.HasPrefix(got, want) {
		t.Fatalf("got %q", got)
	}
	var nilR *Redactor
	if nilR.String("x") != "x" {
		t.Fatal("nil redactor changed the string")
	}
}

func TestError(t *testing.T) {
	base := errors.New("auth with hunter2 failed")
	err := New("hunter2").Error(base)
	if strings.Contains(err.Error(), "hunter2") || !errors.Is(err, base) {
		t.Fatalf("%v", err)
	}
}

func TestWriterSplitSecret(t *testing.T) {
	var sb strings.Builder
	w := New("hunter2").Writer(&sb)
	for _, chunk := range []string{"pass: hun", "ter2\nnext hunt", "er2"} {
		io.WriteString(w, chunk)
	}
	w.Close()
	if strings.Contains(sb.String(), "hunter2") || strings.Count(sb.String(), Mask) != 2 {
		t.Fatalf("got %q", sb.String())
	}
}
