package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/auth"
	"github.com/imagebuilder/imagebuilder/internal/service"
	"github.com/imagebuilder/imagebuilder/schema"
)

// Build params the validator accepts, with a canary password that no response may show.
const (
	canary      = "canary-pw-4711"
	validParams = `{"source":{"dockerfile":{"url":"https://example.com/Dockerfile"}},` +
		`"target":{"registry":{"url":"127.0.0.1:5000","username":"u","password":"` + canary + `"},"images":[{"image":"demo","tag":"v1"}]}}`
	// Two problems: an uppercase repository and a password without a user name.
	invalidParams = `{"source":{"dockerfile":{"url":"https://example.com/Dockerfile"}},` +
		`"target":{"registry":{"url":"127.0.0.1:5000","password":"` + canary + `"},"images":[{"image":"Demo","tag":"v1"}]}}`
)

func newTestServer(t *testing.T, b Backend, cfg Config) string {
	t.Helper()
	if cfg.LogPollInterval == 0 {
		cfg.LogPollInterval = 10 * time.Millisecond
	}
	s, err := New(context.Background(), b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// call sends a request with the API key (if any) and extra headers (name, value pairs).
func call(t *testing.T, method, url, key, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(canary)) {
		t.Errorf("%s %s: the response shows the canary password: %s", method, url, data)
	}
	return response{resp.StatusCode, resp.Header, data}
}

func (r response) want(t *testing.T, status int, contentType string) {
	t.Helper()
	if r.status != status || !strings.HasPrefix(r.header.Get("Content-Type"), contentType) {
		t.Fatalf("got %d %s %s; want %d %s", r.status, r.header.Get("Content-Type"), r.body, status, contentType)
	}
}

// jsonString decodes a SODALITE error body, a JSON string.
func (r response) jsonString(t *testing.T) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("body is not a JSON string: %s", r.body)
	}
	return s
}

// problemBody is an RFC 9457 body as huma writes it.
type problemBody struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Location string `json:"location"`
		Message  string `json:"message"`
		Value    any    `json:"value"`
	} `json:"errors"`
}

func (r response) problem(t *testing.T) problemBody {
	t.Helper()
	var p problemBody
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("not a problem body: %s", r.body)
	}
	for _, e := range p.Errors {
		if e.Value != nil {
			t.Errorf("an error echoes a value: %s", r.body)
		}
	}
	return p
}

func (p problemBody) locations() []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Location)
	}
	sort.Strings(out)
	return out
}

// TestSODALITE drives SODALITE's two operations as its client.py does and checks their exact
// shapes: 202 {invocation_id}, 400/401/404 JSON strings, the status object.
func TestSODALITE(t *testing.T) {
	fake := newFake()
	url := newTestServer(t, fake, Config{})

	r := call(t, "POST", url+"/build/", "key-alice", validParams)
	r.want(t, http.StatusAccepted, "application/json")
	var started map[string]any
	if err := json.Unmarshal(r.body, &started); err != nil || len(started) != 1 || started["invocation_id"] == "" {
		t.Fatalf("202 body %s: want exactly {invocation_id}", r.body)
	}
	id := started["invocation_id"].(string)
	if fake.submitted[0].Name != "alice" {
		t.Errorf("submitted as %+v, want alice", fake.submitted[0])
	}

	r = call(t, "GET", url+"/status/"+id, "key-alice", "")
	r.want(t, http.StatusOK, "application/json")
	var st map[string]any
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range st {
			if !yield(k) {
				return
			}
		}
	})
	if want := []string{"build_params", "invocation_id", "state", "timestamp_submission"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("pending status has keys %q, want %q", keys, want)
	}
	if st["state"] != "pending" || st["timestamp_submission"] != "2025-01-02T03:04:05Z" {
		t.Errorf("status %s", r.body)
	}

	fake.end(id, service.Success, `{"images":[{"digest":"sha256:abc"}]}`, "")
	r = call(t, "GET", url+"/status/"+id, "key-alice", "")
	_ = json.Unmarshal(r.body, &st)
	if st["state"] != "success" || st["response"] != `{"images":[{"digest":"sha256:abc"}]}` || st["timestamp_end"] == nil {
		t.Errorf("success status %s: want the result facts as JSON text in response", r.body)
	}
	fake.end(id, service.Canceled, "", "canceled by alice")
	r = call(t, "GET", url+"/status/"+id, "key-alice", "")
	_ = json.Unmarshal(r.body, &st)
	if st["state"] != "failed" || st["response"] != "canceled by alice" {
		t.Errorf("canceled status %s: SODALITE knows no canceled: want failed with the reason", r.body)
	}

	// 400: every problem with its pointer, as one JSON string; nothing queued.
	r = call(t, "POST", url+"/build/", "key-alice", invalidParams)
	r.want(t, http.StatusBadRequest, "application/json")
	msg := r.jsonString(t)
	for _, want := range []string{"/target/images/0/image: ", "/target/registry: password needs username"} {
		if !strings.Contains(msg, want) {
			t.Errorf("400 message %q lacks %q", msg, want)
		}
	}
	for _, body := range []string{"", "{not json", "[1,2]"} {
		r = call(t, "POST", url+"/build/", "key-alice", body)
		r.want(t, http.StatusBadRequest, "application/json")
		r.jsonString(t)
	}
	if len(fake.submitted) != 1 {
		t.Errorf("invalid params were queued: %d submissions", len(fake.submitted))
	}

	// 401 without a key or with an unknown one; 404 for an unknown id and for another owner's.
	for _, key := range []string{"", "key-nobody"} {
		r = call(t, "POST", url+"/build/", key, validParams)
		r.want(t, http.StatusUnauthorized, "application/json")
		r.jsonString(t)
		r = call(t, "GET", url+"/status/"+id, key, "")
		r.want(t, http.StatusUnauthorized, "application/json")
	}
	r = call(t, "GET", url+"/status/00000000-0000-4000-8000-999999999999", "key-alice", "")
	r.want(t, http.StatusNotFound, "application/json")
	if r.jsonString(t) != "invocation not found" {
		t.Errorf("404 body %s", r.body)
	}
	call(t, "GET", url+"/status/"+id, "key-bob", "").want(t, http.StatusNotFound, "application/json")
	call(t, "GET", url+"/status/"+id, "key-admin", "").want(t, http.StatusOK, "application/json")
	call(t, "POST", url+"/build/extra", "key-alice", validParams).want(t, http.StatusNotFound, "text/plain")
}

func TestV1Submit(t *testing.T) {
	fake := newFake()
	url := newTestServer(t, fake, Config{})

	// The document as an object, as JSON text and as YAML text.
	yamlDoc := "source:\n  dockerfile:\n    url: https://example.com/Dockerfile\ntarget:\n  registry:\n    url: 127.0.0.1:5000\n  images:\n    - image: demo\n      tag: v1\n"
	textDoc, _ := json.Marshal(yamlDoc)
	for _, body := range []string{
		`{"document":` + validParams + `}`,
		`{"kind":"build","document":` + string(must(json.Marshal(validParams))) + `,"dry_run":true}`,
		`{"document":` + string(textDoc) + `}`,
	} {
		r := call(t, "POST", url+"/v1/invocations", "key-alice", body)
		r.want(t, http.StatusAccepted, "application/json")
		var inv service.Invocation
		if err := json.Unmarshal(r.body, &inv); err != nil || inv.ID == "" || inv.State != service.Pending || inv.Owner != "alice" || inv.Kind != service.KindBuild {
			t.Fatalf("submit %s: %s", body, r.body)
		}
	}
	if len(fake.invs) != 3 {
		t.Fatalf("%d invocations, want 3", len(fake.invs))
	}

	for _, tc := range []struct {
		body      string
		locations []string
	}{
		{`{"document":` + invalidParams + `}`, []string{"/document/target/images/0/image", "/document/target/registry"}},
		{`{"kind":"rocket","document":{}}`, []string{"/kind"}},
		{`{"kind":"build"}`, []string{"/document"}},
		{`{"document":[1]}`, []string{"/document"}},
		{`{"document":{},"extra":1}`, []string{"/extra"}},
		{`{"document":{},"dry_run":"yes"}`, []string{"/dry_run"}},
		{`{"document":`, []string{""}},
		{`[]`, []string{""}},
	} {
		r := call(t, "POST", url+"/v1/invocations", "key-alice", tc.body)
		r.want(t, http.StatusBadRequest, "application/problem+json")
		p := r.problem(t)
		if got := p.locations(); !reflect.DeepEqual(got, tc.locations) || p.Status != 400 {
			t.Errorf("%s: locations %q, want %q (%s)", tc.body, got, tc.locations, r.body)
		}
	}
	if len(fake.invs) != 3 {
		t.Errorf("invalid requests were queued")
	}
}

func TestV1ListGetCancel(t *testing.T) {
	fake := newFake()
	url := newTestServer(t, fake, Config{})
	var ids []string
	for _, key := range []string{"key-alice", "key-alice", "key-bob"} {
		r := call(t, "POST", url+"/v1/invocations", key, `{"document":`+validParams+`}`)
		var inv service.Invocation
		_ = json.Unmarshal(r.body, &inv)
		ids = append(ids, inv.ID)
	}
	fake.end(ids[0], service.Success, `{}`, "")

	list := func(key, query string) []string {
		t.Helper()
		r := call(t, "GET", url+"/v1/invocations"+query, key, "")
		r.want(t, http.StatusOK, "application/json")
		var page service.Page
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, inv := range page.Items {
			got = append(got, inv.ID)
		}
		return got
	}
	if got := list("key-alice", ""); !reflect.DeepEqual(got, []string{ids[1], ids[0]}) {
		t.Errorf("alice lists %q", got)
	}
	if got := list("key-alice", "?state=pending,in_progress"); !reflect.DeepEqual(got, []string{ids[1]}) {
		t.Errorf("alice's pending: %q", got)
	}
	if got := list("key-admin", "?owner=bob&limit=5"); !reflect.DeepEqual(got, []string{ids[2]}) {
		t.Errorf("admin's view of bob: %q", got)
	}
	for _, q := range []string{"?state=lost", "?limit=0", "?limit=101", "?kind=rocket", "?kind=", "?limit=", "?state="} {
		r := call(t, "GET", url+"/v1/invocations"+q, "key-alice", "")
		if r.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s, want 422", q, r.status, r.body)
		}
		r.problem(t)
	}

	r := call(t, "GET", url+"/v1/invocations/"+ids[0], "key-alice", "")
	r.want(t, http.StatusOK, "application/json")
	call(t, "GET", url+"/v1/invocations/"+ids[0], "key-bob", "").want(t, http.StatusNotFound, "application/problem+json")

	call(t, "POST", url+"/v1/invocations/"+ids[1]+"/cancel", "key-bob", "").want(t, http.StatusNotFound, "application/problem+json")
	r = call(t, "POST", url+"/v1/invocations/"+ids[1]+"/cancel", "key-alice", "")
	r.want(t, http.StatusAccepted, "application/json")
	var inv service.Invocation
	if err := json.Unmarshal(r.body, &inv); err != nil || inv.State != service.Canceled {
		t.Errorf("cancel: %s", r.body)
	}
	call(t, "POST", url+"/v1/invocations/"+ids[0]+"/cancel", "key-alice", "").want(t, http.StatusConflict, "application/problem+json")
	call(t, "GET", url+"/v1/invocations", "", "").want(t, http.StatusUnauthorized, "application/problem+json")
}

// event is one server-sent event.
type event struct{ name, id, data string }

func readEvents(t *testing.T, body io.Reader) []event {
	t.Helper()
	var out []event
	var cur event
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" {
				out = append(out, cur)
			}
			cur = event{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			if cur.data != "" {
				cur.data += "\n"
			}
			cur.data += strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

func TestLogs(t *testing.T) {
	fake := newFake()
	url := newTestServer(t, fake, Config{})
	r := call(t, "POST", url+"/v1/invocations", "key-alice", `{"document":`+validParams+`}`)
	var inv service.Invocation
	_ = json.Unmarshal(r.body, &inv)
	fake.log(inv.ID, "step 1/2: FROM alpine")

	// A stream opened while the build runs: it gets the line already there, then those that
	// come, then the end.
	req, _ := http.NewRequest("GET", url+"/v1/invocations/"+inv.ID+"/logs", nil)
	req.Header.Set("X-API-Key", "key-alice")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		fake.log(inv.ID, "step 2/2: RUN echo a\rb")
		fake.end(inv.ID, service.Success, `{}`, "")
	}()
	events := readEvents(t, resp.Body)
	want := []event{{"log", "1", "step 1/2: FROM alpine"}, {"log", "2", "step 2/2: RUN echo a\nb"}, {"end", "", "success"}}
	if !reflect.DeepEqual(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}

	// Resuming after the first line; and the stored text.
	r = call(t, "GET", url+"/v1/invocations/"+inv.ID+"/logs", "key-alice", "", "Accept", "text/event-stream", "Last-Event-ID", "1")
	if got := readEvents(t, bytes.NewReader(r.body)); !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("resumed events %q, want %q", got, want[1:])
	}
	r = call(t, "GET", url+"/v1/invocations/"+inv.ID+"/logs?after=1", "key-alice", "", "Accept", "text/event-stream")
	if got := readEvents(t, bytes.NewReader(r.body)); !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("events after=1 %q, want %q", got, want[1:])
	}
	r = call(t, "GET", url+"/v1/invocations/"+inv.ID+"/logs", "key-alice", "")
	r.want(t, http.StatusOK, "text/plain")
	if string(r.body) != "step 1/2: FROM alpine\nstep 2/2: RUN echo a\rb\n" {
		t.Errorf("plain log %q", r.body)
	}
	call(t, "GET", url+"/v1/invocations/"+inv.ID+"/logs", "key-bob", "", "Accept", "text/event-stream").want(t, http.StatusNotFound, "application/problem+json")
}

// TestCloseStreams: a server shutting down ends the log streams it serves (http.Server.Shutdown
// waits for open requests, and a stream lasts as long as its build).
func TestCloseStreams(t *testing.T) {
	fake := newFake()
	s, err := New(context.Background(), fake, Config{LogPollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	r := call(t, "POST", ts.URL+"/v1/invocations", "key-alice", `{"document":`+validParams+`}`)
	var inv service.Invocation
	_ = json.Unmarshal(r.body, &inv)
	done := make(chan []event, 1)
	go func() {
		r := call(t, "GET", ts.URL+"/v1/invocations/"+inv.ID+"/logs", "key-alice", "", "Accept", "text/event-stream")
		done <- readEvents(t, bytes.NewReader(r.body))
	}()
	time.Sleep(50 * time.Millisecond)
	s.CloseStreams()
	select {
	case events := <-done:
		if len(events) != 0 {
			t.Errorf("a closed stream sent %q (an end event would tell the client the build ended)", events)
		}
	case <-time.After(5 * time.Second):
		ts.CloseClientConnections()
		t.Fatal("the stream of a queued invocation is still open 5s after CloseStreams")
	}
}

func TestRateLimit(t *testing.T) {
	url := newTestServer(t, newFake(), Config{RateLimit: 0.5, RateBurst: 2})
	for i := range 2 {
		call(t, "GET", url+"/v1/invocations", "key-alice", "").want(t, http.StatusOK, "application/json")
		_ = i
	}
	r := call(t, "GET", url+"/v1/invocations", "key-alice", "")
	r.want(t, http.StatusTooManyRequests, "application/problem+json")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Errorf("Retry-After %q, want 1 or 2 seconds", r.header.Get("Retry-After"))
	}
	r = call(t, "POST", url+"/build/", "key-alice", validParams)
	r.want(t, http.StatusTooManyRequests, "application/json")
	r.jsonString(t)
	call(t, "GET", url+"/v1/invocations", "key-bob", "").want(t, http.StatusOK, "application/json")
	call(t, "GET", url+"/healthz", "", "").want(t, http.StatusOK, "application/json")
}

// TestFailedAuthenticationLimit: an address that keeps failing authentication (guessing keys)
// is held to one attempt a second after DefaultAuthFailures failures, with Retry-After; another address
// is not affected.
func TestFailedAuthenticationLimit(t *testing.T) {
	url := newTestServer(t, newFake(), Config{AuthFailures: DefaultAuthFailures})
	for i := range DefaultAuthFailures {
		if r := call(t, "GET", url+"/v1/invocations", fmt.Sprintf("guess-%d", i), ""); r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, r.status)
		}
	}
	r := call(t, "GET", url+"/v1/invocations", "key-alice", "")
	r.want(t, http.StatusTooManyRequests, "application/problem+json")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s != 1 {
		t.Errorf("Retry-After %q, want 1", r.header.Get("Retry-After"))
	}
	// From 127.0.0.2, the same server answers the key.
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	req, _ := http.NewRequest("GET", url+"/v1/invocations", nil)
	req.Header.Set("X-API-Key", "key-alice")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("from another address: %d, want 200", resp.StatusCode)
	}
}

// TestBearer authenticates with a token checked by an introspection endpoint (as Keycloak's):
// the token's user owns what it submits; an admin role sees everyone's.
func TestBearer(t *testing.T) {
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		switch r.PostForm.Get("token") {
		case "tok-carol":
			_, _ = w.Write([]byte(`{"active":true,"sub":"c1","username":"carol"}`))
		case "tok-ops":
			_, _ = w.Write([]byte(`{"active":true,"sub":"o1","username":"ops","realm_access":{"roles":["builds-admin"]}}`))
		default:
			_, _ = w.Write([]byte(`{"active":false}`))
		}
	}))
	defer idp.Close()
	fake := newFake()
	url := newTestServer(t, fake, Config{Auth: auth.Config{IntrospectionURL: idp.URL, ClientID: "imagebuilder", AdminRole: "builds-admin"}})
	r := call(t, "POST", url+"/build/", "", validParams, "Authorization", "Bearer tok-carol")
	r.want(t, http.StatusAccepted, "application/json")
	if fake.submitted[0] != (service.Principal{Name: "oauth:carol"}) {
		t.Errorf("submitted as %+v", fake.submitted[0])
	}
	var started BuildingStarted
	_ = json.Unmarshal(r.body, &started)
	call(t, "GET", url+"/status/"+started.InvocationID, "key-bob", "").want(t, http.StatusNotFound, "application/json")
	call(t, "GET", url+"/status/"+started.InvocationID, "", "", "Authorization", "Bearer tok-ops").want(t, http.StatusOK, "application/json")
	r = call(t, "GET", url+"/status/"+started.InvocationID, "", "", "Authorization", "Bearer tok-expired")
	r.want(t, http.StatusUnauthorized, "application/json")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 to a bearer token without WWW-Authenticate")
	}
}

func TestHealthAndMetrics(t *testing.T) {
	fake := newFake()
	url := newTestServer(t, fake, Config{})
	call(t, "GET", url+"/healthz", "", "").want(t, http.StatusOK, "application/json")
	call(t, "GET", url+"/readyz", "", "").want(t, http.StatusOK, "application/json")
	fake.notReady = errors.New("dial tcp 10.1.2.3:5432: connection refused")
	r := call(t, "GET", url+"/readyz", "", "")
	r.want(t, http.StatusServiceUnavailable, "application/problem+json")
	if bytes.Contains(r.body, []byte("10.1.2.3")) {
		t.Errorf("/readyz shows the reason: %s", r.body)
	}

	call(t, "POST", url+"/build/", "key-alice", validParams)
	fake.gauge.Set(7)
	r = call(t, "GET", url+"/metrics", "", "")
	r.want(t, http.StatusOK, "text/plain")
	for _, want := range []string{
		`imagebuilder_http_requests_total{code="202",route="POST /build/"} 1`,
		`imagebuilder_http_requests_total{code="503",route="GET /readyz"} 1`,
		`imagebuilder_http_request_duration_seconds_count{route="GET /healthz"} 1`,
		"imagebuilder_fake_queue 7",
		"go_goroutines ",
	} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestOpenAPIUpToDate fails when the committed schema/openapi.json differs from what the
// handlers generate, or from what the server serves.
func TestOpenAPIUpToDate(t *testing.T) {
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, schema.OpenAPI) {
		t.Fatal("schema/openapi.json is out of date with internal/api: run `make schema` and commit the result")
	}
	url := newTestServer(t, newFake(), Config{})
	r := call(t, "GET", url+"/openapi.json", "", "")
	r.want(t, http.StatusOK, "application/")
	var served, committed any
	if err := json.Unmarshal(r.body, &served); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(schema.OpenAPI, &committed)
	if !reflect.DeepEqual(served, committed) {
		t.Fatal("the served /openapi.json differs from schema/openapi.json")
	}
	// The request bodies are the shared schemas, not copies.
	var d struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	_ = json.Unmarshal(schema.OpenAPI, &d)
	var bp struct {
		Defs map[string]map[string]any `json:"$defs"`
	}
	_ = json.Unmarshal(schema.BuildParams, &bp)
	want := rewriteRefs(any(bp.Defs["Target"]), func(s string) string { return s })
	gotTarget := any(d.Components.Schemas["Target"])
	if !reflect.DeepEqual(normalise(gotTarget), normalise(want)) {
		t.Errorf("components.schemas.Target differs from the build-params schema's Target")
	}
}

// normalise round-trips v through JSON (map[string]any vs typed maps).
func normalise(v any) any {
	data, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(data, &out)
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
