package testenv

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// GitServer serves the bare repositories below a root over http with Debian's git
// http-backend, behind basic auth when a user is set. It records every password it was sent.
type GitServer struct {
	*httptest.Server
	mu        sync.Mutex
	passwords []string
}

// NewGitServer serves the bare repositories below root (NAME.git) until the test ends; with a
// user, only to that user and password.
func NewGitServer(t testing.TB, root, user, pass string) *GitServer {
	t.Helper()
	backend := GitHTTPBackend(t)
	s := &GitServer{}
	h := &cgi.Handler{
		Path: backend,
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if ok {
			s.mu.Lock()
			s.passwords = append(s.passwords, p)
			s.mu.Unlock()
		}
		if user != "" && (!ok || u != user || p != pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// Passwords returns every password the server was sent, in order.
func (s *GitServer) Passwords() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.passwords...)
}

// ServeRepo serves a one-commit repository of files (as GitRepo makes it, on branch main) over
// http, behind basic auth when user is set, and returns the server and the clone URL,
// http://127.0.0.1:PORT/repo.git.
func ServeRepo(t testing.TB, files map[string]string, user, pass string) (*GitServer, string) {
	t.Helper()
	src := GitRepo(t, files)
	root := t.TempDir()
	cmd := exec.Command("git", "clone", "-q", "--bare", src, filepath.Join(root, "repo.git"))
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git clone --bare: %v\n%s", err, out)
	}
	s := NewGitServer(t, root, user, pass)
	return s, s.URL + "/repo.git"
}
