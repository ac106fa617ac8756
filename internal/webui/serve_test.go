package webui

// The page in headless Chromium against a real `imagebuilder serve` (the built binary, SQLite,
// one worker) that builds for real with the test environment's BuildKit and pushes to its
// registry.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// imagebuilder builds imagebuilder-server (what imagebuilder serve runs) once per test process.
func imagebuilder(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "imagebuilder-webui-bin"); binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "imagebuilder-server"), "../../cmd/imagebuilder-server").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "imagebuilder-server")
}

// serve starts `imagebuilder serve ARGS` and returns its URL from the line it prints once it
// accepts connections; the test's end stops it with SIGTERM.
func serve(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("imagebuilder serve: %v\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("imagebuilder serve did not stop in 30 s after SIGTERM\n%s", stderr.String())
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			ready <- sc.Text()
		}
		close(ready)
	}()
	select {
	case line, ok := <-ready:
		var r struct {
			URL string `json:"url"`
		}
		if !ok || json.Unmarshal([]byte(line), &r) != nil || r.URL == "" {
			t.Fatalf("imagebuilder serve printed %q, not its ready line\n%s", line, stderr.String())
		}
		return r.URL
	case <-time.After(60 * time.Second):
		t.Fatalf("imagebuilder serve not ready in 60 s\n%s", stderr.String())
	}
	return ""
}

// TestPageWithServe: a real build submitted from a file through the page, its live log and its
// digest (the registry's) on its page, the build in the history, a bad file refused with the
// pointer; no password of the params anywhere on the page.
func TestPageWithServe(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base, testenv.BuildKit)
	ctx := browser(t)
	bin := imagebuilder(t)
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "serve.db")
	out, err := exec.Command(bin, "serve", "apikey", "create", "web", "--admin", "--database", db).Output()
	if err != nil {
		t.Fatalf("serve apikey create: %v", err)
	}
	key := strings.TrimSpace(string(out))
	url := serve(t, bin, "--listen", "127.0.0.1:0", "--database", db, "--workers", "1", "--builder", env[testenv.BuildKit])

	// A Dockerfile behind basic auth: its password is the canary.
	const password = "web-canary-Zq81xT"
	marker := testenv.UniqueTag("webui")
	df := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, p, ok := r.BasicAuth(); !ok || p != password {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "FROM %s\nRUN echo built-for-%s > /marker\n", env[testenv.Base], marker)
	}))
	t.Cleanup(df.Close)
	repo, tag := "webui/e2e", marker
	ref := env[testenv.Registry] + "/" + repo + ":" + tag
	good := filepath.Join(dir, "params.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	files := map[string]string{
		good: fmt.Sprintf("source:\n  dockerfile:\n    url: %s/Dockerfile\n    username: web\n    password: %s\ntarget:\n  images:\n    - image: %s\n      tag: %s\n  registry:\n    url: %s\n",
			df.URL, password, repo, tag, env[testenv.Registry]),
		bad: fmt.Sprintf("source:\n  dockerfile:\n    url: %s/Dockerfile\ntarget:\n  images:\n    - image: %s\n      tag: %s\n      platfroms: [linux/amd64]\n  registry:\n    url: %s\n",
			df.URL, repo, tag, env[testenv.Registry]),
	}
	for p, s := range files {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	do(t, ctx, "opening the page with the key",
		chromedp.Navigate(url+"/"),
		chromedp.SendKeys(chromedp.ID("api-key"), key),
		chromedp.Click(chromedp.CSS(`#key-form button[type=submit]`)),
		chromedp.Click(chromedp.ID("nav-submit")),
		chromedp.WaitVisible(chromedp.ID("submit-file")))

	// A bad file: refused before anything is queued, with the field's pointer.
	do(t, ctx, "submitting the bad file",
		chromedp.SetUploadFiles(chromedp.ID("submit-file"), []string{bad}),
		chromedp.Click(chromedp.ID("submit-button")))
	waitFor(t, ctx, "the refusal's pointer", `[...document.querySelectorAll('#submit-errors-list code.pointer')].some(c => c.textContent.includes('/target/images/0'))`)
	refusal := js[string](t, ctx, `document.getElementById('submit-errors').innerText`)
	if !strings.Contains(refusal, "platfroms") {
		t.Errorf("the refusal does not name the misspelt key:\n%s", refusal)
	}

	// The good file: the build's page, its live log, the end, the digest.
	do(t, ctx, "submitting the params file",
		chromedp.SetUploadFiles(chromedp.ID("submit-file"), []string{good}),
		chromedp.Click(chromedp.ID("submit-button")))
	waitFor(t, ctx, "the build's page", `location.hash.startsWith('#/invocations/')`)
	id := strings.TrimPrefix(js[string](t, ctx, `decodeURIComponent(location.hash)`), "#/invocations/")
	waitFor(t, ctx, "the RUN step in the live log", `document.getElementById('log').textContent.includes('built-for-`+marker+`')`)
	waitFor(t, ctx, "the end of the build", `document.getElementById('log-state').textContent.includes('ended')`)
	waitFor(t, ctx, "the digest on the build's page", `!!document.querySelector('#build-image-rows code.digest')`)
	state := js[string](t, ctx, `document.querySelector('#build-facts .state').textContent`)
	if state != "success" {
		errText := js[string](t, ctx, `document.getElementById('build-error').textContent`)
		t.Fatalf("the build's state reads %q: %s\nlog:\n%s", state, errText, js[string](t, ctx, `document.getElementById('log').textContent`))
	}
	digest := js[string](t, ctx, `document.querySelector('#build-image-rows code.digest').dataset.digest`)
	if want := testenv.RegistryDigest(t, ref, nil); digest != want {
		t.Errorf("the page shows digest %q for %s, the registry serves %q", digest, ref, want)
	}
	imageRow := js[string](t, ctx, `document.querySelector('#build-image-rows tr').innerText`)
	if !strings.Contains(imageRow, ref) || !strings.Contains(imageRow, digest) {
		t.Errorf("the image row reads %q, want %s and %s", imageRow, ref, digest)
	}

	// The history lists it, with its state and digest.
	do(t, ctx, "opening the history", chromedp.Click(chromedp.ID("nav-history")))
	waitFor(t, ctx, "the build in the history", `!!document.querySelector('#history-rows tr[data-id="`+id+`"] code.digest')`)
	row := js[string](t, ctx, `document.querySelector('#history-rows tr[data-id="`+id+`"]').innerText`)
	if !strings.Contains(row, "success") || !strings.Contains(row, ref) || !strings.Contains(row, digest[:19]) {
		t.Errorf("the history row reads:\n%s", row)
	}
	rows := js[int](t, ctx, `document.querySelectorAll('#history-rows tr').length`)
	if rows != 1 {
		t.Errorf("the history lists %d builds, want 1 (the bad file queued nothing)", rows)
	}

	// No password anywhere the page went: the build's params and result as shown, the history.
	do(t, ctx, "reopening the build", chromedp.Navigate(url+"/#/invocations/"+id))
	waitFor(t, ctx, "the build's params", `document.getElementById('build-params').textContent.includes('dockerfile')`)
	page := js[string](t, ctx, `document.documentElement.textContent`)
	if strings.Contains(page, password) {
		t.Errorf("the build's page shows the Dockerfile URL's password")
	}
	if !bytes.Contains([]byte(page), []byte(marker)) {
		t.Errorf("the reopened build's page lost its log:\n%s", page)
	}
}
