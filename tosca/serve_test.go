package tosca_test

// Tests of imagebuilder.nodes.BuildService: the unit its playbook writes is the committed
// examples/serve/imagebuilder-serve.service, which systemd-analyze accepts; and the real opera
// deploys a real `imagebuilder serve` onto the loopback-SSH host, which answers with the admin key
// it made, and undeploys it.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
	"github.com/imagebuilder/imagebuilder/internal/tosca"
)

const (
	serveTemplate  = "serve.yaml"
	serveNodeType  = "imagebuilder.nodes.BuildService"
	unitExample    = "../examples/serve/imagebuilder-serve.service"
	unitTemplate   = "playbooks/imagebuilder-serve.service.j2"
	servePlaybook  = "playbooks/serve.yaml"
	unitDefaultCmd = "/usr/local/bin/imagebuilder-server serve --listen 127.0.0.1:8080 --database sqlite:///var/lib/imagebuilder-serve/serve.db --workers 2"
)

// unitBody is a unit file from its [Unit] section on (the comments above it differ).
func unitBody(t *testing.T, text string) string {
	t.Helper()
	i := strings.Index(text, "[Unit]\n")
	if i < 0 {
		t.Fatalf("no [Unit] section in:\n%s", text)
	}
	return text[i:]
}

// renderUnit substitutes the template's plain {{ name }} expressions, failing on anything else
// (a block, a filter, a name not in vars).
func renderUnit(t *testing.T, tmpl string, vars map[string]string) string {
	t.Helper()
	if strings.Contains(tmpl, "{%") || strings.Contains(tmpl, "{#") {
		t.Fatalf("%s uses Jinja blocks or comments; keep it to plain substitutions", unitTemplate)
	}
	var missing []string
	out := regexp.MustCompile(`\{\{(.*?)\}\}`).ReplaceAllStringFunc(tmpl, func(m string) string {
		name := strings.TrimSpace(m[2 : len(m)-2])
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		t.Fatalf("%s uses %v, which are not plain variables the test knows", unitTemplate, missing)
	}
	return out
}

// TestServeUnitMatchesTemplate: the unit the node type writes, with the node's defaults, is the
// committed example unit, and the playbook builds ExecStart the way the example writes it.
func TestServeUnitMatchesTemplate(t *testing.T) {
	example, err := os.ReadFile(unitExample)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(unitTemplate)
	if err != nil {
		t.Fatal(err)
	}
	got := renderUnit(t, unitBody(t, string(tmpl)), map[string]string{
		"service_user":  "imagebuilder",
		"env_file":      "/etc/imagebuilder/imagebuilder-serve.env",
		"state_dir":     "/var/lib/imagebuilder-serve",
		"serve_command": unitDefaultCmd,
	})
	if want := unitBody(t, string(example)); got != want {
		t.Errorf("%s rendered with the node type's defaults differs from %s:\n--- rendered\n%s\n--- example\n%s", unitTemplate, unitExample, got, want)
	}
	// The node type's defaults are the values above.
	d, err := tosca.Load(dataTypesFile, nodeTypesFile, serveTemplate)
	if err != nil {
		t.Fatal(err)
	}
	nt, ok := d.NodeTypes[serveNodeType]
	if !ok {
		t.Fatalf("node type %s is missing", serveNodeType)
	}
	for prop, want := range map[string]any{
		"service_user": "imagebuilder", "service_name": "imagebuilder-serve", "state_dir": "/var/lib/imagebuilder-serve",
		"install_path": "/usr/local/bin/imagebuilder-server", "listen": "127.0.0.1:8080", "workers": 2.0, "database": "",
	} {
		if got := nt.Properties[prop].Default; got != want {
			t.Errorf("%s.%s default = %v, want %v", serveNodeType, prop, got, want)
		}
	}
	// And the playbook writes the template it is checked against.
	play, err := os.ReadFile(servePlaybook)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(play), "src: "+filepath.Base(unitTemplate)) {
		t.Errorf("%s does not write %s", servePlaybook, unitTemplate)
	}
}

// TestServeUnitVerifies: systemd-analyze verify accepts the example unit (its ExecStart pointed at
// an executable that exists here), printing nothing: an unknown or misspelt directive, a bad
// value, a missing binary all print a line.
func TestServeUnitVerifies(t *testing.T) {
	analyze := testenv.SystemdAnalyze(t)
	example, err := os.ReadFile(unitExample)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.Replace(string(example), "ExecStart=/usr/local/bin/imagebuilder-server ", "ExecStart="+self+" ", 1)
	if unit == string(example) {
		t.Fatalf("%s: no ExecStart=/usr/local/bin/imagebuilder-server line", unitExample)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(unitExample))
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", p).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitExample, err, out)
	}
}

// TestOperaServeDeploy deploys serve.yaml from the staged CSAR root with the real opera onto the
// loopback-SSH host: a real imagebuilder serve (SQLite in its state directory) starts there, under
// start-stop-daemon where systemd is not PID 1; its URL output answers /healthz; the admin key
// written on the orchestrator host (0600) is accepted by /v1 and no key is refused; the secrets
// key is only in the 0600 environment file (not in opera's output, state or outputs, nor on the
// service's command line). Undeploy stops it and removes the environment file.
func TestOperaServeDeploy(t *testing.T) {
	ssh := testenv.Require(t, testenv.OperaBin, testenv.BuildKit,
		testenv.SSHHost, testenv.SSHPort, testenv.SSHUser, testenv.SSHKey, testenv.SSHKnownHosts)
	stage, _ := buildCSAR(t)
	bin := filepath.Join(t.TempDir(), "imagebuilder-server")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/imagebuilder-server").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The play's Python on the host: Debian's. (Ansible's interpreter discovery takes the first
	// python3 on PATH, which on a developer's machine may be a pyenv shim that runs nothing.)
	rtmp := t.TempDir()
	o := newOpera(t, slices.Concat(sshEnv(ssh), remoteTmpEnv(rtmp), []string{"ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3"})...)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	name := testenv.UniqueTag("imagebuilder-serve-test")
	// The service's files on the host: not under /tmp, which a systemd unit's PrivateTmp hides
	// from the service.
	host := filepath.Join("/var/lib/imagebuilder/serve-tests", name)
	if err := os.MkdirAll(host, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })
	secretKey := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%-32.32s", "serve-key-canary-"+name)))
	keyDest := filepath.Join(o.dir, "admin.key")
	stateDir := filepath.Join(host, "state")
	envFile := "/etc/imagebuilder/" + name + ".env"
	pidFile := "/run/" + name + ".pid"
	inputs := o.writeInputs("serve-inputs.yaml", []byte(fmt.Sprintf(`binary: %s
serve_host: %s
listen: %s
service_name: %s
service_user: root
install_path: %s
state_dir: %s
secret_key: %s
builder: %s
workers: 1
admin_key_dest: %s
`, bin, ssh[testenv.SSHHost], listen, name, filepath.Join(host, "bin", "imagebuilder-server"), stateDir, secretKey, ssh[testenv.BuildKit], keyDest)))
	// Whatever happens, the service this test started stops with it (by the pid read after the
	// deploy, in case undeploy removed the pid file and left the process).
	var servicePID int
	t.Cleanup(func() {
		if servicePID > 0 {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", servicePID)); strings.HasPrefix(exe, host) {
				_ = syscall.Kill(servicePID, syscall.SIGKILL)
			}
		}
		_ = exec.Command("start-stop-daemon", "--stop", "--quiet", "--oknodo", "--pidfile", pidFile, "--remove-pidfile", "--retry", "TERM/20/KILL/5").Run()
		_ = exec.Command("systemctl", "disable", "--now", name+".service").Run()
		_ = os.Remove("/etc/systemd/system/" + name + ".service")
		_ = os.Remove(envFile)
	})

	wantManager := "start-stop-daemon"
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		wantManager = "systemd"
	}
	// The example inputs are the template's (opera checks their names).
	example, err := filepath.Abs("examples/serve/inputs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o.must("validate", "-i", example, filepath.Join(stage, serveTemplate))
	start := time.Now()
	deployOut := o.must("deploy", "-i", inputs, filepath.Join(stage, serveTemplate))
	t.Logf("opera deploy (serve over SSH): %s", time.Since(start).Round(time.Millisecond))
	var cmdline []byte
	if wantManager == "start-stop-daemon" {
		pid, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		servicePID, _ = strconv.Atoi(strings.TrimSpace(string(pid)))
		if cmdline, err = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", servicePID)); err != nil {
			t.Fatalf("the service (pid %d) does not run: %v", servicePID, err)
		}
	}
	var outs struct {
		URL     struct{ Value string } `json:"url"`
		KeyFile struct{ Value string } `json:"admin_key_file"`
		Manager struct{ Value string } `json:"manager"`
	}
	outsText := o.must("outputs", "-f", "json")
	if err := json.Unmarshal([]byte(outsText), &outs); err != nil {
		t.Fatalf("opera outputs: %v\n%s", err, outsText)
	}
	if outs.URL.Value != "http://"+listen+"/" || outs.Manager.Value != wantManager || outs.KeyFile.Value != filepath.Join(stateDir, "admin.key") {
		t.Errorf("outputs: url %q manager %q admin_key_file %q; want http://%s/, %s, %s/admin.key",
			outs.URL.Value, outs.Manager.Value, outs.KeyFile.Value, listen, wantManager, stateDir)
	}
	if entries, _ := os.ReadDir(rtmp); !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == "sshd-port-"+ssh[testenv.SSHPort] }) {
		t.Errorf("no task ran in an sshd session on port %s (Ansible's temporary directories: %v)", ssh[testenv.SSHPort], entries)
	}

	// The service answers, with the admin key and only with it.
	for _, f := range []string{keyDest, outs.KeyFile.Value, envFile} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, fi)
		}
	}
	keyBytes, err := os.ReadFile(keyDest)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(keyBytes))
	status := func(path, key string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, outs.URL.Value+path, nil)
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, key string
		want      int
	}{{"healthz", "", 200}, {"v1/invocations", key, 200}, {"v1/invocations", "", 401}, {"v1/invocations", key + "x", 401}} {
		if got := status(c.path, c.key); got != c.want {
			t.Errorf("GET %s (key %t): %d, want %d", c.path, c.key != "", got, c.want)
		}
	}

	// The secrets key and the admin key stay out of opera's output, state and outputs, and the
	// secrets key off the service's command line.
	for what, secret := range map[string]string{"the secrets key": secretKey, "the admin key": key} {
		noSecret(t, "opera deploy's output", deployOut, secret)
		noSecret(t, "opera outputs", outsText, secret)
		if found := filesWith(t, filepath.Join(o.dir, ".opera", "instances"), secret); len(found) > 0 {
			t.Errorf("%s is stored in .opera/instances: %v", what, found)
		}
	}
	if wantManager == "start-stop-daemon" {
		if strings.Contains(string(cmdline), secretKey) || !strings.Contains(string(cmdline), "serve\x00--listen\x00"+listen) {
			t.Errorf("the service's command line: %q", cmdline)
		}
	}

	// Undeploy stops it and removes the environment file; the database stays.
	start = time.Now()
	out := o.must("undeploy")
	t.Logf("opera undeploy: %s", time.Since(start).Round(time.Millisecond))
	noSecret(t, "opera undeploy's output", out, secretKey)
	if got := status("healthz", ""); got != 0 {
		t.Errorf("after undeploy GET /healthz answers %d", got)
	}
	for _, gone := range []string{envFile, pidFile} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s is still there after undeploy (%v)", gone, err)
		}
	}
	if _, err := os.Stat(filepath.Join(stateDir, "serve.db")); err != nil {
		t.Errorf("the database is gone after undeploy: %v", err)
	}
}
