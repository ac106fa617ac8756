package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/service"
)

// openService opens the real service on a SQLite database in a temp dir, with no workers (what
// is submitted stays queued), and creates the keys alice, bob and (admin) root.
func openService(t *testing.T) (*service.Service, map[string]string, string) {
	t.Helper()
	dir := t.TempDir()
	db := filepath.Join(dir, "serve.db")
	ctx := context.Background()
	svc, err := service.Open(ctx, "sqlite://"+db, service.Options{Workers: 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = svc.Stop(context.Background())
		_ = svc.Close()
	})
	keys := map[string]string{}
	for _, name := range []string{"alice", "bob", "root"} {
		if keys[name], err = svc.CreateKey(ctx, name, name == "root"); err != nil {
			t.Fatal(err)
		}
	}
	return svc, keys, db
}

// TestOnService runs the API on the real service (SQLite): SODALITE's shapes, the real
// validator's pointers and the policy's refusal, ownership, cancel, logs of an ended
// invocation, a revoked key, the service's metrics; and the canary password is in no response
// and not in the database file in the clear.
func TestOnService(t *testing.T) {
	svc, keys, db := openService(t)
	url := newTestServer(t, svc, Config{})

	r := call(t, "POST", url+"/build/", keys["alice"], validParams)
	r.want(t, http.StatusAccepted, "application/json")
	var started BuildingStarted
	if err := json.Unmarshal(r.body, &started); err != nil || len(started.InvocationID) != 36 {
		t.Fatalf("202 body %s", r.body)
	}
	id := started.InvocationID

	r = call(t, "GET", url+"/status/"+id, keys["alice"], "")
	r.want(t, http.StatusOK, "application/json")
	var st Status
	if err := json.Unmarshal(r.body, &st); err != nil || st.State != "pending" || st.TimestampStart != nil || !bytes.Contains(st.BuildParams, []byte(`"image":"demo"`)) {
		t.Fatalf("status %s", r.body)
	}

	r = call(t, "POST", url+"/build/", keys["alice"], invalidParams)
	r.want(t, http.StatusBadRequest, "application/json")
	if msg := r.jsonString(t); !strings.Contains(msg, "/target/images/0/image: ") || !strings.Contains(msg, "/target/registry: ") {
		t.Errorf("400 %q: want both pointers", msg)
	}
	// The policy: a local source is the server's own files.
	local := `{"source":{"local":{"path":"/etc"}},"target":{"registry":{"url":"127.0.0.1:5000"},"images":[{"image":"demo","tag":"v1"}]}}`
	r = call(t, "POST", url+"/v1/invocations", keys["alice"], `{"document":`+local+`}`)
	r.want(t, http.StatusBadRequest, "application/problem+json")
	if locs := r.problem(t).locations(); len(locs) != 1 || !strings.HasPrefix(locs[0], "/document/source") {
		t.Errorf("local source refused at %q, want /document/source...", locs)
	}

	for _, bad := range []string{"00000000-0000-4000-8000-000000000000", "not-a-uuid"} {
		r = call(t, "GET", url+"/status/"+bad, keys["alice"], "")
		r.want(t, http.StatusNotFound, "application/json")
		r.jsonString(t)
	}
	// Only its owner and an admin see an invocation.
	call(t, "GET", url+"/status/"+id, keys["bob"], "").want(t, http.StatusNotFound, "application/json")
	call(t, "GET", url+"/v1/invocations/"+id, keys["bob"], "").want(t, http.StatusNotFound, "application/problem+json")
	call(t, "POST", url+"/v1/invocations/"+id+"/cancel", keys["bob"], "").want(t, http.StatusNotFound, "application/problem+json")
	call(t, "GET", url+"/v1/invocations/"+id, keys["root"], "").want(t, http.StatusOK, "application/json")
	listIDs := func(key, query string) []string {
		t.Helper()
		r := call(t, "GET", url+"/v1/invocations"+query, key, "")
		r.want(t, http.StatusOK, "application/json")
		var page service.Page
		_ = json.Unmarshal(r.body, &page)
		ids := []string{}
		for _, inv := range page.Items {
			ids = append(ids, inv.ID)
		}
		return ids
	}
	if got := listIDs(keys["bob"], ""); len(got) != 0 {
		t.Errorf("bob lists %q", got)
	}
	if got := listIDs(keys["root"], "?owner=alice"); !reflect.DeepEqual(got, []string{id}) {
		t.Errorf("root lists alice's %q", got)
	}

	r = call(t, "POST", url+"/v1/invocations/"+id+"/cancel", keys["alice"], "")
	r.want(t, http.StatusAccepted, "application/json")
	call(t, "POST", url+"/v1/invocations/"+id+"/cancel", keys["alice"], "").want(t, http.StatusConflict, "application/problem+json")
	r = call(t, "GET", url+"/status/"+id, keys["alice"], "")
	_ = json.Unmarshal(r.body, &st)
	if st.State != "failed" || !strings.Contains(st.Response, "canceled") {
		t.Errorf("canceled, SODALITE's view: %s", r.body)
	}
	r = call(t, "GET", url+"/v1/invocations/"+id+"/logs", keys["alice"], "", "Accept", "text/event-stream")
	events := readEvents(t, bytes.NewReader(r.body))
	if len(events) == 0 || events[len(events)-1] != (event{"end", "", "canceled"}) {
		t.Errorf("events of a canceled invocation %q: want an end event with canceled", events)
	}
	if got := listIDs(keys["alice"], "?state=canceled"); !reflect.DeepEqual(got, []string{id}) {
		t.Errorf("alice's canceled: %q", got)
	}

	r = call(t, "GET", url+"/metrics", "", "")
	if !bytes.Contains(r.body, []byte("imagebuilder_invocations{")) || !bytes.Contains(r.body, []byte("imagebuilder_queue_jobs{")) {
		t.Errorf("/metrics lacks the service's metrics:\n%s", r.body)
	}
	call(t, "GET", url+"/readyz", "", "").want(t, http.StatusOK, "application/json")

	if err := svc.RevokeKey(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	call(t, "GET", url+"/v1/invocations", keys["alice"], "").want(t, http.StatusUnauthorized, "application/problem+json")

	// The database holds the password sealed only (the sealed row of an ended invocation is
	// deleted; the second invocation is still queued).
	call(t, "POST", url+"/build/", keys["bob"], validParams).want(t, http.StatusAccepted, "application/json")
	for _, f := range []string{db, db + "-wal"} {
		data, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(canary)) {
			t.Errorf("%s holds the canary password in the clear", f)
		}
	}
}
