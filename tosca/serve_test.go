package tosca_test

// Tests of imagebuilder.nodes.BuildService: the unit its playbook writes is the committed
// examples/serve/imagebuilder-serve.service, which systemd-analyze accepts; and the real opera
// deploys a real `imagebuilder serve` onto the loopback-SSH host, which answers with the admin key
// it made, and undeploys it.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
	"github.com/imagebuilder/imagebuilder/internal/tosca"
)

const (
	serveTemplate  = "serve.yaml"
	serveNodeType  = "imagebuilder.nodes.BuildService"
	unitExample    = "../examples/serve/imagebuilder-serve.service"
	unitTemplate   = "playbooks/imagebuilder-serve.service.j2"
	servePlaybook  = "playbooks/serve.yaml"
	unitDefaultCmd = "/usr/local/bin/imagebuilder serve --listen 127.0.0.1:8080 --database sqlite:///var/lib/imagebuilder-serve/serve.db --workers 2"
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
		"install_path": "/usr/local/bin/imagebuilder", "listen": "127.0.0.1:8080", "workers": 2.0, "database": "",
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
	unit := strings.Replace(string(example), "ExecStart=/usr/local/bin/imagebuilder ", "ExecStart="+self+" ", 1)
	if unit == string(example) {
		t.Fatalf("%s: no ExecStart=/usr/local/bin/imagebuilder line", unitExample)
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
