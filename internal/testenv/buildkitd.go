package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// KillBuildkitd kills the test environment's buildkitd with SIGKILL (tests of what a dead engine
// does to a build). Pair it with RestartBuildkitd in a t.Cleanup.
func KillBuildkitd(t testing.TB) {
	t.Helper()
	script(t, "kill-buildkitd")
}

// RestartBuildkitd starts the test environment's buildkitd again and waits until it answers.
func RestartBuildkitd(t testing.TB) {
	t.Helper()
	script(t, "restart-buildkitd")
}

func script(t testing.TB, arg string) {
	t.Helper()
	s := os.Getenv("IMAGEBUILDER_TEST_ENV_SCRIPT")
	if s == "" {
		t.Fatalf("IMAGEBUILDER_TEST_ENV_SCRIPT is not set (run through `make test`)")
	}
	if out, err := exec.Command(s, arg).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", s, arg, err, out)
	}
}
