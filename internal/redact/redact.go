// Package redact masks secret values (passwords, tokens) in strings, byte streams and errors.
// Every front end routes what it prints through a Redactor built from the request's secrets, as
// a last line of defence: the packages below it are written to never put a secret in a message
// in the first place.
package redact

import (
	"bytes"
	"encoding/json"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Mask replaces every secret.
const Mask = "********"

// Redactor replaces secret values with Mask. The zero value and nil redact nothing.
type Redactor struct {
	secrets []string // longest first, so a secret containing another is masked whole
}

// New returns a Redactor for the given secrets; empty strings are ignored. The URL-encoded and
// query-encoded forms of each secret are masked too, since URLs and headers carry them encoded.
func New(secrets ...string) *Redactor {
	seen := map[string]bool{}
	var out []string
	for _, s := range secrets {
		js, _ := json.Marshal(s)
		jsonForm := strings.Trim(string(js), `"`)
		for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s), jsonForm} {
			if v != "" && !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return &Redactor{secrets: out}
}

// String masks the secrets in s.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, Mask)
	}
	return s
}

// Error returns an error whose message is masked; nil stays nil. errors.Is/As still see the
// original chain.
func (r *Redactor) Error(err error) error {
	if err == nil || r == nil || len(r.secrets) == 0 {
		return err
	}
	return &redacted{msg: r.String(err.Error()), err: err}
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// Writer returns a writer that masks secrets before writing to w. It buffers up to the last
// line break so a secret split across two writes is still masked; Close (or Flush) writes the
// rest.
func (r *Redactor) Writer(w io.Writer) *Writer {
	return &Writer{r: r, w: w}
}

// Writer masks secrets line by line.
type Writer struct {
	mu  sync.Mutex
	r   *Redactor
	w   io.Writer
	buf []byte
}

func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	i := bytes.LastIndexAny(w.buf, "\n\r")
	if i < 0 {
		if len(w.buf) < 64<<10 {
			return len(p), nil
		}
		i = len(w.buf) - 1
	}
	out := w.r.String(string(w.buf[:i+1]))
	w.buf = append(w.buf[:0], w.buf[i+1:]...)
	if _, err := io.WriteString(w.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes whatever is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	out := w.r.String(string(w.buf))
	w.buf = w.buf[:0]
	_, err := io.WriteString(w.w, out)
	return err
}

// Close flushes.
func (w *Writer) Close() error { return w.Flush() }
