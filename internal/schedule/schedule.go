// Package schedule runs a graph of tasks on a pool of build endpoints: each
// task after its dependencies, as many at once as the endpoints have slots
// (and no more than a global cap), each on an endpoint that supports its
// platforms, with retries of transient errors, endpoints that die taken out of
// the pool, and either all-or-nothing or keep-going failure handling.
//
// # Semantics of [Run]
//
//   - A task starts once every task of its Deps is done. Deps naming no task
//     of the run are ignored: they are satisfied already (an image that is not
//     selected, say).
//   - A task runs on an endpoint with a free slot (each endpoint has Jobs
//     slots) whose Platforms include all the task's Platforms; an endpoint
//     without Platforms takes any. Among those, the one with the most free
//     slots wins (ties: the first listed), which spreads the load. Ready tasks
//     start in the order of the task list; one that waits for a busy endpoint
//     does not hold back the others. At most Options.Jobs tasks run at once.
//     A task that no endpoint supports fails before anything starts.
//   - An error for which Options.Lost is true means the endpoint is gone
//     (nothing answers at its address): the endpoint takes no more tasks in
//     this run and the task goes back to the queue for another endpoint,
//     without using a retry. When no endpoint that supports the task is left,
//     the task fails with its last error.
//   - Otherwise an error for which Options.Transient is true is retried,
//     after Options.Backoff, up to Options.Retries times, on whichever
//     endpoint is free then.
//   - Any other error fails the task, and its descendants become
//     [ParentFailed] (they never start). With KeepGoing everything else goes
//     on; without it (the default) the run stops: the context of the running
//     tasks is cancelled, nothing more starts, and the tasks that did not run
//     become [Cancelled]. Run returns once the running tasks have returned.
//   - Cancelling ctx stops the run the same way.
//
// Every attempt (start, end, endpoint, error) is recorded in the task's
// [Outcome], and reported as it happens through Options.Event. Run has one
// coordinating goroutine: Options.Event is called from it, one event at a
// time, and must not block.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/containerd/platforms"
)

// Task is one node of the graph.
type Task struct {
	// ID names the task; IDs are unique in a run.
	ID string
	// Deps are the IDs of the tasks that must be done before this one starts.
	Deps []string
	// Platforms are the platforms (os/arch[/variant]) the endpoint must
	// support; empty means any endpoint.
	Platforms []string
}

// Endpoint is one build engine of the pool.
type Endpoint struct {
	// Name is passed to the task function; "" is the default engine.
	Name string
	// Jobs is how many tasks the endpoint runs at once; 0 means 1.
	Jobs int
	// Platforms the endpoint builds natively; empty means any (emulating what is not its
	// own). A task with platforms goes to an endpoint that declares them while one is alive,
	// and only then to one that declares none: emulation is the fallback.
	Platforms []string
}

// DefaultRetries is the number of retries of a transient error when
// Options.Retries is 0.
const DefaultRetries = 2

// Options configure Run. The zero value runs on the default engine, one task
// at a time, all-or-nothing, with the default retries.
type Options struct {
	// Jobs caps the tasks running at once over all endpoints; 0 means the sum
	// of the endpoints' Jobs.
	Jobs int
	// KeepGoing runs everything whose dependencies succeeded after a task
	// fails; without it the first failure stops the run.
	KeepGoing bool
	// Endpoints is the pool; empty means one default engine (Name "") with
	// Jobs slots (one when Jobs is 0), so that a run without a pool takes its
	// parallelism from Jobs alone.
	Endpoints []Endpoint
	// Retries is how many more attempts a task gets after transient errors:
	// 0 means DefaultRetries, a negative number none.
	Retries int
	// Backoff is the wait before retry number attempt (1, 2, ...); nil means
	// DefaultBackoff.
	Backoff func(attempt int) time.Duration
	// Transient tells errors worth retrying; nil means the package's
	// [Transient].
	Transient func(error) bool
	// Lost tells errors that mean the endpoint is gone; nil means the
	// package's [Lost].
	Lost func(error) bool
	// Event, when not nil, is told what happens, as it happens.
	Event func(Event)
}

// State is how a task ended.
type State string

const (
	// Done: the task succeeded.
	Done State = "done"
	// Failed: the task failed (its last attempt's error is Outcome.Err).
	Failed State = "failed"
	// ParentFailed: a task it depends on (directly or not) failed, so it did
	// not run.
	ParentFailed State = "parent_failed"
	// Cancelled: the run stopped (a failure without KeepGoing, or the
	// context) before the task could finish.
	Cancelled State = "cancelled"
)

// Attempt is one run of a task on an endpoint.
type Attempt struct {
	Endpoint          string
	Started, Finished time.Time
	Err               error
}

// Outcome is how a task ended and every attempt it took.
type Outcome struct {
	State    State
	Err      error
	Attempts []Attempt
}

// EventKind says what an Event reports.
type EventKind string

// Kinds of Event.
const (
	// EventQueued: all the task's dependencies are done; it waits for a slot.
	EventQueued EventKind = "queued"
	// EventStarted: an attempt starts on Endpoint.
	EventStarted EventKind = "started"
	// EventRetrying: the attempt failed with a transient error (Err); the
	// task is queued again after Delay.
	EventRetrying EventKind = "retrying"
	// EventRequeued: the attempt failed because its endpoint is gone (Err);
	// the task is queued again for another endpoint.
	EventRequeued EventKind = "requeued"
	// EventEndpointLost: Endpoint takes no more tasks in this run (Err).
	EventEndpointLost EventKind = "endpoint_lost"
	// EventFinished: the task ended in State (Err unless Done), whether it
	// ran or not.
	EventFinished EventKind = "finished"
)

// Event reports a step of the run.
type Event struct {
	Kind     EventKind
	Time     time.Time
	Task     string // "" for EventEndpointLost
	Endpoint string
	Attempt  int // 1-based, for started, retrying and requeued
	State    State
	Err      error
	Delay    time.Duration
}

// DefaultBackoff waits 1s before the first retry, doubling each time up to
// 30s, each wait varied by up to ±20% so that tasks failing together do not
// retry together.
func DefaultBackoff(attempt int) time.Duration {
	d := time.Second << min(max(attempt-1, 0), 5)
	d = min(d, 30*time.Second)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

type taskState int

const (
	waiting  taskState = iota // for dependencies
	queued                    // ready, for a slot
	running                   // an attempt runs
	sleeping                  // for a retry's backoff
	finished                  // Outcome.State is set
)

type endpointState struct {
	Endpoint
	free    int
	dead    bool
	lostErr error
}

// result is what a goroutine hands back to the coordinator: an attempt's end,
// or (ep < 0) a backoff's.
type result struct {
	task    int
	ep      int
	attempt Attempt
}

type run struct {
	opts     Options
	retries  int
	tasks    []Task
	index    map[string]int
	children [][]int
	pending  []int // dependencies not done yet
	state    []taskState
	out      []*Outcome
	retried  []int
	lastErr  []error
	queue    []int // queued tasks, in input order
	eps      []*endpointState
	running  int // attempts running
	sleepers int // backoffs waiting
	stopped  bool
	ctx      context.Context
	cancel   context.CancelFunc
	do       func(ctx context.Context, t Task, endpoint string) error
	results  chan result
}

// Run runs tasks (see the package documentation) and returns the outcome of
// each, by ID. do runs one attempt of t on endpoint (an Endpoint's Name); its
// context is cancelled when the run stops. Run panics on an empty or repeated
// task ID.
func Run(ctx context.Context, tasks []Task, opts Options, do func(ctx context.Context, t Task, endpoint string) error) map[string]*Outcome {
	r := newRun(ctx, tasks, opts, do)
	defer r.cancel()
	r.loop(ctx)
	res := make(map[string]*Outcome, len(tasks))
	for i, t := range r.tasks {
		res[t.ID] = r.out[i]
	}
	return res
}

func newRun(ctx context.Context, tasks []Task, opts Options, do func(ctx context.Context, t Task, endpoint string) error) *run {
	r := &run{
		opts:     opts,
		retries:  opts.Retries,
		tasks:    tasks,
		index:    make(map[string]int, len(tasks)),
		children: make([][]int, len(tasks)),
		pending:  make([]int, len(tasks)),
		state:    make([]taskState, len(tasks)),
		out:      make([]*Outcome, len(tasks)),
		retried:  make([]int, len(tasks)),
		lastErr:  make([]error, len(tasks)),
		do:       do,
		results:  make(chan result),
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	switch {
	case r.retries == 0:
		r.retries = DefaultRetries
	case r.retries < 0:
		r.retries = 0
	}
	if r.opts.Backoff == nil {
		r.opts.Backoff = DefaultBackoff
	}
	if r.opts.Transient == nil {
		r.opts.Transient = Transient
	}
	if r.opts.Lost == nil {
		r.opts.Lost = Lost
	}
	eps := opts.Endpoints
	if len(eps) == 0 {
		eps = []Endpoint{{Jobs: opts.Jobs}}
	}
	slots := 0
	for _, e := range eps {
		e.Jobs = max(e.Jobs, 1)
		slots += e.Jobs
		r.eps = append(r.eps, &endpointState{Endpoint: e, free: e.Jobs})
	}
	if r.opts.Jobs <= 0 {
		r.opts.Jobs = slots
	}
	for i, t := range tasks {
		if t.ID == "" {
			panic(fmt.Sprintf("schedule.Run: task %d has no ID", i))
		}
		if _, dup := r.index[t.ID]; dup {
			panic(fmt.Sprintf("schedule.Run: two tasks have the ID %q", t.ID))
		}
		r.index[t.ID] = i
		r.out[i] = &Outcome{}
	}
	for i, t := range tasks {
		seen := map[int]bool{}
		for _, d := range t.Deps {
			if p, ok := r.index[d]; ok && !seen[p] {
				seen[p] = true
				r.children[p] = append(r.children[p], i)
				r.pending[i]++
			}
		}
	}
	return r
}

func (r *run) event(e Event) {
	if r.opts.Event != nil {
		e.Time = time.Now()
		r.opts.Event(e)
	}
}

func (r *run) loop(ctx context.Context) {
	// Tasks no endpoint supports fail first, so that an all-or-nothing run
	// stops before anything starts.
	for i, t := range r.tasks {
		if len(r.fitting(t)) == 0 {
			r.fail(i, r.noEndpointError(t))
		}
	}
	for i := range r.tasks {
		if r.state[i] == waiting && r.pending[i] == 0 {
			r.enqueue(i)
		}
	}
	done := ctx.Done()
	for {
		r.dispatch()
		if r.running == 0 && r.sleepers == 0 {
			break
		}
		select {
		case res := <-r.results:
			if res.ep < 0 {
				r.sleepers--
				r.wake(res.task)
			} else {
				r.finishAttempt(res)
			}
		case <-done:
			done = nil
			r.stop()
		}
	}
	r.finalize(ctx)
}

// fitting returns the endpoints (alive or not) that support t's platforms.
func (r *run) fitting(t Task) []*endpointState {
	var out []*endpointState
	for _, e := range r.eps {
		if Supports(e.Platforms, t.Platforms) {
			out = append(out, e)
		}
	}
	return out
}

// eligible reports whether t may run on e: e supports t's platforms, and, when some live
// endpoint declares them (builds them natively), e is one of those.
func (r *run) eligible(e *endpointState, t Task) bool {
	if e.dead || !Supports(e.Platforms, t.Platforms) {
		return false
	}
	if len(e.Platforms) > 0 || len(t.Platforms) == 0 {
		return true
	}
	return !slices.ContainsFunc(r.eps, func(n *endpointState) bool {
		return !n.dead && len(n.Platforms) > 0 && Supports(n.Platforms, t.Platforms)
	})
}

// Supports reports whether an endpoint declaring have (empty: any) builds all of want.
func Supports(have, want []string) bool {
	if len(have) == 0 {
		return true
	}
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h string) bool { return normalize(h) == normalize(w) }) {
			return false
		}
	}
	return true
}

// normalize makes "linux/arm64/v8" and "linux/arm64" compare equal, as
// BuildKit would.
func normalize(p string) string {
	spec, err := platforms.Parse(p)
	if err != nil {
		return p
	}
	return platforms.Format(platforms.Normalize(spec))
}

func (r *run) noEndpointError(t Task) error {
	var eps []string
	for _, e := range r.eps {
		name := e.Name
		if name == "" {
			name = "the default engine"
		}
		plats := "any platform"
		if len(e.Platforms) > 0 {
			plats = strings.Join(e.Platforms, ", ")
		}
		eps = append(eps, fmt.Sprintf("%s (%s)", name, plats))
	}
	return fmt.Errorf("no build endpoint supports the platforms %s: the endpoints are %s", strings.Join(t.Platforms, ", "), strings.Join(eps, "; "))
}

func (r *run) enqueue(i int) {
	r.state[i] = queued
	pos, _ := slices.BinarySearch(r.queue, i)
	r.queue = slices.Insert(r.queue, pos, i)
	r.event(Event{Kind: EventQueued, Task: r.tasks[i].ID})
}

// dispatch starts queued tasks while there are slots.
func (r *run) dispatch() {
	for k := 0; k < len(r.queue) && !r.stopped && r.running < r.opts.Jobs; {
		i := r.queue[k]
		var best *endpointState
		var alive int
		bestIdx := -1
		for ei, e := range r.eps {
			if !r.eligible(e, r.tasks[i]) {
				continue
			}
			alive++
			if e.free > 0 && (best == nil || e.free > best.free) {
				best, bestIdx = e, ei
			}
		}
		switch {
		case alive == 0:
			r.queue = slices.Delete(r.queue, k, k+1)
			r.fail(i, r.goneError(i))
		case best == nil:
			k++ // wait for a slot; later tasks may fit elsewhere
		default:
			r.queue = slices.Delete(r.queue, k, k+1)
			r.start(i, bestIdx)
		}
	}
}

// goneError is the error of a task whose endpoints are all gone: its last
// error, else why its endpoints were lost.
func (r *run) goneError(i int) error {
	if err := r.lastErr[i]; err != nil {
		return err
	}
	var errs []error
	for _, e := range r.fitting(r.tasks[i]) {
		errs = append(errs, fmt.Errorf("endpoint %q is gone: %w", e.Name, e.lostErr))
	}
	return errors.Join(errs...)
}

func (r *run) start(i, ei int) {
	e := r.eps[ei]
	e.free--
	r.running++
	r.state[i] = running
	t := r.tasks[i]
	r.event(Event{Kind: EventStarted, Task: t.ID, Endpoint: e.Name, Attempt: len(r.out[i].Attempts) + 1})
	go func() {
		a := Attempt{Endpoint: e.Name, Started: time.Now()}
		a.Err = r.do(r.ctx, t, e.Name)
		a.Finished = time.Now()
		r.results <- result{task: i, ep: ei, attempt: a}
	}()
}

func (r *run) finishAttempt(res result) {
	i, e, err := res.task, r.eps[res.ep], res.attempt.Err
	e.free++
	r.running--
	o := r.out[i]
	o.Attempts = append(o.Attempts, res.attempt)
	n := len(o.Attempts)
	id := r.tasks[i].ID
	switch {
	case err == nil:
		r.finish(i, Done, nil)
		for _, c := range r.children[i] {
			if r.pending[c]--; r.pending[c] == 0 && r.state[c] == waiting && !r.stopped {
				r.enqueue(c)
			}
		}
	case r.stopped:
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || r.opts.Lost(err) || r.opts.Transient(err) {
			r.finish(i, Cancelled, err)
		} else {
			r.fail(i, err)
		}
	case r.opts.Lost(err):
		r.lastErr[i] = err
		if !e.dead {
			e.dead, e.lostErr = true, err
			r.event(Event{Kind: EventEndpointLost, Endpoint: e.Name, Err: err})
		}
		r.event(Event{Kind: EventRequeued, Task: id, Endpoint: e.Name, Attempt: n, Err: err})
		r.enqueue(i)
	case r.opts.Transient(err) && r.retried[i] < r.retries:
		r.lastErr[i] = err
		r.retried[i]++
		d := r.opts.Backoff(r.retried[i])
		r.event(Event{Kind: EventRetrying, Task: id, Endpoint: e.Name, Attempt: n, Err: err, Delay: d})
		r.state[i] = sleeping
		r.sleepers++
		go func() {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.ctx.Done():
			}
			r.results <- result{task: i, ep: -1}
		}()
	default:
		r.fail(i, err)
	}
}

// wake queues a task whose backoff is over, unless the run stopped.
func (r *run) wake(i int) {
	if r.stopped {
		r.finish(i, Cancelled, r.lastErr[i])
		return
	}
	r.enqueue(i)
}

func (r *run) finish(i int, s State, err error) {
	r.state[i] = finished
	r.out[i].State, r.out[i].Err = s, err
	r.event(Event{Kind: EventFinished, Task: r.tasks[i].ID, State: s, Err: err})
}

// fail ends task i with err, its descendants as parent_failed, and the run
// unless KeepGoing.
func (r *run) fail(i int, err error) {
	r.finish(i, Failed, err)
	var mark func(p int)
	mark = func(p int) {
		for _, c := range r.children[p] {
			if r.state[c] == waiting {
				r.finish(c, ParentFailed, fmt.Errorf("not run: %q, which it depends on, failed", r.tasks[i].ID))
				mark(c)
			}
		}
	}
	mark(i)
	if !r.opts.KeepGoing {
		r.stop()
	}
}

func (r *run) stop() {
	r.stopped = true
	r.cancel()
}

// finalize ends the tasks that did not: cancelled when the run stopped,
// failed when their dependencies form a cycle.
func (r *run) finalize(ctx context.Context) {
	for i := range r.tasks {
		if r.state[i] == finished {
			continue
		}
		switch {
		case ctx.Err() != nil:
			r.finish(i, Cancelled, ctx.Err())
		case r.stopped:
			r.finish(i, Cancelled, errors.New("not run: the run stopped after a failure"))
		default:
			r.finish(i, Failed, errors.New("its dependencies never finished: they form a cycle"))
		}
	}
}
