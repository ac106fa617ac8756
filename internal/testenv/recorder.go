package testenv

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// RecordingProxy is a reverse proxy in front of a registry that records every request it
// forwards, so a test can count what a client asked of that registry.
type RecordingProxy struct {
	// Addr is the proxy's host:port on 127.0.0.1 (plain HTTP).
	Addr string

	mu   sync.Mutex
	reqs []string
}

// StartRecordingProxy forwards to the plain-HTTP registry at target (host:port) until the test
// ends.
func StartRecordingProxy(t testing.TB, target string) *RecordingProxy {
	t.Helper()
	p := &RecordingProxy{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, r.Method+" "+r.URL.Path)
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.Addr = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// Requests lists the requests forwarded since the start or the last Reset, as "METHOD /path".
func (p *RecordingProxy) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.reqs...)
}

// Matching lists the recorded requests whose "METHOD /path" contains every one of parts.
func (p *RecordingProxy) Matching(parts ...string) []string {
	var out []string
	for _, r := range p.Requests() {
		all := true
		for _, s := range parts {
			all = all && strings.Contains(r, s)
		}
		if all {
			out = append(out, r)
		}
	}
	return out
}

// Reset forgets the requests recorded so far.
func (p *RecordingProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = nil
}
