package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Buildkitd is a private buildkitd a test may kill without disturbing the shared one other
// packages' tests use at the same time.
type Buildkitd struct {
	Addr string // unix:// address
	cmd  *exec.Cmd
	dir  string
}

// StartBuildkitd starts a buildkitd of its own (the buildkitd on PATH, which `scripts/testenv.sh
// env` puts there) with its own state, trusting the test registries over plain HTTP (and the
// registries httpRegistries, host:port, such as a registry the test serves), and waits until it
// answers. It is stopped and its state removed when the test ends.
func StartBuildkitd(t testing.TB, httpRegistries ...string) *Buildkitd {
	t.Helper()
	env := Require(t, Registry, AuthRegistry)
	bin, err := exec.LookPath("buildkitd")
	if err != nil {
		t.Fatalf("buildkitd is not on PATH (run through `make test`): %v", err)
	}
	dir, err := os.MkdirTemp("", "ib-bk-") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	b := &Buildkitd{Addr: "unix://" + filepath.Join(dir, "buildkitd.sock"), dir: dir}
	config := fmt.Sprintf(`root = %q
insecure-entitlements = ["network.host"]
[grpc]
  address = [%q]
[worker.oci]
  enabled = true
[worker.containerd]
  enabled = false
[registry.%q]
  http = true
[registry.%q]
  http = true
`, filepath.Join(dir, "root"), b.Addr, env[Registry], env[AuthRegistry])
	for _, r := range httpRegistries {
		config += fmt.Sprintf("[registry.%q]\n  http = true\n", r)
	}
	cfg := filepath.Join(dir, "buildkitd.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "buildkitd.log"))
	if err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(bin, "--config", cfg, "--oci-worker=true", "--containerd-worker=false")
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Kill(t)
		logf.Close()
		killContainersUnder(dir)
		unmountUnder(dir)
		os.RemoveAll(dir)
	})
	sock := strings.TrimPrefix(b.Addr, "unix://")
	for deadline := time.Now().Add(60 * time.Second); ; {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return b
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("private buildkitd did not start:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill kills the buildkitd with SIGKILL, and every process it started (the RUN steps).
func (b *Buildkitd) Kill(t testing.TB) {
	t.Helper()
	if b.cmd.ProcessState != nil {
		return
	}
	syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	b.cmd.Wait()
}

// killContainersUnder kills the processes whose root file system is an overlay below dir: the
// RUN steps of a killed buildkitd, which runc left running in their containers.
func killContainersUnder(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if !rootUnder(filepath.Join(p, "mountinfo"), dir) {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(filepath.Base(p), &pid); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// rootUnder reports whether the mount table says the process's root ("/") is an overlay whose
// layers lie below dir. Only the root mount counts: every process on the host sees the
// container's overlay mounted somewhere, but only the container has it at "/".
func rootUnder(mountinfo, dir string) bool {
	data, err := os.ReadFile(mountinfo)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && fields[4] == "/" {
			return strings.Contains(line, "dir="+dir+"/")
		}
	}
	return false
}

// unmountUnder lazily unmounts whatever a killed buildkitd left mounted below dir.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}
