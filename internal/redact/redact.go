// Package redact is the one place that decides how secrets are kept out of what imagebuilder
// shows or stores: results, progress, logs, errors, validation messages, module facts, TOSCA
// attributes and image labels.
//
// Two mechanisms, used together:
//
//   - [URL] renders a URL for display: user information is dropped (a user name too: tokens
//     travel as user names, and a build host's accounts are nobody's business) and the value of
//     every query parameter is masked, keeping the keys (https://host/Dockerfile?token=********).
//     Every URL or address that imagebuilder prints or stores goes through it.
//   - A [Redactor] masks known secret values wherever they turn up, as a last line of defence:
//     in strings, errors and byte streams. It knows each secret in the forms in which it
//     travels: plain, URL-encoded, JSON-escaped, and base64 "user:password" (Basic
//     authorization, Docker config "auth" entries). Secrets can be added while a run goes on
//     (credentials read from the Docker config, bearer tokens a registry hands out), and a
//     Redactor is safe for concurrent use.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Mask replaces every secret.
const Mask = "********"

// minDerived is the shortest value taken as a secret when it is derived from a URL (a query
// value, a user name that stands alone) rather than given as a secret: short values such as
// "main", "1" or "git" are not credentials, and masking them everywhere would garble output.
const minDerived = 8

// Redactor replaces secret values with Mask and raw credential-bearing URLs with their
// display form. The zero value is ready to use; a nil *Redactor redacts nothing.
type Redactor struct {
	mu       sync.Mutex
	pairs    map[string]string // text -> replacement
	replacer *strings.Replacer // rebuilt lazily after additions
	longest  int               // length of the longest text
}

// New returns a Redactor that masks the given secrets; empty strings are ignored.
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// Add masks each secret in its plain, URL-encoded and JSON-escaped forms. A secret spanning
// several lines (a key file) is also masked line by line, so that output cut at line breaks
// cannot show it.
func (r *Redactor) Add(secrets ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		r.addForms(s)
		if strings.ContainsAny(s, "\r\n") {
			for _, line := range strings.FieldsFunc(s, func(c rune) bool { return c == '\n' || c == '\r' }) {
				if line = strings.TrimSpace(line); len(line) >= 4 {
					r.addForms(line)
				}
			}
		}
	}
}

// addForms adds s in the forms it travels in; r.mu is held.
func (r *Redactor) addForms(s string) {
	if s == "" {
		return
	}
	js, _ := json.Marshal(s)
	for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s), strings.Trim(string(js), `"`)} {
		r.set(v, Mask)
	}
}

// set records one replacement; r.mu is held. A secret wins over a URL rewrite of the same text.
func (r *Redactor) set(text, with string) {
	if text == "" || text == with {
		return
	}
	if r.pairs == nil {
		r.pairs = map[string]string{}
	}
	if prev, ok := r.pairs[text]; ok && (prev == with || prev == Mask) {
		return
	}
	r.pairs[text] = with
	r.replacer = nil
	r.longest = max(r.longest, len(text))
}

// AddBasic masks a password together with the base64 "user:password" forms that Basic
// authorization headers and Docker config "auth" entries carry.
func (r *Redactor) AddBasic(user, password string) {
	if r == nil || password == "" {
		return
	}
	r.Add(password)
	pair := []byte(user + ":" + password)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		r.set(enc.EncodeToString(pair), Mask)
	}
}

// AddAuthorization masks the credential of an HTTP Authorization header value
// ("Bearer TOKEN", "Basic BASE64").
func (r *Redactor) AddAuthorization(header string) {
	header = strings.TrimSpace(header)
	if header == "" {
		return
	}
	if scheme, cred, ok := strings.Cut(header, " "); ok {
		cred = strings.TrimSpace(cred)
		if strings.EqualFold(scheme, "basic") {
			if dec, err := base64.StdEncoding.DecodeString(cred); err == nil {
				if user, pass, ok := strings.Cut(string(dec), ":"); ok {
					r.AddBasic(user, pass)
				}
			}
		}
		r.Add(cred)
		return
	}
	r.Add(header)
}

// AddURL makes raw (and its escaped forms) print as URL(raw), and masks its credentials
// wherever else they turn up: the password of its user information, a user name that stands
// alone in an http(s) URL (tokens are passed that way), and query or fragment values of eight
// characters or more.
func (r *Redactor) AddURL(raw string) {
	if r == nil || raw == "" {
		return
	}
	shown := URL(raw)
	if shown == raw {
		return
	}
	r.Add(urlSecrets(raw)...)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, form := range []string{raw, strings.Trim(mustJSON(raw), `"`)} {
		r.set(form, shown)
	}
	// The query alone, as a library may quote it.
	beforeFrag, _, _ := strings.Cut(raw, "#")
	if _, query, ok := strings.Cut(beforeFrag, "?"); ok && query != "" {
		r.set("?"+query, "?"+maskPairs(query))
	}
}

// urlSecrets finds the credentials in a URL textually, so that URLs which do not parse, or
// parse in surprising ways, give them up too.
func urlSecrets(raw string) []string {
	var out []string
	add := func(v string) {
		out = append(out, v)
		if dec, err := url.PathUnescape(v); err == nil && dec != v {
			out = append(out, dec)
		}
	}
	rest := raw
	var userinfo string
	if start, end, ok := findUserinfo(raw); ok {
		userinfo = raw[start:end]
		rest = raw[end+1:]
	}
	if userinfo != "" {
		user, pass, _ := strings.Cut(userinfo, ":")
		if pass != "" {
			add(pass)
		}
		if (pass == "" || strings.Contains(user, "@")) && len(user) >= minDerived && !strings.HasPrefix(strings.ToLower(raw), "ssh") {
			add(user) // a token passed as the user name
		}
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		for _, part := range strings.FieldsFunc(rest[i+1:], func(c rune) bool { return c == '&' || c == ';' || c == '?' || c == '#' }) {
			if k, v, ok := strings.Cut(part, "="); ok && len(v) >= minDerived && !publicKeys[strings.ToLower(k)] {
				add(v)
				if dec, err := url.QueryUnescape(v); err == nil && dec != v {
					out = append(out, dec)
				}
			}
		}
	}
	return out
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// String masks the secrets in s.
func (r *Redactor) String(s string) string {
	rep := r.current()
	if rep == nil {
		return s
	}
	return rep.Replace(s)
}

// current returns the replacer for the secrets known now, or nil when there are none.
func (r *Redactor) current() *strings.Replacer {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pairs) == 0 {
		return nil
	}
	if r.replacer == nil {
		texts := make([]string, 0, len(r.pairs))
		for t := range r.pairs {
			texts = append(texts, t)
		}
		// Longest first, so that a secret containing another is replaced whole.
		slices.SortFunc(texts, func(a, b string) int {
			if len(a) != len(b) {
				return len(b) - len(a)
			}
			return strings.Compare(a, b)
		})
		args := make([]string, 0, 2*len(texts))
		for _, t := range texts {
			args = append(args, t, r.pairs[t])
		}
		r.replacer = strings.NewReplacer(args...)
	}
	return r.replacer
}

// Error returns an error whose message is masked; nil stays nil. errors.Is and errors.As still
// see the original chain.
func (r *Redactor) Error(err error) error {
	if err == nil || r.current() == nil {
		return err
	}
	msg := r.String(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redacted{msg: msg, err: err}
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// Writer returns a writer that masks secrets before writing to w. It writes whole lines, and
// when a line grows past 64 KiB it writes up to a point that no secret straddles, so a secret
// split across writes is still masked. Close (or Flush) writes the rest.
func (r *Redactor) Writer(w io.Writer) *Writer {
	return &Writer{r: r, w: w}
}

// flushAt is the size at which a Writer writes out part of a line with no line break yet.
const flushAt = 64 << 10

// Writer masks secrets in a byte stream.
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
	cut := bytes.LastIndexAny(w.buf, "\n\r") + 1
	if len(w.buf)-cut >= flushAt {
		cut = w.r.safeCut(w.buf)
	}
	if cut == 0 {
		return len(p), nil
	}
	if err := w.emit(cut); err != nil {
		return 0, err
	}
	return len(p), nil
}

// emit masks and writes buf[:n] and keeps the rest; w.mu is held.
func (w *Writer) emit(n int) error {
	out := w.r.String(string(w.buf[:n]))
	w.buf = append(w.buf[:0], w.buf[n:]...)
	_, err := io.WriteString(w.w, out)
	return err
}

// safeCut returns how much of b can be masked and written now: all but the last
// (longest secret - 1) bytes, moved back to the start of any secret that straddles the cut.
func (r *Redactor) safeCut(b []byte) int {
	if r == nil {
		return len(b)
	}
	r.mu.Lock()
	longest := r.longest
	texts := make([]string, 0, len(r.pairs))
	for t := range r.pairs {
		texts = append(texts, t)
	}
	r.mu.Unlock()
	cut := max(len(b)-max(longest-1, 0), 0)
	for moved := true; moved && cut > 0; {
		moved = false
		for _, t := range texts {
			lo := max(cut-len(t)+1, 0)
			hi := min(cut+len(t)-1, len(b))
			if i := strings.Index(string(b[lo:hi]), t); i >= 0 && lo+i < cut {
				cut, moved = lo+i, true
			}
		}
	}
	return cut
}

// Flush writes whatever is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	return w.emit(len(w.buf))
}

// Close flushes.
func (w *Writer) Close() error { return w.Flush() }

// URL returns s, a URL or address, as it may be shown or stored: without user information and
// with the value of every query parameter (and of every key=value pair in the fragment)
// masked, keys kept. It works on the text, so a URL keeps its spelling and one that does not
// parse is cleaned the same way; scp-like addresses (user@host:path) lose their user too.
// Strings that are not URLs come back unchanged.
func URL(s string) string {
	if start, end, ok := findUserinfo(s); ok {
		s = s[:start] + s[end+1:]
	}
	s, frag, hasFrag := strings.Cut(s, "#")
	if base, query, ok := strings.Cut(s, "?"); ok {
		s = base + "?" + maskPairs(query)
	}
	if hasFrag {
		if strings.Contains(frag, "=") {
			frag = maskPairs(frag)
		}
		s += "#" + frag
	}
	return s
}

// schemePrefix matches "scheme://".
var schemePrefix = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// findUserinfo finds the user information of s: the text before the last "@" of its authority,
// which starts after "scheme://" or "//" (else at the start: scp-like user@host:path) and ends
// at the first "/", "?" or "#". s[start:end] is the user information, s[end] the "@". Without
// a scheme, "user:@" with nothing after it (a scheme with an opaque part, say) is not taken
// for one.
func findUserinfo(s string) (start, end int, ok bool) {
	if m := schemePrefix.FindString(s); m != "" {
		start = len(m)
	} else if strings.HasPrefix(s, "//") {
		start = 2
	}
	rest := s[start:]
	stop := strings.IndexAny(rest, "/?#")
	if stop < 0 {
		stop = len(rest)
	}
	at := strings.LastIndexByte(rest[:stop], '@')
	if at < 0 {
		return 0, 0, false
	}
	end = start + at
	if start == 0 && end+1 == len(s) {
		if _, pass, _ := strings.Cut(s[:end], ":"); pass == "" {
			return 0, 0, false
		}
	}
	return start, end, true
}

// publicKeys are query keys whose values are settings, never credentials: BuildKit's
// connection helpers take them (kube-pod://POD?namespace=NS&context=CTX).
var publicKeys = map[string]bool{"namespace": true, "context": true}

// maskPairs masks the value of every key=value pair of a raw query or fragment, except for the
// few keys known to hold settings (publicKeys).
func maskPairs(raw string) string {
	var b strings.Builder
	start := 0
	for i := 0; i <= len(raw); i++ {
		if i < len(raw) && raw[i] != '&' && raw[i] != ';' {
			continue
		}
		part := raw[start:i]
		if k, v, ok := strings.Cut(part, "="); ok && v != "" && !publicKeys[strings.ToLower(k)] {
			part = k + "=" + Mask
		}
		b.WriteString(part)
		if i < len(raw) {
			b.WriteByte(raw[i])
		}
		start = i + 1
	}
	return b.String()
}

// Strings calls fn for every string (and number, as text) in doc, decoded JSON (maps, slices,
// strings, numbers), with the key of the map entry that holds it, or of the list that does
// ("" at the top).
func Strings(doc any, fn func(key, s string)) {
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(e, k)
			}
		case []any:
			for _, e := range v {
				walk(e, key)
			}
		case string:
			fn(key, v)
		case json.Number:
			fn(key, v.String())
		}
	}
	walk(doc, "")
}
