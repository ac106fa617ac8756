package auth

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter limits the request rate of each principal separately (a token bucket each, from
// golang.org/x/time/rate). A nil *Limiter allows everything.
type Limiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// maxIdleBuckets is how many principals the limiter remembers before it forgets those whose
// bucket is full again (which is the same as never having seen them).
const maxIdleBuckets = 10000

// NewLimiter allows each principal perSecond requests a second on average and bursts of burst
// requests (at least 1). perSecond <= 0 means no limit: it returns nil.
func NewLimiter(perSecond float64, burst int) *Limiter {
	if perSecond <= 0 || math.IsInf(perSecond, 1) || math.IsNaN(perSecond) {
		return nil
	}
	return &Limiter{limit: rate.Limit(perSecond), burst: max(burst, 1), now: time.Now, buckets: map[string]*rate.Limiter{}}
}

// Allow takes one request of name's budget. When none is left it returns false and how long
// until one is (the Retry-After).
func (l *Limiter) Allow(name string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	b := l.buckets[name]
	if b == nil {
		if len(l.buckets) >= maxIdleBuckets {
			l.forgetFull(now)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[name] = b
	}
	l.mu.Unlock()
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// forgetFull drops the buckets that are full; l.mu is held.
func (l *Limiter) forgetFull(now time.Time) {
	for name, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, name)
		}
	}
}
