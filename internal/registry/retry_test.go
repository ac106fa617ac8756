package registry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/imagebuilder/imagebuilder/internal/registry"
)

// flaky answers the first requests for manifests (or, with all, any first requests) with
// status, then passes everything to h; it counts the requests it could fail.
type flaky struct {
	h        http.Handler
	status   int
	all      bool
	failures atomic.Int32 // left to give
	requests atomic.Int32 // matching requests seen
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.all || strings.Contains(r.URL.Path, "/manifests/") {
		f.requests.Add(1)
		if f.failures.Add(-1) >= 0 {
			writeError(w, f.status, "UNAVAILABLE", "try again")
			return
		}
	}
	f.h.ServeHTTP(w, r)
}

func TestRetryTransient(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		status   int
		all      bool // fail the first requests whatever they are (the ping first)
		attempts int
		failures int32
		wantOK   bool
	}{
		{http.StatusServiceUnavailable, true, 3, 2, true},
		{http.StatusServiceUnavailable, false, 3, 2, true},
		{http.StatusInternalServerError, false, 3, 2, true},
		{http.StatusBadGateway, false, 4, 3, true},
		{http.StatusGatewayTimeout, true, 2, 1, true},
		{http.StatusServiceUnavailable, true, 2, 2, false},
		{http.StatusServiceUnavailable, false, 2, 2, false},
		{http.StatusServiceUnavailable, false, 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/all=%v/attempts=%d/failures=%d", tt.status, tt.all, tt.attempts, tt.failures), func(t *testing.T) {
			f := &flaky{h: memRegistry(), status: tt.status, all: tt.all}
			host := serve(t, f)
			ref := host + "/retry/app:v1"
			want := push(t, ref, image(t, "linux/amd64", false))
			f.requests.Store(0)
			f.failures.Store(tt.failures)

			c := newClient(t, noKeychain, registry.WithRetry(tt.attempts, time.Millisecond))
			d, err := c.Resolve(ctx, ref)
			if tt.wantOK {
				if err != nil || d.Digest != want {
					t.Fatalf("Resolve = %+v, %v; want %s after retries", d, err, want)
				}
				if got := f.requests.Load(); !tt.all && got != tt.failures+1 {
					t.Errorf("%d manifest requests, want %d", got, tt.failures+1)
				}
				if f.failures.Load() >= 0 {
					t.Errorf("%d failures not consumed", f.failures.Load()+1)
				}
				return
			}
			var terr *transport.Error
			if !errors.As(err, &terr) || terr.StatusCode != tt.status || !strings.Contains(err.Error(), ref) {
				t.Fatalf("Resolve: err = %v, want a %d error naming %s", err, tt.status, ref)
			}
			if got := f.requests.Load(); got != int32(tt.attempts) {
				t.Errorf("%d requests, want %d (one per attempt)", got, tt.attempts)
			}
		})
	}
}

// TestRetryTransientWrites checks that a manifest PUT (Tag) is retried too.
func TestRetryTransientWrites(t *testing.T) {
	ctx := context.Background()
	var puts, failures atomic.Int32
	h := memRegistry()
	host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			puts.Add(1)
			if failures.Add(-1) >= 0 {
				writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "try again")
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	digest := push(t, host+"/retry/app:v1", image(t, "linux/amd64", false))
	puts.Store(0)
	failures.Store(2)
	c := newClient(t, noKeychain, registry.WithRetry(3, time.Millisecond))
	if err := c.Tag(ctx, host+"/retry/app@"+digest, host+"/retry/app:v2"); err != nil {
		t.Fatalf("Tag: %v", err)
	}
	if got := puts.Load(); got != 3 {
		t.Errorf("%d manifest PUTs, want 3", got)
	}
}

func TestNoRetryOn4xx(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		status int
		want   error
	}{
		{http.StatusNotFound, registry.ErrNotFound},
		{http.StatusUnauthorized, registry.ErrUnauthorized},
		{http.StatusForbidden, registry.ErrUnauthorized},
		{http.StatusTooManyRequests, nil},
		{http.StatusBadRequest, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			f := &flaky{h: memRegistry(), status: tt.status}
			f.failures.Store(1 << 20)
			host := serve(t, f)
			ref := host + "/retry/app:v1"
			_, err := newClient(t, noKeychain, registry.WithRetry(5, time.Millisecond)).Resolve(ctx, ref)
			if err == nil || !strings.Contains(err.Error(), ref) {
				t.Fatalf("Resolve: err = %v, want an error naming %s", err, ref)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Resolve: err = %v, want %v", err, tt.want)
			}
			if got := f.requests.Load(); got != 1 {
				t.Errorf("%d manifest requests, want 1 (no retry)", got)
			}
		})
	}
}
