package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/schedule"
)

// pool is the build engines of a run: the one endpoint, or the pool of builder.endpoints. An
// engine is opened when it gets its first image, so an endpoint that is down costs nothing until
// then, and then gives its images back to the others (the scheduler's Lost).
type pool struct {
	endpoints []schedule.Endpoint
	open      func(ctx context.Context, endpoint string) (builder.Builder, error)

	mu      sync.Mutex
	engines map[string]*engine
	closed  atomic.Bool // close ran: nothing opens any more (an engine opened late would leak)
}

// engine is one endpoint's connection, opened once.
type engine struct {
	mu  sync.Mutex
	bld builder.Builder
}

// get returns the engine of an endpoint, opening it the first time; opening one endpoint does
// not wait for another's.
func (p *pool) get(ctx context.Context, endpoint string) (builder.Builder, error) {
	if p.closed.Load() {
		return nil, errPoolClosed
	}
	p.mu.Lock()
	if p.engines == nil {
		p.engines = map[string]*engine{}
	}
	e, ok := p.engines[endpoint]
	if !ok {
		e = &engine{}
		p.engines[endpoint] = e
	}
	p.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if p.closed.Load() && e.bld == nil {
		return nil, errPoolClosed
	}
	if e.bld == nil {
		b, err := p.open(ctx, endpoint)
		if err != nil {
			return nil, err
		}
		e.bld = b
	}
	return e.bld, nil
}

// describe names an endpoint as its engine describes itself once opened, without credentials.
func (p *pool) describe(endpoint string) string {
	p.mu.Lock()
	e := p.engines[endpoint]
	p.mu.Unlock()
	if e != nil && e.mu.TryLock() {
		defer e.mu.Unlock()
		if e.bld != nil {
			return e.bld.Selection().Endpoint
		}
	}
	if endpoint == "" {
		return "the default engine"
	}
	return redact.URL(endpoint)
}

// errPoolClosed is what get returns once the run closed its engines.
var errPoolClosed = errors.New("the run's build engines are closed")

func (p *pool) close() {
	p.closed.Store(true)
	p.mu.Lock()
	engines := make([]*engine, 0, len(p.engines))
	for _, e := range p.engines {
		engines = append(engines, e)
	}
	p.mu.Unlock()
	// An engine being opened is waited for, then closed; one not yet opened never will be.
	for _, e := range engines {
		e.mu.Lock()
		if e.bld != nil {
			e.bld.Close()
			e.bld = nil
		}
		e.mu.Unlock()
	}
}
