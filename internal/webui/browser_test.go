package webui

// The page in a real headless Chromium (Debian's chromium, from scripts/testenv.sh), driven by
// chromedp: here against a small fake of the /v1 API (what the page sends and how it shows
// every answer), and in serve_test.go against a real `imagebuilder serve`.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/imagebuilder/imagebuilder/internal/service"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// browser starts a headless Chromium for the test and returns its tab's context; exceptions
// thrown by the page's script fail the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	chromium := testenv.Chromium(t)
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // root in a container: Chromium's sandbox needs user namespaces
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser and opens the tab
		t.Fatalf("starting %s: %v", chromium, err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			t.Errorf("the page threw at %s:%d: %s", d.URL, d.LineNumber+1, msg)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// do runs chromedp actions and fails the test with what names the step.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitFor waits until the JavaScript expression is true in the page.
func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := chromedp.Run(wctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("waiting until %s (%s): %v\nthe page shows:\n%s", what, expr, err, page)
	}
}

// js evaluates expr in the page and returns its value.
func js[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// --------------------------------------------------------------------------- the fake API

const fakeKey = "fake-key-0123456789"

// fakeAPI is the part of /v1 the page uses, with an API key, filters, an SSE log that waits
// for the test to end the running build, and a schema check that refuses a misspelt key.
type fakeAPI struct {
	mu        sync.Mutex
	invs      []*service.Invocation // newest first
	logs      map[string][]string
	release   chan struct{} // closed: the running build ends (success)
	finish    func(*service.Invocation)
	requests  []string // "METHOD PATH key=… accept=…"
	submitted []map[string]any
}

func (f *fakeAPI) find(id string) *service.Invocation {
	for _, inv := range f.invs {
		if inv.ID == id {
			return inv
		}
	}
	return nil
}

func problem(w http.ResponseWriter, status int, detail string, errs ...map[string]string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	body := map[string]any{"title": http.StatusText(status), "status": status, "detail": detail}
	if len(errs) > 0 {
		body["errors"] = errs
	}
	_ = json.NewEncoder(w).Encode(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, fmt.Sprintf("%s %s key=%s accept=%s", r.Method, r.URL.Path, r.Header.Get("X-API-Key"), r.Header.Get("Accept")))
	f.mu.Unlock()
	if r.Header.Get("X-API-Key") != fakeKey {
		problem(w, http.StatusUnauthorized, "a valid X-API-Key or bearer token is required")
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v1/invocations")
	switch {
	case rest == "" && r.Method == http.MethodGet:
		f.list(w, r)
	case rest == "" && r.Method == http.MethodPost:
		f.submit(w, r)
	case strings.HasSuffix(rest, "/logs") && r.Method == http.MethodGet:
		f.stream(w, r, strings.TrimSuffix(strings.TrimPrefix(rest, "/"), "/logs"))
	case r.Method == http.MethodGet:
		f.mu.Lock()
		inv := f.find(strings.TrimPrefix(rest, "/"))
		var cp service.Invocation
		if inv != nil {
			cp = *inv
		}
		f.mu.Unlock()
		if inv == nil {
			problem(w, http.StatusNotFound, "invocation not found")
			return
		}
		writeJSON(w, http.StatusOK, cp)
	default:
		problem(w, http.StatusNotFound, "no such path")
	}
}

func (f *fakeAPI) list(w http.ResponseWriter, r *http.Request) {
	var states []string
	if s := r.URL.Query().Get("state"); s != "" {
		states = strings.Split(s, ",")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	page := service.Page{Items: []service.Invocation{}}
	for _, inv := range f.invs {
		if len(states) == 0 || slices.Contains(states, string(inv.State)) {
			page.Items = append(page.Items, *inv)
		}
	}
	writeJSON(w, http.StatusOK, page)
}

func (f *fakeAPI) submit(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		problem(w, http.StatusBadRequest, "decoding the body: "+err.Error())
		return
	}
	f.mu.Lock()
	f.submitted = append(f.submitted, body)
	f.mu.Unlock()
	doc, _ := body["document"].(string)
	if strings.Contains(doc, "platfroms") {
		problem(w, http.StatusUnprocessableEntity, "validation failed", map[string]string{
			"location": "/target/images/0",
			"message":  `unknown property "platfroms" (did you mean "platforms"?)`,
		})
		return
	}
	inv := &service.Invocation{ID: "33333333-3333-4333-8333-333333333333", Kind: service.KindBuild, Owner: "web",
		State: service.Pending, Submitted: time.Now(), Images: []string{"127.0.0.1:5000/web/new:1"},
		Document: json.RawMessage(`{}`)}
	f.mu.Lock()
	f.invs = append([]*service.Invocation{inv}, f.invs...)
	f.mu.Unlock()
	writeJSON(w, http.StatusAccepted, inv)
}

// stream sends the stored lines after Last-Event-ID as `log` events; for a running build it
// then waits for release, sends the rest and `end`.
func (f *fakeAPI) stream(w http.ResponseWriter, r *http.Request, id string) {
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		problem(w, http.StatusNotAcceptable, "the fake serves only the event stream")
		return
	}
	after, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
	f.mu.Lock()
	inv := f.find(id)
	f.mu.Unlock()
	if inv == nil {
		problem(w, http.StatusNotFound, "invocation not found")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher := w.(http.Flusher)
	send := func() bool {
		f.mu.Lock()
		lines := f.logs[id]
		state := inv.State
		f.mu.Unlock()
		for ; after < len(lines); after++ {
			fmt.Fprintf(w, "id: %d\nevent: log\ndata: %s\n\n", after+1, lines[after])
		}
		flusher.Flush()
		if state.Ended() {
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", state)
			flusher.Flush()
			return true
		}
		return false
	}
	if send() {
		return
	}
	fmt.Fprint(w, ": waiting\n\n")
	flusher.Flush()
	select {
	case <-f.release:
		f.mu.Lock()
		f.finish(inv)
		f.mu.Unlock()
		send()
	case <-r.Context().Done():
	}
}

func ts(s string) *time.Time {
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &v
}

const (
	doneID    = "11111111-1111-4111-8111-111111111111"
	runningID = "22222222-2222-4222-8222-222222222222"
	doneRef   = "127.0.0.1:5000/web/app:1.0"
	runRef    = "127.0.0.1:5000/web/tool:2"
	digestA   = "sha256:aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	digestB   = "sha256:bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222"
	// hostile is an image name as a caller could submit it: shown as text, never as markup.
	hostile = `<img src=x id=injected onerror="document.title='pwned'">`
)

func newFake() *fakeAPI {
	f := &fakeAPI{release: make(chan struct{}), logs: map[string][]string{
		doneID:    {"#1 resolving source", "#2 pushed " + doneRef},
		runningID: {"#1 [internal] load build definition", "#2 RUN make"},
	}}
	f.invs = []*service.Invocation{
		{ID: runningID, Kind: service.KindBuild, Owner: "web", State: service.InProgress,
			Submitted: *ts("2026-01-02T10:00:00Z"), Started: ts("2026-01-02T10:00:01Z"),
			Images: []string{runRef, hostile}, Document: json.RawMessage(`{"target":{"registry":{"password":"***"}}}`)},
		{ID: doneID, Kind: service.KindBuild, Owner: "web", State: service.Success,
			Submitted: *ts("2026-01-01T10:00:00Z"), Started: ts("2026-01-01T10:00:02Z"), Ended: ts("2026-01-01T10:01:07Z"),
			Images: []string{doneRef}, Document: json.RawMessage(`{}`),
			Result: json.RawMessage(`{"changed":true,"images":[{"ref":"` + doneRef + `","digest":"` + digestA + `","platforms":["linux/amd64"],"changed":true}]}`)},
	}
	f.finish = func(inv *service.Invocation) {
		inv.State = service.Success
		inv.Ended = ts("2026-01-02T10:00:31Z")
		inv.Result = json.RawMessage(`{"changed":true,"images":[{"ref":"` + runRef + `","digest":"` + digestB + `","platforms":["linux/amd64","linux/arm64"],"changed":true}]}`)
		f.logs[runningID] = append(f.logs[runningID], "#3 pushed "+runRef, "done <b>bold?</b>")
	}
	return f
}

// TestPageWithFakeAPI drives the page through its three views against the fake API: the key
// prompt, the history with its state filter, a running build whose live log and digests arrive
// over SSE, and a submission refused with a pointer, then accepted.
func TestPageWithFakeAPI(t *testing.T) {
	ctx := browser(t)
	fake := newFake()
	mux := http.NewServeMux()
	mux.Handle("/v1/", fake)
	mux.Handle("/", Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// No key: the history says why it is empty.
	do(t, ctx, "opening the page", chromedp.Navigate(srv.URL+"/"))
	waitFor(t, ctx, "the page asks for a key", `document.getElementById('status').textContent.includes('enter an API key')`)

	// The key, kept in sessionStorage, goes in X-API-Key.
	do(t, ctx, "entering the key",
		chromedp.SendKeys(chromedp.ID("api-key"), fakeKey),
		chromedp.Click(chromedp.CSS(`#key-form button[type=submit]`)))
	waitFor(t, ctx, "both builds are listed", `document.querySelectorAll('#history-rows tr').length === 2`)
	var stored string
	stored = js[string](t, ctx, `sessionStorage.getItem('imagebuilder.apiKey')`)
	if stored != fakeKey {
		t.Errorf("sessionStorage holds %q", stored)
	}
	var keyField string
	keyField = js[string](t, ctx, `document.getElementById('api-key').value`)
	if keyField != "" {
		t.Errorf("the key stays in its field: %q", keyField)
	}

	var rows []string
	rows = js[[]string](t, ctx, `[...document.querySelectorAll('#history-rows tr')].map(r => r.innerText)`)
	if len(rows) != 2 || !strings.Contains(rows[0], "in progress") || !strings.Contains(rows[0], runRef) ||
		!strings.Contains(rows[1], "success") || !strings.Contains(rows[1], doneRef) ||
		!strings.Contains(rows[1], digestA[:19]) || !strings.Contains(rows[1], "1 min 5 s") {
		t.Errorf("history rows:\n%s", strings.Join(rows, "\n---\n"))
	}
	// The hostile image name is text: no element was made of it, its handler never ran.
	var injected bool
	injected = js[bool](t, ctx, `!!document.getElementById('injected') || document.title === 'pwned'`)
	if injected || !strings.Contains(rows[0], hostile) {
		t.Errorf("an API string became markup (injected %v); row: %s", injected, rows[0])
	}
	var digestAttr string
	digestAttr = js[string](t, ctx, `document.querySelector('#history-rows code.digest').dataset.digest`)
	if digestAttr != digestA {
		t.Errorf("history digest %q, want %s", digestAttr, digestA)
	}

	// Filter by state.
	do(t, ctx, "filtering on success", chromedp.Click(chromedp.CSS(`#filter-form input[value=success]`)))
	waitFor(t, ctx, "only the successful build is listed",
		`document.querySelectorAll('#history-rows tr').length === 1 && document.querySelector('#history-rows tr').dataset.id === '`+doneID+`'`)
	fake.mu.Lock()
	filtered := slices.ContainsFunc(fake.requests, func(s string) bool { return strings.Contains(s, "GET /v1/invocations key=") })
	fake.mu.Unlock()
	if !filtered {
		t.Errorf("no list request with the key: %v", fake.requests)
	}
	do(t, ctx, "clearing the filter", chromedp.Click(chromedp.CSS(`#filter-form input[value=success]`)))
	waitFor(t, ctx, "both builds are listed again", `document.querySelectorAll('#history-rows tr').length === 2`)

	// The running build: its facts, its log so far, then the rest live, the end and the digests.
	do(t, ctx, "opening the running build", chromedp.Click(chromedp.CSS(`#history-rows tr[data-id="`+runningID+`"] a`)))
	waitFor(t, ctx, "the running build's log so far", `document.getElementById('log').textContent.includes('#2 RUN make')`)
	var facts string
	facts = js[string](t, ctx, `document.getElementById('build-facts').innerText`)
	if !strings.Contains(facts, runningID) || !strings.Contains(facts, "in progress") {
		t.Errorf("facts of the running build:\n%s", facts)
	}
	var focused string
	focused = js[string](t, ctx, `document.activeElement.id`)
	if focused != "build-title" {
		t.Errorf("after opening a build the focus is on %q, want its heading", focused)
	}
	close(fake.release)
	waitFor(t, ctx, "the log's end", `document.getElementById('log-state').textContent.includes('ended: success')`)
	waitFor(t, ctx, "the digests after the end", `!!document.querySelector('#build-image-rows code.digest[data-digest="`+digestB+`"]')`)
	var log string
	log = js[string](t, ctx, `document.getElementById('log').textContent`)
	want := "#1 [internal] load build definition\n#2 RUN make\n#3 pushed " + runRef + "\ndone <b>bold?</b>\n"
	if log != want {
		t.Errorf("log:\n%q\nwant\n%q", log, want)
	}
	var bolds int
	bolds = js[int](t, ctx, `document.querySelectorAll('#log b').length`)
	if bolds != 0 {
		t.Errorf("a log line became markup")
	}
	fake.mu.Lock()
	sse := slices.ContainsFunc(fake.requests, func(s string) bool {
		return strings.HasPrefix(s, "GET /v1/invocations/"+runningID+"/logs key="+fakeKey+" accept=text/event-stream")
	})
	fake.mu.Unlock()
	if !sse {
		t.Errorf("no log request with the key and Accept: text/event-stream: %v", fake.requests)
	}

	// Submit: a misspelt key is refused with its pointer; a good file becomes a build.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	good := filepath.Join(dir, "good.yaml")
	badText := "target:\n  images:\n    - image: web/new\n      platfroms: [linux/amd64]\n"
	goodText := "target:\n  images:\n    - image: web/new\n      tag: \"1\"\n"
	for p, s := range map[string]string{bad: badText, good: goodText} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	do(t, ctx, "opening the submit form", chromedp.Click(chromedp.ID(`nav-submit`)),
		chromedp.WaitVisible(chromedp.ID(`submit-file`)),
		chromedp.SetUploadFiles(chromedp.ID(`submit-file`), []string{bad}),
		chromedp.Click(chromedp.ID(`submit-button`)))
	waitFor(t, ctx, "the refusal's pointer", `document.getElementById('submit-errors-list').innerText.includes('/target/images/0: unknown property "platfroms"')`)
	focused = js[string](t, ctx, `document.activeElement.id`)
	if focused != "submit-errors" {
		t.Errorf("after a refusal the focus is on %q, want the errors", focused)
	}
	do(t, ctx, "submitting the good file",
		chromedp.SetUploadFiles(chromedp.ID(`submit-file`), []string{good}),
		chromedp.Click(chromedp.ID(`submit-button`)))
	waitFor(t, ctx, "the new build's page", `location.hash === '#/invocations/33333333-3333-4333-8333-333333333333'`)
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.submitted) != 2 {
		t.Fatalf("submissions: %v", fake.submitted)
	}
	for i, text := range []string{badText, goodText} {
		if got := fake.submitted[i]; got["kind"] != "build" || got["document"] != text {
			t.Errorf("submission %d: %v, want kind build and the file's text", i, got)
		}
	}
}
