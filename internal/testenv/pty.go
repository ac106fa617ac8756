package testenv

import (
	"os"
	"testing"

	"github.com/containerd/console"
)

// Pty opens a pseudo-terminal and returns its terminal end, as a shell's stdin or stderr would
// be; both ends are closed when the test ends.
func Pty(t testing.TB) *os.File {
	t.Helper()
	master, name, err := console.NewPty()
	if err != nil {
		t.Fatalf("opening a pty: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
