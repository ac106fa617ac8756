package webui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// TestHandlerServesThePage: the page and its two files with their types and the security
// headers; an unknown path is 404, a POST 405, a repeated GET with the ETag 304.
func TestHandlerServesThePage(t *testing.T) {
	h := Handler()
	for _, c := range []struct{ path, ctype, contains string }{
		{"/", "text/html", `<script src="app.js" defer></script>`},
		{"/app.js", "text/javascript", "text/event-stream"},
		{"/style.css", "text/css", ".state-success"},
	} {
		resp := get(t, h, http.MethodGet, c.path, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", c.path, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, c.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", c.path, ct, c.ctype)
		}
		if !strings.Contains(string(body), c.contains) {
			t.Errorf("GET %s: body lacks %q", c.path, c.contains)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
			t.Errorf("GET %s: CSP %q", c.path, got)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", c.path)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("GET %s: no ETag", c.path)
		}
		if again := get(t, h, http.MethodGet, c.path, map[string]string{"If-None-Match": etag}); again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: %d, want 304", c.path, again.StatusCode)
		}
	}
	for _, p := range []string{"/nope", "/v1/invocations", "/static/app.js", "/app.js/", "/../webui.go"} {
		if resp := get(t, h, http.MethodGet, p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	resp := get(t, h, http.MethodPost, "/", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	// Behind a prefix, through StripPrefix.
	prefixed := http.StripPrefix("/ui", h)
	if resp := get(t, prefixed, http.MethodGet, "/ui/", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /ui/ through StripPrefix: %d", resp.StatusCode)
	}
}

// TestStaticFilesAreSafe: the page inserts API strings as text only and loads nothing from
// elsewhere. It reads the embedded files: no HTML sinks in the script, no inline script, style
// attribute or event handler in the HTML (the CSP would block them), no absolute URL.
func TestStaticFilesAreSafe(t *testing.T) {
	sinks := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|DOMParser|createContextualFragment|setAttribute\(\s*'on|\.on[a-z]+\s*=`)
	inlineHTML := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|\sstyle=|\son[a-z]+=|javascript:`)
	absURL := regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[/"']`)
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		s := string(b)
		if strings.HasSuffix(p, ".js") {
			if m := sinks.FindString(s); m != "" {
				t.Errorf("%s: uses %q; insert API strings with textContent or append", p, m)
			}
		}
		if strings.HasSuffix(p, ".html") {
			if m := inlineHTML.FindString(s); m != "" {
				t.Errorf("%s: inline script, style or handler %q (blocked by the CSP)", p, m)
			}
		}
		if m := absURL.FindString(s); m != "" {
			t.Errorf("%s: refers to %q; the page loads nothing from elsewhere", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
