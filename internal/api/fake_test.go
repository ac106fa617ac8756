package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
	"github.com/imagebuilder/imagebuilder/internal/service"
)

// fakeBackend is an in-memory Backend for the API's unit tests: it validates build params with
// the real validator, keeps invocations and logs in maps, and enforces ownership like the service.
type fakeBackend struct {
	mu        sync.Mutex
	next      int
	invs      map[string]*service.Invocation
	logs      map[string][]service.LogLine
	keys      map[string]service.Principal
	submitted []service.Principal // who submitted, in order
	notReady  error
	gauge     prometheus.Gauge
}

func newFake() *fakeBackend {
	return &fakeBackend{
		invs: map[string]*service.Invocation{},
		logs: map[string][]service.LogLine{},
		keys: map[string]service.Principal{
			"key-alice": {Name: "alice"},
			"key-bob":   {Name: "bob"},
			"key-admin": {Name: "root", Admin: true},
		},
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "imagebuilder_fake_queue", Help: "The fake's queue."}),
	}
}

func (f *fakeBackend) Submit(_ context.Context, p service.Principal, kind service.Kind, doc []byte, dryRun bool) (*service.Invocation, error) {
	if kind == service.KindBuild {
		if _, err := params.Load(doc); err != nil {
			var ve *schemacheck.ValidationError
			if !errors.As(err, &ve) {
				return nil, err
			}
			out := &service.ValidationError{}
			for _, fe := range ve.Errors {
				out.Errors = append(out.Errors, service.FieldError{Pointer: fe.Pointer, Message: fe.Message})
			}
			return nil, out
		}
	}
	generic, _, err := params.Decode(doc)
	if err != nil {
		return nil, err
	}
	masked, _ := json.Marshal(generic)
	// The service masks every writeOnly value; the fake knows the tests' one password.
	masked = bytes.ReplaceAll(masked, []byte(canary), []byte(redact.Mask))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", f.next)
	inv := &service.Invocation{ID: id, Kind: kind, Owner: p.Name, State: service.Pending, Submitted: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Document: masked, DryRun: dryRun, Images: []string{}}
	f.invs[id] = inv
	f.submitted = append(f.submitted, p)
	return inv, nil
}

func (f *fakeBackend) get(p service.Principal, id string) (*service.Invocation, error) {
	inv := f.invs[id]
	if inv == nil || (!p.Admin && inv.Owner != p.Name) {
		return nil, service.ErrNotFound
	}
	return inv, nil
}

func (f *fakeBackend) Get(_ context.Context, p service.Principal, id string) (*service.Invocation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv, err := f.get(p, id)
	if err != nil {
		return nil, err
	}
	c := *inv
	return &c, nil
}

func (f *fakeBackend) List(_ context.Context, p service.Principal, flt service.Filter) (*service.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	page := &service.Page{Items: []service.Invocation{}}
	for _, inv := range f.invs {
		if (!p.Admin && inv.Owner != p.Name) || (flt.Owner != "" && inv.Owner != flt.Owner) || (flt.Kind != "" && inv.Kind != flt.Kind) {
			continue
		}
		if len(flt.States) > 0 && !containsState(flt.States, inv.State) {
			continue
		}
		page.Items = append(page.Items, *inv)
	}
	sort.Slice(page.Items, func(i, j int) bool { return page.Items[i].ID > page.Items[j].ID })
	if flt.Limit > 0 && len(page.Items) > flt.Limit {
		page.Items = page.Items[:flt.Limit]
		page.NextCursor = page.Items[flt.Limit-1].ID
	}
	return page, nil
}

func containsState(states []service.State, s service.State) bool {
	for _, st := range states {
		if st == s {
			return true
		}
	}
	return false
}

func (f *fakeBackend) Cancel(_ context.Context, p service.Principal, id string) (*service.Invocation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv, err := f.get(p, id)
	if err != nil {
		return nil, err
	}
	if inv.State.Ended() {
		return nil, service.ErrEnded
	}
	inv.State, inv.Error = service.Canceled, "canceled by "+p.Name
	c := *inv
	return &c, nil
}

func (f *fakeBackend) Logs(_ context.Context, p service.Principal, id string, after int64, limit int) ([]service.LogLine, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv, err := f.get(p, id)
	if err != nil {
		return nil, false, err
	}
	var out []service.LogLine
	for _, l := range f.logs[id] {
		if l.Seq > after && len(out) < limit {
			out = append(out, l)
		}
	}
	return out, inv.State.Ended(), nil
}

// log appends a line to id's log.
func (f *fakeBackend) log(id, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[id] = append(f.logs[id], service.LogLine{Seq: int64(len(f.logs[id]) + 1), Time: time.Now(), Text: text})
}

// end ends id in state with result or error.
func (f *fakeBackend) end(id string, state service.State, result, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv := f.invs[id]
	now := time.Date(2025, 1, 2, 3, 5, 0, 0, time.UTC)
	inv.State, inv.Started, inv.Ended, inv.Error = state, &now, &now, msg
	if result != "" {
		inv.Result = json.RawMessage(result)
	}
}

func (f *fakeBackend) Ready(context.Context) error { return f.notReady }

func (f *fakeBackend) Collector() prometheus.Collector { return f.gauge }

func (f *fakeBackend) LookupKey(_ context.Context, key string) (*service.Principal, error) {
	p, ok := f.keys[key]
	if !ok {
		return nil, service.ErrUnauthorized
	}
	return &p, nil
}
