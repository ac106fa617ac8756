package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestServeSODALITEClient is issue 14's first acceptance line, end to end: SODALITE's client
// (examples/serve/client.py, the README's copy) builds the demo params through a real
// `imagebuilder serve` on PostgreSQL and BuildKit — its git source behind a password, its
// registry the htpasswd one — and prints each image with the digest the registry serves; bad
// params exit with their JSON pointer; an unknown id is a 404 string; another key sees nothing.
// Neither password is in any response, the server's log, the metrics or the database (pg_dump).
func TestServeSODALITEClient(t *testing.T) {
	serverOnPath(t)
	env := testenv.Require(t, testenv.AuthRegistry, testenv.AuthUser, testenv.AuthPassword, testenv.BuildKit)
	python := filepath.Join(filepath.Dir(testenv.Schemathesis(t)), "python") // its venv has requests
	pgDump := testenv.RequireProgram(t, "pg_dump", "the database dump of the secrets check")
	db := testenv.PostgresDatabase(t)
	secretKey := make([]byte, 32)
	rand.Read(secretKey) //nolint:errcheck // never fails
	t.Setenv("IMAGEBUILDER_SECRET_KEY", base64.StdEncoding.EncodeToString(secretKey))
	regPass := env[testenv.AuthPassword]

	// The demo: examples/demo/app in a git repository behind a password, the demo params.
	gitPass := canary(t, "gitpass")
	files := map[string]string{}
	for _, name := range []string{"Dockerfile", "hello.txt"} {
		data, err := os.ReadFile(filepath.Join("../../examples/demo/app", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(data)
	}
	git, repoURL := testenv.ServeRepo(t, files, "demo", gitPass)
	demo, err := os.ReadFile("../../examples/demo/params.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var params map[string]any
	if err := yaml.Unmarshal([]byte(strings.Replace(string(demo), "REPO_URL", repoURL, 1)), &params); err != nil {
		t.Fatal(err)
	}
	src := params["source"].(map[string]any)["git_repo"].(map[string]any)
	src["username"], src["password"] = "demo", gitPass
	target := params["target"].(map[string]any)
	target["registry"] = map[string]any{"url": env[testenv.AuthRegistry], "username": env[testenv.AuthUser], "password": regPass}
	tag := testenv.UniqueTag("sodalite")
	for _, img := range target["images"].([]any) {
		img.(map[string]any)["tag"] = tag + "-" + img.(map[string]any)["tag"].(string)
	}
	dir := t.TempDir()
	write := func(name string, v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("params.json", params)

	code, key, stderr := ib(t, "", "serve", "apikey", "create", "sodalite", "--database", db)
	key = strings.TrimSpace(key)
	if code != 0 {
		t.Fatalf("apikey create: exit %d: %s", code, stderr)
	}
	_, other, _ := ib(t, "", "serve", "apikey", "create", "someone-else", "--database", db)
	other = strings.TrimSpace(other)
	line, serverLog := startDaemon(t, "serve", "--listen", "127.0.0.1:0", "--database", db, "--builder", env[testenv.BuildKit], "--workers", "2")
	var srv serveReady
	if err := json.Unmarshal([]byte(line), &srv); err != nil || srv.URL == "" {
		t.Fatalf("ready line %q: %v", line, err)
	}

	client := func(paramsFile string) (int, string, string) {
		cmd := exec.Command(python, "../../examples/serve/client.py", paramsFile)
		cmd.Env = append(os.Environ(), "IMAGEBUILDER_URL="+srv.URL, "IMAGEBUILDER_API_KEY="+key)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}
	code, out, errOut := client(good)
	if code != 0 {
		t.Fatalf("client.py: exit %d\n%s\n%s\nserver:\n%s", code, out, errOut, serverLog)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("client.py printed %q, want the two demo images", out)
	}
	for _, l := range lines {
		ref, digest, _ := strings.Cut(l, " ")
		if !strings.Contains(ref, tag) || digest == "" || testenv.RegistryDigest(t, ref, testenv.Basic(env[testenv.AuthUser], regPass)) != digest {
			t.Errorf("client.py: %q is not what the registry serves", l)
		}
	}
	if len(git.Passwords()) == 0 {
		t.Error("the git server was never sent the password: the source did not need it")
	}

	// Bad params: the client exits with SODALITE's 400 string, which names the field.
	bad := params
	bad["target"].(map[string]any)["images"].([]any)[0].(map[string]any)["platfroms"] = []string{"linux/amd64"}
	code, out, errOut = client(write("bad.json", bad))
	if code != 1 || !strings.Contains(errOut, "/target/images/0") || !strings.Contains(errOut, "platfroms") {
		t.Errorf("bad params: exit %d, stdout %q, stderr %q; want exit 1 naming /target/images/0's platfroms", code, out, errOut)
	}

	// The invocation, as the API keeps it; an unknown id and another caller get 404 strings.
	status, list := get(t, srv.URL+"/v1/invocations", key)
	var page struct {
		Items []struct {
			ID    string `json:"invocation_id"`
			State string `json:"state"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(list), &page); status != 200 || err != nil || len(page.Items) != 1 || page.Items[0].State != "success" {
		t.Fatalf("list: %d %s", status, list)
	}
	id := page.Items[0].ID
	responses := []string{out, errOut, list}
	for _, url := range []string{"/status/" + id, "/v1/invocations/" + id, "/v1/invocations/" + id + "/logs"} {
		status, body := get(t, srv.URL+url, key)
		if status != 200 {
			t.Errorf("GET %s: %d %s", url, status, body)
		}
		responses = append(responses, body)
	}
	for _, url := range []string{"/status/" + id, "/status/00000000-0000-4000-8000-000000000000"} {
		k := other
		if !strings.Contains(url, id) {
			k = key
		}
		if status, body := get(t, srv.URL+url, k); status != 404 || !strings.HasPrefix(body, `"`) {
			t.Errorf("GET %s: %d %s, want 404 with a JSON string", url, status, body)
		}
	}
	_, metrics := get(t, srv.URL+"/metrics", "")
	if !strings.Contains(metrics, `imagebuilder_invocations{state="success"} 1`) {
		t.Errorf("metrics do not count the success:\n%s", metrics)
	}
	dump, err := exec.Command(pgDump, "--dbname="+db, "--data-only").CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, dump)
	}
	if !strings.Contains(string(dump), id) {
		t.Fatal("the dump does not hold the invocation: it checks nothing")
	}
	texts := append(responses, metrics, serverLog.String(), string(dump))
	noCanary(t, "responses, server log, metrics and database", []string{gitPass}, texts...)
	for _, text := range texts {
		if strings.Contains(text, regPass) {
			t.Errorf("the registry password is in:\n%s", excerpt(text, regPass))
		}
	}
}

// TestREADMEQuotesTheClient: the README's SODALITE client is examples/serve/client.py (after
// the file's docstring), so the client the acceptance test runs is the one users copy.
func TestREADMEQuotesTheClient(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile("../../examples/serve/client.py")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)[strings.Index(string(readme), "### A SODALITE client"):]
	start := strings.Index(section, "```python\n") + len("```python\n")
	quoted := section[start : start+strings.Index(section[start:], "```\n")]
	_, code, ok := strings.Cut(string(file), `."""`+"\n")
	if !ok || quoted != code {
		t.Errorf("the README's client differs from examples/serve/client.py:\n--- README\n%s\n--- file\n%s", quoted, code)
	}
}
