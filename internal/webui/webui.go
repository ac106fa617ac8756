// Package webui is the build-history page of `imagebuilder serve`: static HTML, CSS and
// JavaScript embedded in the binary (no framework, nothing loaded from elsewhere). The page
// talks to the service's /v1 API with the caller's API key (X-API-Key, kept in the tab's
// sessionStorage): it lists invocations, shows one with its facts and its live log (the SSE
// stream of /v1/invocations/{id}/logs, read with fetch() because EventSource cannot send the
// key), and submits a params or family file.
package webui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy allows only the page's own files and requests to its own origin: every
// string from the API is inserted as text, and this keeps an injected one inert anyway.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Handler serves the page at "/" and its files beside it (mount it at the server's root or
// behind a path prefix with http.StripPrefix: the page's requests are relative). It answers
// GET and HEAD only; an unknown path is 404.
func Handler() http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	etags := map[string]string{}
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		etags["/"+p] = `"` + hex.EncodeToString(sum[:8]) + `"`
		return nil
	})
	etags["/"] = etags["/index.html"]
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := path.Clean("/" + r.URL.Path)
		etag, ok := etags[p]
		if !ok || strings.HasSuffix(r.URL.Path, "/") && p != "/" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		fileServer.ServeHTTP(w, r)
	})
}
