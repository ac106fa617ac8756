// Package testenv gives integration tests the endpoints of the real test services
// (BuildKit, the Docker daemon, registries) that scripts/testenv.sh starts and exports.
//
// A test asks for the variables it needs; when one is missing the test is skipped,
// unless IMAGEBUILDER_REQUIRE_INTEGRATION=1, in which case it fails, so CI cannot
// pass by skipping.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Names of the variables exported by `scripts/testenv.sh env`.
const (
	BuildKit     = "IMAGEBUILDER_TEST_BUILDKIT"      // BuildKit address, e.g. unix:///run/imagebuilder/buildkitd.sock
	Docker       = "IMAGEBUILDER_TEST_DOCKER"        // Docker daemon address, e.g. unix:///var/run/docker.sock
	Registry     = "IMAGEBUILDER_TEST_REGISTRY"      // registry without auth, host:port
	AuthRegistry = "IMAGEBUILDER_TEST_AUTH_REGISTRY" // registry with htpasswd auth, host:port
	AuthUser     = "IMAGEBUILDER_TEST_AUTH_USER"     // user of AuthRegistry
	AuthPassword = "IMAGEBUILDER_TEST_AUTH_PASSWORD" // password of AuthRegistry
	Base         = "IMAGEBUILDER_TEST_BASE"          // multi-arch busybox base image (marker "busybox")
	BaseAlt      = "IMAGEBUILDER_TEST_BASE_ALT"      // multi-arch alternative base image (marker "alt")
	AuthBase     = "IMAGEBUILDER_TEST_AUTH_BASE"     // Base, in AuthRegistry

	// The loopback sshd (root by key): ssh -i SSHKey -p SSHPort SSHUser@SSHHost. The system ssh
	// client is configured to use the key and trust the host for 127.0.0.1 without options.
	SSHHost       = "IMAGEBUILDER_TEST_SSH_HOST"        // 127.0.0.1
	SSHPort       = "IMAGEBUILDER_TEST_SSH_PORT"        // 2222
	SSHUser       = "IMAGEBUILDER_TEST_SSH_USER"        // root
	SSHKey        = "IMAGEBUILDER_TEST_SSH_KEY"         // private key file
	SSHKnownHosts = "IMAGEBUILDER_TEST_SSH_KNOWN_HOSTS" // known_hosts file holding the sshd's host key

	// PostgreSQL (Debian's, 127.0.0.1:5432): postgres://imagebuilder:PASSWORD@127.0.0.1:5432/
	// imagebuilder?sslmode=disable; the role may create databases (see PostgresDatabase).
	Postgres = "IMAGEBUILDER_TEST_POSTGRES_URL"

	AnsibleBin = "IMAGEBUILDER_TEST_ANSIBLE_BIN" // bin/ of the ansible-core virtualenv
	OperaBin   = "IMAGEBUILDER_TEST_OPERA_BIN"   // bin/ of the opera virtualenv

	// ChromiumBin is the path of a headless-capable Chromium (Debian package chromium), for the
	// web page tests (chromedp).
	ChromiumBin = "IMAGEBUILDER_TEST_CHROMIUM"

	// SchemathesisBin is schemathesis's st program (its own virtualenv), the property-based
	// API fuzzer run against imagebuilder serve's OpenAPI document.
	SchemathesisBin = "IMAGEBUILDER_TEST_SCHEMATHESIS_BIN"

	// RequireIntegration turns missing variables into test failures when set to a true value.
	RequireIntegration = "IMAGEBUILDER_REQUIRE_INTEGRATION"
)

// Required reports whether IMAGEBUILDER_REQUIRE_INTEGRATION asks for integration tests to fail
// instead of skipping when a service is missing.
func Required() bool {
	v, err := strconv.ParseBool(strings.TrimSpace(os.Getenv(RequireIntegration)))
	return err == nil && v
}

// Require returns the values of the named environment variables. When any of them is unset or
// empty it skips the test (t.Skip), or fails it (t.Fatal) when Required() is true; the message
// names every missing variable and how to set them.
func Require(t testing.TB, vars ...string) map[string]string {
	t.Helper()
	values := make(map[string]string, len(vars))
	var missing []string
	for _, name := range vars {
		v := os.Getenv(name)
		if v == "" {
			missing = append(missing, name)
			continue
		}
		values[name] = v
	}
	if len(missing) > 0 {
		msg := "integration environment not configured: " + strings.Join(missing, ", ") +
			` unset (run scripts/testenv.sh up && eval "$(scripts/testenv.sh env)")`
		unavailable(t, msg)
	}
	return values
}

// RequireFile returns path when it exists. Otherwise it skips the test, or fails it when
// Required() is true; what says what the file is and who installs it.
func RequireFile(t testing.TB, path, what string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		msg := what + " is missing (" + err.Error() + "; scripts/testenv.sh up installs it)"
		unavailable(t, msg)
	}
	return path
}

// GitHTTPBackend is the path of git's http-backend CGI program, found through `git
// --exec-path` (Debian: /usr/lib/git-core), under RequireFile's rules.
func GitHTTPBackend(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		dir = "/usr/lib/git-core"
	}
	return RequireFile(t, filepath.Join(dir, "git-http-backend"), "git http-backend")
}

// OnlyWith skips a test that is a developer's tool rather than a check (rewriting golden files
// or seed corpora), unless enabled (its flag was given); how says how to enable it.
func OnlyWith(t testing.TB, enabled bool, how string) {
	t.Helper()
	if !enabled {
		t.Skip("a tool, not a check: run with " + how)
	}
}

// RequireProgram returns the path of the program name found on PATH. Otherwise it skips the
// test, or fails it when Required() is true; what says what the program is and who installs
// it.
func RequireProgram(t testing.TB, name, what string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := what + " is missing (" + err.Error() + "; scripts/testenv.sh up installs it)"
		unavailable(t, msg)
	}
	return path
}

// Dot is the path of Graphviz's dot (Debian package graphviz), under RequireProgram's rules.
func Dot(t testing.TB) string {
	t.Helper()
	return RequireProgram(t, "dot", "Graphviz's dot (Debian package graphviz)")
}

// Buildah is the path of buildah (Debian package buildah), under RequireProgram's rules.
func Buildah(t testing.TB) string {
	t.Helper()
	return RequireProgram(t, "buildah", "buildah (Debian package buildah)")
}

// unavailable skips the test for want of what msg says, or fails it when Required() is true.
func unavailable(t testing.TB, msg string) {
	t.Helper()
	if Required() {
		t.Fatal(msg + "; " + RequireIntegration + " is set, so this is a failure")
	}
	t.Skip(msg)
}

// Buildctl is the path of BuildKit's buildctl (scripts/testenv.sh builds it beside buildkitd and
// puts it on PATH), under RequireProgram's rules.
func Buildctl(t testing.TB) string {
	t.Helper()
	return RequireProgram(t, "buildctl", "BuildKit's buildctl")
}

// Chromium is the path of the Chromium that scripts/testenv.sh installs and exports as
// IMAGEBUILDER_TEST_CHROMIUM, under Require's rules; it must be an executable file.
func Chromium(t testing.TB) string {
	t.Helper()
	p := Require(t, ChromiumBin)[ChromiumBin]
	if info, err := os.Stat(p); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		unavailable(t, ChromiumBin+"="+p+" is not an executable file (scripts/testenv.sh up installs Debian's chromium)")
	}
	return p
}

// SystemdAnalyze is the path of systemd-analyze (Debian package systemd), which checks unit files
// without systemd running, under RequireProgram's rules.
func SystemdAnalyze(t testing.TB) string {
	t.Helper()
	return RequireProgram(t, "systemd-analyze", "systemd-analyze (Debian package systemd)")
}

// Schemathesis is the path of schemathesis's st, which scripts/testenv.sh installs in a
// virtualenv and exports as IMAGEBUILDER_TEST_SCHEMATHESIS_BIN, under Require's rules.
func Schemathesis(t testing.TB) string {
	t.Helper()
	p := Require(t, SchemathesisBin)[SchemathesisBin]
	if _, err := exec.LookPath(p); err != nil {
		unavailable(t, SchemathesisBin+"="+p+" is not an executable file (scripts/testenv.sh up installs it)")
	}
	return p
}
