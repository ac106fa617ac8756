package testenv

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// RegistryProxy is a recording reverse proxy in front of a registry: it records every request
// (method, path, query) and can answer chosen writes with an error instead of forwarding them.
// Tests use it to count what a client asks of the registry and to make one write fail.
type RegistryProxy struct {
	// Host is the proxy's host:port on 127.0.0.1 (a loopback registry: plain HTTP).
	Host string

	mu   sync.Mutex
	reqs []Request
	fail map[string]int // "METHOD PATH" -> status to answer
}

// Request is one request the proxy saw.
type Request struct {
	Method, Path, Query string
	// Status is what the client got (the registry's answer, or the injected failure).
	Status int
}

// String is "METHOD PATH[?QUERY] STATUS".
func (r Request) String() string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	return s + " " + http.StatusText(r.Status)
}

// StartRegistryProxy starts a proxy in front of the registry at target (host:port, plain HTTP);
// it stops when the test ends.
func StartRegistryProxy(t testing.TB, target string) *RegistryProxy {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: target}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // clients that give up on a request are no news
	p := &RegistryProxy{fail: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		status, failing := p.fail[r.Method+" "+r.URL.Path]
		p.mu.Unlock()
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if failing {
			http.Error(rec, `{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}`, status)
		} else {
			// The Host header stays the proxy's: the registry's Location headers (uploads)
			// then point back at the proxy, which sees every request.
			rp.ServeHTTP(rec, r)
		}
		p.mu.Lock()
		p.reqs = append(p.reqs, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: rec.status})
		p.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	p.Host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// Fail makes the proxy answer METHOD PATH with status instead of forwarding it.
func (p *RegistryProxy) Fail(method, path string, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail[method+" "+path] = status
}

// Requests lists the requests seen since the start or the last Reset.
func (p *RegistryProxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.reqs...)
}

// Matching lists the requests seen whose "METHOD PATH?QUERY STATUS" contains every one of parts.
func (p *RegistryProxy) Matching(parts ...string) []Request {
	var out []Request
	for _, r := range p.Requests() {
		s := r.String()
		all := true
		for _, part := range parts {
			all = all && strings.Contains(s, part)
		}
		if all {
			out = append(out, r)
		}
	}
	return out
}

// Reset returns the requests seen since the last Reset, forgets them and the failures.
func (p *RegistryProxy) Reset() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.reqs
	p.reqs = nil
	p.fail = map[string]int{}
	return out
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
