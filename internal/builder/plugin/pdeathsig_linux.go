package plugin

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the plugin when imagebuilder dies without closing it
// (SIGKILL, a crash), so that no plugin outlives its host.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
