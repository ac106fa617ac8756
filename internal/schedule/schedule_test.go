package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// recorder runs fake tasks and records what happened, safely from the
// task goroutines.
type recorder struct {
	mu       sync.Mutex
	clock    int
	start    map[string]int // logical time of the last start
	end      map[string]int // logical time of the last end
	ep       map[string][]string
	cur, max int
	events   []Event
}

func newRecorder() *recorder {
	return &recorder{start: map[string]int{}, end: map[string]int{}, ep: map[string][]string{}}
}

func (r *recorder) begin(t Task, ep string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock++
	r.start[t.ID] = r.clock
	r.ep[t.ID] = append(r.ep[t.ID], ep)
	r.cur++
	r.max = max(r.max, r.cur)
}

func (r *recorder) finish(t Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock++
	r.end[t.ID] = r.clock
	r.cur--
}

func (r *recorder) event(e Event) { r.events = append(r.events, e) } // called by Run's one goroutine

// do wraps fn with the recording.
func (r *recorder) do(fn func(ctx context.Context, t Task, ep string) error) func(context.Context, Task, string) error {
	return func(ctx context.Context, t Task, ep string) error {
		r.begin(t, ep)
		defer r.finish(t)
		if fn == nil {
			return nil
		}
		return fn(ctx, t, ep)
	}
}

func states(out map[string]*Outcome) map[string]State {
	m := map[string]State{}
	for id, o := range out {
		m[id] = o.State
	}
	return m
}

func wantStates(t *testing.T, out map[string]*Outcome, want map[string]State) {
	t.Helper()
	if got := states(out); !mapsEqual(got, want) {
		for id, o := range out {
			t.Logf("%s: %s %v (%d attempts)", id, o.State, o.Err, len(o.Attempts))
		}
		t.Fatalf("states = %v, want %v", got, want)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// barrier lets n goroutines through together, and fails the test when fewer
// arrive within a generous time: "n run at once" is then proven, not timed.
type barrier struct {
	mu   sync.Mutex
	n    int
	came int
	open chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, open: make(chan struct{})} }

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	b.came++
	if b.came == b.n {
		close(b.open)
	}
	b.mu.Unlock()
	select {
	case <-b.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Second):
		return fmt.Errorf("only %d of %d tasks ran at once", b.came, b.n)
	}
}

func noBackoff(int) time.Duration { return 0 }

func TestOrder(t *testing.T) {
	// a -> b, c -> d (diamond), e independent, f depends on d and on x, which
	// is not in the run (satisfied).
	tasks := []Task{
		{ID: "f", Deps: []string{"d", "x"}},
		{ID: "d", Deps: []string{"b", "c"}},
		{ID: "b", Deps: []string{"a"}},
		{ID: "c", Deps: []string{"a", "a"}},
		{ID: "a"},
		{ID: "e"},
	}
	for _, jobs := range []int{1, 2, 8} {
		t.Run(fmt.Sprint("jobs ", jobs), func(t *testing.T) {
			rec := newRecorder()
			out := Run(context.Background(), tasks, Options{Jobs: jobs, Endpoints: []Endpoint{{Name: "x", Jobs: 8}}, Event: rec.event},
				rec.do(func(ctx context.Context, t Task, ep string) error { time.Sleep(time.Millisecond); return nil }))
			wantStates(t, out, map[string]State{"a": Done, "b": Done, "c": Done, "d": Done, "e": Done, "f": Done})
			for _, task := range tasks {
				for _, d := range task.Deps {
					if d != "x" && rec.start[task.ID] < rec.end[d] {
						t.Errorf("%s started (%d) before %s ended (%d)", task.ID, rec.start[task.ID], d, rec.end[d])
					}
				}
				if o := out[task.ID]; len(o.Attempts) != 1 || o.Attempts[0].Endpoint != "x" || o.Attempts[0].Err != nil ||
					o.Attempts[0].Finished.Before(o.Attempts[0].Started) {
					t.Errorf("%s: attempts %+v", task.ID, o.Attempts)
				}
			}
			if rec.max > jobs {
				t.Errorf("%d tasks ran at once, cap %d", rec.max, jobs)
			}
			checkEvents(t, rec.events, out)
		})
	}
}

// checkEvents checks the event stream against the outcomes: one queued
// before each start, one start per attempt, one finished per task with its
// state, last.
func checkEvents(t *testing.T, events []Event, out map[string]*Outcome) {
	t.Helper()
	started, finished := map[string]int{}, map[string]State{}
	for _, e := range events {
		if e.Time.IsZero() {
			t.Errorf("event %+v has no time", e)
		}
		if _, done := finished[e.Task]; done && e.Task != "" {
			t.Errorf("event %+v after %s finished", e, e.Task)
		}
		switch e.Kind {
		case EventStarted:
			started[e.Task]++
			if e.Attempt != started[e.Task] {
				t.Errorf("event %+v: attempt %d, want %d", e, e.Attempt, started[e.Task])
			}
		case EventFinished:
			finished[e.Task] = e.State
		}
	}
	for id, o := range out {
		if started[id] != len(o.Attempts) || finished[id] != o.State {
			t.Errorf("%s: %d started events and finished %q, outcome %d attempts and %q", id, started[id], finished[id], len(o.Attempts), o.State)
		}
	}
}

func TestParallelism(t *testing.T) {
	t.Run("the widest level runs at once", func(t *testing.T) {
		// root -> w1..w4 -> leaf on two endpoints of two slots: the four
		// middle tasks must run together, two on each endpoint.
		tasks := []Task{{ID: "root"}, {ID: "leaf", Deps: []string{"w1", "w2", "w3", "w4"}}}
		for i := 1; i <= 4; i++ {
			tasks = append(tasks, Task{ID: fmt.Sprint("w", i), Deps: []string{"root"}})
		}
		b := newBarrier(4)
		rec := newRecorder()
		out := Run(context.Background(), tasks, Options{Endpoints: []Endpoint{{Name: "a", Jobs: 2}, {Name: "b", Jobs: 2}}},
			rec.do(func(ctx context.Context, t Task, ep string) error {
				if strings.HasPrefix(t.ID, "w") {
					return b.wait(ctx)
				}
				return nil
			}))
		wantStates(t, out, map[string]State{"root": Done, "leaf": Done, "w1": Done, "w2": Done, "w3": Done, "w4": Done})
		if rec.max != 4 {
			t.Errorf("%d ran at once, want 4", rec.max)
		}
		perEP := map[string]int{}
		for i := 1; i <= 4; i++ {
			perEP[rec.ep[fmt.Sprint("w", i)][0]]++
		}
		if perEP["a"] != 2 || perEP["b"] != 2 {
			t.Errorf("the middle level ran %v per endpoint, want 2 on each", perEP)
		}
	})
	t.Run("load spreads to the endpoint with most free slots", func(t *testing.T) {
		// Two tasks at once on two endpoints of three slots: one on each,
		// not both on the first.
		b := newBarrier(2)
		rec := newRecorder()
		Run(context.Background(), []Task{{ID: "x"}, {ID: "y"}}, Options{Endpoints: []Endpoint{{Name: "a", Jobs: 3}, {Name: "b", Jobs: 3}}},
			rec.do(func(ctx context.Context, t Task, ep string) error { return b.wait(ctx) }))
		if got := []string{rec.ep["x"][0], rec.ep["y"][0]}; !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("x and y ran on %q, want a and b", got)
		}
	})
	t.Run("the cap holds", func(t *testing.T) {
		var tasks []Task
		for i := range 6 {
			tasks = append(tasks, Task{ID: fmt.Sprint(i)})
		}
		b := newBarrier(3)
		rec := newRecorder()
		out := Run(context.Background(), tasks, Options{Jobs: 3, Endpoints: []Endpoint{{Name: "big", Jobs: 10}}},
			rec.do(func(ctx context.Context, t Task, ep string) error {
				if t.ID < "3" {
					if err := b.wait(ctx); err != nil {
						return err
					}
					time.Sleep(20 * time.Millisecond) // a window for a fourth to start, were the cap broken
				}
				return nil
			}))
		for id, o := range out {
			if o.State != Done {
				t.Errorf("%s: %s %v", id, o.State, o.Err)
			}
		}
		if rec.max != 3 {
			t.Errorf("%d ran at once, want the cap, 3", rec.max)
		}
	})
	t.Run("without endpoints, Jobs sets the default engine's slots", func(t *testing.T) {
		b := newBarrier(3)
		rec := newRecorder()
		out := Run(context.Background(), []Task{{ID: "x"}, {ID: "y"}, {ID: "z"}}, Options{Jobs: 3},
			rec.do(func(ctx context.Context, t Task, ep string) error { return b.wait(ctx) }))
		wantStates(t, out, map[string]State{"x": Done, "y": Done, "z": Done})
		if rec.max != 3 || rec.ep["x"][0] != "" {
			t.Errorf("%d at once on %q, want 3 on the default engine", rec.max, rec.ep["x"])
		}
	})
	t.Run("endpoint slots cap without Jobs", func(t *testing.T) {
		var tasks []Task
		for i := range 5 {
			tasks = append(tasks, Task{ID: fmt.Sprint(i)})
		}
		rec := newRecorder()
		Run(context.Background(), tasks, Options{Endpoints: []Endpoint{{Name: "one"}, {Name: "two", Jobs: 1}}},
			rec.do(func(ctx context.Context, t Task, ep string) error { time.Sleep(10 * time.Millisecond); return nil }))
		if rec.max > 2 {
			t.Errorf("%d ran at once on two one-slot endpoints", rec.max)
		}
	})
}

func TestPlatforms(t *testing.T) {
	eps := []Endpoint{
		{Name: "amd", Jobs: 2, Platforms: []string{"linux/amd64"}},
		{Name: "arm", Jobs: 2, Platforms: []string{"linux/arm64/v8", "linux/arm/v7"}},
		{Name: "both", Jobs: 1, Platforms: []string{"linux/amd64", "linux/arm64"}},
	}
	tasks := []Task{
		{ID: "multi", Platforms: []string{"linux/amd64", "linux/arm64"}},
		{ID: "arm64", Platforms: []string{"linux/arm64"}},
		{ID: "arm7", Platforms: []string{"linux/arm/v7"}},
		{ID: "amd64", Platforms: []string{"linux/amd64"}},
		{ID: "native"},
	}
	rec := newRecorder()
	out := Run(context.Background(), tasks, Options{Endpoints: eps}, rec.do(nil))
	wantStates(t, out, map[string]State{"multi": Done, "arm64": Done, "arm7": Done, "amd64": Done, "native": Done})
	allowed := map[string][]string{"multi": {"both"}, "arm64": {"arm", "both"}, "arm7": {"arm"}, "amd64": {"amd", "both"}, "native": {"amd", "arm", "both"}}
	for id, eps := range allowed {
		if got := rec.ep[id]; len(got) != 1 || !slices.Contains(eps, got[0]) {
			t.Errorf("%s ran on %q, want one of %q", id, got, eps)
		}
	}

	t.Run("no endpoint fits", func(t *testing.T) {
		for _, keep := range []bool{false, true} {
			rec := newRecorder()
			out := Run(context.Background(), []Task{
				{ID: "ok"},
				{ID: "s390x", Platforms: []string{"linux/s390x", "linux/amd64"}},
				{ID: "child", Deps: []string{"s390x"}},
			}, Options{KeepGoing: keep, Endpoints: eps[:2]}, rec.do(nil))
			o := out["s390x"]
			want := "no build endpoint supports the platforms linux/s390x, linux/amd64: the endpoints are amd (linux/amd64); arm (linux/arm64/v8, linux/arm/v7)"
			if o.State != Failed || o.Err == nil || o.Err.Error() != want || len(o.Attempts) != 0 {
				t.Errorf("s390x: %s %v, want failed: %s", o.State, o.Err, want)
			}
			if out["child"].State != ParentFailed {
				t.Errorf("child: %s", out["child"].State)
			}
			// All-or-nothing stops before anything starts.
			if wantOK := map[bool]State{false: Cancelled, true: Done}[keep]; out["ok"].State != wantOK || (rec.start["ok"] > 0) != keep {
				t.Errorf("keep going %v: ok %s, started %v", keep, out["ok"].State, rec.start["ok"] > 0)
			}
		}
	})
}

// TestNativeFirst: a task with platforms waits for an endpoint that declares them (builds them
// natively) rather than run emulated on a free endpoint that declares none; once the native
// endpoints are lost, the others take it (emulation as the fallback).
func TestNativeFirst(t *testing.T) {
	eps := []Endpoint{
		{Name: "any", Jobs: 4},
		{Name: "arm", Jobs: 1, Platforms: []string{"linux/arm64"}},
	}
	tasks := []Task{
		{ID: "arm1", Platforms: []string{"linux/arm64"}},
		{ID: "arm2", Platforms: []string{"linux/arm64"}},
		{ID: "amd", Platforms: []string{"linux/amd64"}},
		{ID: "plain"},
	}
	rec := newRecorder()
	out := Run(context.Background(), tasks, Options{Endpoints: eps}, rec.do(nil))
	wantStates(t, out, map[string]State{"arm1": Done, "arm2": Done, "amd": Done, "plain": Done})
	for id, want := range map[string]string{"arm1": "arm", "arm2": "arm", "amd": "any"} {
		if got := rec.ep[id]; len(got) != 1 || got[0] != want {
			t.Errorf("%s ran on %q, want %s", id, got, want)
		}
	}

	lost := func(_ context.Context, _ Task, ep string) error {
		if ep == "arm" {
			return errLost
		}
		return nil
	}
	rec = newRecorder()
	out = Run(context.Background(), tasks[:1], Options{Endpoints: eps}, rec.do(lost))
	if out["arm1"].State != Done || strings.Join(rec.ep["arm1"], ",") != "arm,any" {
		t.Errorf("after losing the native endpoint: %s on %v", out["arm1"].State, rec.ep["arm1"])
	}
}

// errTransient and errLost are errors the default classifiers recognise.
var (
	errTransient = fmt.Errorf("pushing: %w", &net503{})
	errLost      = fmt.Errorf("building: %w", status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial unix /run/x.sock: connect: connection refused"`))
	errPermanent = errors.New(`process "/bin/sh -c false" did not complete successfully: exit code: 1`)
)

type net503 struct{}

func (*net503) Error() string { return "unexpected status: 503 Service Unavailable" }

func TestRetries(t *testing.T) {
	flaky := func(failures int, err error) func(context.Context, Task, string) error {
		var mu sync.Mutex
		n := map[string]int{}
		return func(ctx context.Context, t Task, ep string) error {
			mu.Lock()
			defer mu.Unlock()
			if n[t.ID]++; t.ID == "t" && n[t.ID] <= failures {
				return err
			}
			return nil
		}
	}
	tests := []struct {
		name     string
		retries  int
		failures int
		err      error
		state    State
		attempts int
	}{
		{"transient, then success", 0, 2, errTransient, Done, 3},
		{"transient, retries exhausted", 0, 3, errTransient, Failed, 3},
		{"more retries", 4, 3, errTransient, Done, 4},
		{"no retries", -1, 1, errTransient, Failed, 1},
		{"permanent is not retried", 5, 1, errPermanent, Failed, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var backoffs []int
			rec := newRecorder()
			out := Run(context.Background(), []Task{{ID: "t"}, {ID: "child", Deps: []string{"t"}}}, Options{
				Retries: tc.retries,
				Backoff: func(n int) time.Duration { backoffs = append(backoffs, n); return time.Millisecond },
				Event:   rec.event,
			}, rec.do(flaky(tc.failures, tc.err)))
			o := out["t"]
			if o.State != tc.state || len(o.Attempts) != tc.attempts {
				t.Fatalf("%s after %d attempts, want %s after %d (%v)", o.State, len(o.Attempts), tc.state, tc.attempts, o.Err)
			}
			for k, a := range o.Attempts {
				wantErr := k < tc.failures
				if (a.Err != nil) != wantErr || (wantErr && !errors.Is(a.Err, tc.err)) {
					t.Errorf("attempt %d: error %v", k+1, a.Err)
				}
			}
			if tc.state == Failed && !errors.Is(o.Err, tc.err) {
				t.Errorf("outcome error %v, want %v", o.Err, tc.err)
			}
			if want := min(tc.attempts-1, tc.failures); len(backoffs) != want || (want > 0 && backoffs[want-1] != want) {
				t.Errorf("backoffs %v, want 1..%d", backoffs, want)
			}
			if wantChild := map[State]State{Done: Done, Failed: ParentFailed}[tc.state]; out["child"].State != wantChild {
				t.Errorf("child: %s, want %s", out["child"].State, wantChild)
			}
			checkEvents(t, rec.events, out)
		})
	}
}

func TestDefaultBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 30 * time.Second, 50: 30 * time.Second} {
		for range 20 {
			if d := DefaultBackoff(n); d < want*8/10 || d > want*12/10 {
				t.Errorf("DefaultBackoff(%d) = %v, want %v ± 20%%", n, d, want)
			}
		}
	}
}

func TestLostEndpoint(t *testing.T) {
	t.Run("requeued on another endpoint", func(t *testing.T) {
		rec := newRecorder()
		var tasks []Task
		for i := range 4 {
			tasks = append(tasks, Task{ID: fmt.Sprint("t", i)})
		}
		b := newBarrier(2) // t0 and t1 start together, one on each endpoint
		out := Run(context.Background(), tasks, Options{
			Retries:   -1, // a lost endpoint uses no retry
			Endpoints: []Endpoint{{Name: "dies"}, {Name: "lives"}},
			Event:     rec.event,
		}, rec.do(func(ctx context.Context, t Task, ep string) error {
			if t.ID == "t0" || t.ID == "t1" {
				if err := b.wait(ctx); err != nil {
					return err
				}
			}
			if ep == "dies" {
				return errLost
			}
			return nil
		}))
		wantStates(t, out, map[string]State{"t0": Done, "t1": Done, "t2": Done, "t3": Done})
		lostOn := ""
		for id, o := range out {
			last := o.Attempts[len(o.Attempts)-1]
			if last.Endpoint != "lives" || last.Err != nil {
				t.Errorf("%s: last attempt %+v", id, last)
			}
			if len(o.Attempts) == 2 {
				if lostOn != "" || o.Attempts[0].Endpoint != "dies" || !errors.Is(o.Attempts[0].Err, errLost) {
					t.Errorf("%s: attempts %+v", id, o.Attempts)
				}
				lostOn = id
			}
		}
		if lostOn == "" {
			t.Error("no task ran on the endpoint that died")
		}
		var lost []string
		for _, e := range rec.events {
			if e.Kind == EventEndpointLost {
				lost = append(lost, e.Endpoint)
			}
		}
		if !slices.Equal(lost, []string{"dies"}) {
			t.Errorf("endpoint_lost events %q", lost)
		}
		checkEvents(t, rec.events, out)
	})
	t.Run("no endpoint left", func(t *testing.T) {
		rec := newRecorder()
		out := Run(context.Background(), []Task{{ID: "a"}, {ID: "b"}, {ID: "arm", Platforms: []string{"linux/arm64"}}}, Options{
			KeepGoing: true,
			Endpoints: []Endpoint{{Name: "only", Platforms: []string{"linux/arm64"}}, {Name: "amd", Platforms: []string{"linux/amd64"}}},
		}, rec.do(func(ctx context.Context, t Task, ep string) error {
			if ep == "only" {
				return errLost
			}
			return nil
		}))
		// "a" and "b" may run on either; "arm" only on "only", which is gone.
		if o := out["arm"]; o.State != Failed || !errors.Is(o.Err, errLost) && !strings.Contains(o.Err.Error(), `endpoint "only" is gone`) {
			t.Errorf("arm: %s %v", o.State, o.Err)
		}
		if out["a"].State != Done || out["b"].State != Done {
			t.Errorf("a %s, b %s", out["a"].State, out["b"].State)
		}
	})
}

func TestFailure(t *testing.T) {
	// bad fails while slow runs; child depends on bad; later waits for a
	// slot behind slow (Jobs 2), grandchild on child.
	tasks := []Task{
		{ID: "slow"},
		{ID: "bad"},
		{ID: "later"},
		{ID: "child", Deps: []string{"bad"}},
		{ID: "grandchild", Deps: []string{"child", "slow"}},
	}
	run := func(keep bool) (map[string]*Outcome, *recorder) {
		rec := newRecorder()
		started := make(chan struct{})
		out := Run(context.Background(), tasks, Options{Jobs: 2, KeepGoing: keep, Event: rec.event, Endpoints: []Endpoint{{Jobs: 2}}},
			rec.do(func(ctx context.Context, t Task, ep string) error {
				switch t.ID {
				case "slow":
					close(started)
					select {
					case <-ctx.Done():
						return fmt.Errorf("building slow: %w", ctx.Err())
					case <-time.After(100 * time.Millisecond):
						return nil
					}
				case "bad":
					<-started
					return errPermanent
				}
				return nil
			}))
		checkEvents(t, rec.events, out)
		return out, rec
	}
	t.Run("all or nothing", func(t *testing.T) {
		out, rec := run(false)
		wantStates(t, out, map[string]State{"slow": Cancelled, "bad": Failed, "later": Cancelled, "child": ParentFailed, "grandchild": ParentFailed})
		if !errors.Is(out["bad"].Err, errPermanent) || !errors.Is(out["slow"].Err, context.Canceled) {
			t.Errorf("errors: bad %v, slow %v", out["bad"].Err, out["slow"].Err)
		}
		if rec.start["later"] != 0 {
			t.Error("a task started after the failure")
		}
		if !strings.Contains(out["grandchild"].Err.Error(), `"bad"`) {
			t.Errorf("grandchild: %v", out["grandchild"].Err)
		}
	})
	t.Run("keep going", func(t *testing.T) {
		out, _ := run(true)
		wantStates(t, out, map[string]State{"slow": Done, "bad": Failed, "later": Done, "child": ParentFailed, "grandchild": ParentFailed})
	})
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	rec := newRecorder()
	out := make(chan map[string]*Outcome)
	go func() {
		out <- Run(ctx, []Task{{ID: "a"}, {ID: "b"}, {ID: "c", Deps: []string{"a"}}, {ID: "retrying"}}, Options{
			Jobs: 3, Endpoints: []Endpoint{{Jobs: 3}}, Backoff: func(int) time.Duration { return time.Hour }, Retries: 1,
		}, rec.do(func(ctx context.Context, t Task, ep string) error {
			switch t.ID {
			case "retrying":
				return errTransient
			case "b":
				return nil
			}
			once.Do(func() { close(started) })
			<-ctx.Done()
			return fmt.Errorf("building: %w", ctx.Err())
		}))
	}()
	<-started
	time.Sleep(10 * time.Millisecond) // let "retrying" fail and sleep
	cancel()
	var res map[string]*Outcome
	select {
	case res = <-out:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after the context was cancelled")
	}
	wantStates(t, res, map[string]State{"a": Cancelled, "b": Done, "c": Cancelled, "retrying": Cancelled})
	if !errors.Is(res["c"].Err, context.Canceled) || len(res["c"].Attempts) != 0 {
		t.Errorf("c: %v, %d attempts", res["c"].Err, len(res["c"].Attempts))
	}
}

func TestCycleAndPanics(t *testing.T) {
	out := Run(context.Background(), []Task{{ID: "a", Deps: []string{"b"}}, {ID: "b", Deps: []string{"a"}}, {ID: "c"}}, Options{KeepGoing: true}, func(context.Context, Task, string) error { return nil })
	wantStates(t, out, map[string]State{"a": Failed, "b": Failed, "c": Done})
	for _, tasks := range [][]Task{{{ID: "a"}, {ID: "a"}}, {{ID: ""}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic on %v", tasks)
				}
			}()
			Run(context.Background(), tasks, Options{}, nil)
		}()
	}
}
