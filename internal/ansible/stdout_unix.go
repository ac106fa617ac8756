//go:build unix

package ansible

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// reserveStdout keeps file descriptor 1 for the module's result: it returns a private duplicate
// of it (closed on exec, so child processes cannot write to it) and points descriptor 1, and
// os.Stdout, at /dev/null. Whatever a library prints then cannot corrupt the result.
func reserveStdout() (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(unix.Stdout), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("duplicating stdout: %w", err)
	}
	result := os.NewFile(uintptr(fd), "result")
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return result, fmt.Errorf("opening %s: %w", os.DevNull, err)
	}
	if err := unix.Dup2(int(null.Fd()), unix.Stdout); err != nil {
		null.Close()
		return result, fmt.Errorf("redirecting stdout: %w", err)
	}
	os.Stdout = null
	return result, nil
}
