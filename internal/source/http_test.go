package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/params"
)

const dockerfileBody = "FROM busybox\nRUN echo downloaded\n"

// fileServer serves files by path, behind basic auth when user is set.
func fileServer(t *testing.T, user, pass string, files map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); user != "" && (!ok || u != user || p != pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="files"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/forbidden" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("chunked") != "" {
			// No Content-Length: the size limit must hold while reading.
			w.Write([]byte(body[:1]))
			w.(http.Flusher).Flush()
			body = body[1:]
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fetchDockerfile(t *testing.T, d params.DockerfileURL, bc *params.BuildContext, opts ...Option) (*Fetched, string, error) {
	t.Helper()
	ws, parent := newWorkspace(t)
	res, err := Fetch(bg(), params.Source{Dockerfile: &d, BuildContext: bc}, ws, opts...)
	assertOnlyWorkspace(t, parent)
	return res, ws, err
}

func TestDockerfileURL(t *testing.T) {
	const user, canary = "alice", "canary-Df-19be"
	big := strings.Repeat("# padding\n", 300)
	open := fileServer(t, "", "", map[string]string{"/Dockerfile": dockerfileBody, "/big": big})
	closed := fileServer(t, user, canary, map[string]string{"/Dockerfile": dockerfileBody})
	withUserinfo := strings.Replace(closed.URL, "http://", "http://"+user+":"+canary+"@", 1)
	sum := sha256.Sum256([]byte(dockerfileBody))

	for _, tt := range []struct {
		name    string
		d       params.DockerfileURL
		opts    []Option
		wantErr string
	}{
		{name: "plain", d: params.DockerfileURL{URL: open.URL + "/Dockerfile"}},
		{name: "basic auth", d: params.DockerfileURL{URL: closed.URL + "/Dockerfile", Username: user, Password: canary}},
		{name: "credentials in URL", d: params.DockerfileURL{URL: withUserinfo + "/Dockerfile"}},
		{name: "token in the query", d: params.DockerfileURL{URL: open.URL + "/Dockerfile?token=" + canary}},
		{
			name:    "token in the query, not found",
			d:       params.DockerfileURL{URL: open.URL + "/nope?X-Amz-Signature=" + canary + "&x=1"},
			wantErr: `downloading dockerfile "` + open.URL + `/nope?X-Amz-Signature=********&x=********": HTTP 404 Not Found: no such file on the server`,
		},
		{
			name:    "wrong password",
			d:       params.DockerfileURL{URL: closed.URL + "/Dockerfile", Username: user, Password: canary + "-wrong"},
			wantErr: `downloading dockerfile "` + closed.URL + `/Dockerfile": HTTP 401 Unauthorized: the server rejected the username or password`,
		},
		{
			name:    "no credentials",
			d:       params.DockerfileURL{URL: closed.URL + "/Dockerfile"},
			wantErr: `downloading dockerfile "` + closed.URL + `/Dockerfile": HTTP 401 Unauthorized: the server needs a username and password`,
		},
		{
			name:    "forbidden",
			d:       params.DockerfileURL{URL: withUserinfo + "/forbidden"},
			wantErr: `downloading dockerfile "` + closed.URL + `/forbidden": HTTP 403 Forbidden: access denied`,
		},
		{
			name:    "not found",
			d:       params.DockerfileURL{URL: withUserinfo + "/nope"},
			wantErr: `downloading dockerfile "` + closed.URL + `/nope": HTTP 404 Not Found: no such file on the server`,
		},
		{
			name:    "too large",
			d:       params.DockerfileURL{URL: open.URL + "/big"},
			opts:    []Option{WithLimits(Limits{DockerfileBytes: 1000})},
			wantErr: `downloading dockerfile "` + open.URL + `/big": larger than the limit of 1000 bytes`,
		},
		{
			name:    "too large without a length",
			d:       params.DockerfileURL{URL: open.URL + "/big?chunked=1"},
			opts:    []Option{WithLimits(Limits{DockerfileBytes: 1000})},
			wantErr: `downloading dockerfile "` + open.URL + `/big?chunked=********": larger than the limit of 1000 bytes`,
		},
		{
			name:    "not http",
			d:       params.DockerfileURL{URL: "ftp://" + user + ":" + canary + "@host/Dockerfile"},
			wantErr: `downloading dockerfile: invalid URL "ftp://host/Dockerfile": want http:// or https://`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var l logs
			res, ws, err := fetchDockerfile(t, tt.d, nil, append(tt.opts, l.option())...)
			noSecret(t, canary, err, res, l.String())
			if !wantError(t, err, tt.wantErr) {
				return
			}
			if got := readFile(t, res.Dockerfile); got != dockerfileBody {
				t.Errorf("Dockerfile = %q", got)
			}
			if res.Dockerfile != filepath.Join(ws, dockerfileDir, "Dockerfile") || res.ContextDir != filepath.Join(ws, contextDir) {
				t.Errorf("paths = %s, %s", res.Dockerfile, res.ContextDir)
			}
			if entries, err := os.ReadDir(res.ContextDir); err != nil || len(entries) != 0 {
				t.Errorf("context dir: %v, %v; want it empty", entries, err)
			}
			if res.Kind != KindDockerfile || res.SHA256 != hex.EncodeToString(sum[:]) || strings.Contains(res.URL, "@") {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

func TestDockerfileURLTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall" {
			w.Write([]byte("FROM x\n"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	for path, want := range map[string]string{
		"/slow":  "timed out: no response from the server within 100ms",
		"/stall": "timed out: no data from the server for 100ms",
	} {
		t.Run(path, func(t *testing.T) {
			start := time.Now()
			_, _, err := fetchDockerfile(t, params.DockerfileURL{URL: srv.URL + path}, nil, WithTimeout(100*time.Millisecond))
			if err == nil || err.Error() != `downloading dockerfile "`+srv.URL+path+`": `+want {
				t.Errorf("error = %v, want %q", err, want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(bg(), 100*time.Millisecond)
		defer cancel()
		ws, _ := newWorkspace(t)
		_, err := Fetch(ctx, params.Source{Dockerfile: &params.DockerfileURL{URL: srv.URL + "/slow"}}, ws)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want the context's deadline", err)
		}
	})
}

// TestDockerfileWithBuildContext: the downloaded Dockerfile is built even when the context
// repository has a Dockerfile of its own.
func TestDockerfileWithBuildContext(t *testing.T) {
	const user, canary = "bob", "canary-Bc-55e0"
	r := makeRepo(t)
	if err := os.Symlink("/etc", filepath.Join(r.dir, "etc")); err != nil {
		t.Fatal(err)
	}
	runGit(t, r.dir, "add", "-A")
	runGit(t, r.dir, "commit", "-q", "-m", "link")
	head := runGit(t, r.dir, "rev-parse", "HEAD")
	root := t.TempDir()
	serveBare(t, r.dir, root, "ctx")
	gitSrv := newGitServer(t, root, user, canary)
	files := fileServer(t, user, canary, map[string]string{"/Dockerfile": dockerfileBody})
	d := params.DockerfileURL{URL: files.URL + "/Dockerfile", Username: user, Password: canary}

	for _, tt := range []struct {
		name       string
		bc         params.BuildContext
		commit     string
		ctxSubpath string
		wantErr    string
	}{
		{name: "root", bc: params.BuildContext{URL: "file://" + r.dir}, commit: head, ctxSubpath: "."},
		{name: "subdir and tag", bc: params.BuildContext{URL: r.dir, Version: "v1", Subdir: "sub"}, commit: r.first, ctxSubpath: "sub"},
		{
			name:   "authenticated",
			bc:     params.BuildContext{URL: gitSrv.URL + "/ctx.git", Username: user, Password: canary, Subdir: "app"},
			commit: head, ctxSubpath: "app",
		},
		{
			name:    "subdir outside",
			bc:      params.BuildContext{URL: r.dir, Subdir: "../.."},
			wantErr: `build context "` + r.dir + `" at "HEAD": subdir "../.." leaves its root directory`,
		},
		{
			name:    "subdir through a symlink",
			bc:      params.BuildContext{URL: r.dir, Subdir: "etc"},
			wantErr: `build context "` + r.dir + `" at "HEAD": subdir "etc" leaves its root directory through a symlink`,
		},
		{
			name:    "wrong password",
			bc:      params.BuildContext{URL: gitSrv.URL + "/ctx.git", Username: user, Password: "x" + canary},
			wantErr: `cloning "` + gitSrv.URL + `/ctx.git" at "HEAD": authentication required: the server rejected the username or password`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var l logs
			res, ws, err := fetchDockerfile(t, d, &tt.bc, l.option())
			noSecret(t, canary, err, res, l.String())
			if !wantError(t, err, tt.wantErr) {
				return
			}
			if got := readFile(t, res.Dockerfile); got != dockerfileBody {
				t.Errorf("built Dockerfile = %q, want the downloaded one", got)
			}
			if want := filepath.Join(ws, repoDir, tt.ctxSubpath); res.ContextDir != want {
				t.Errorf("ContextDir = %s, want %s", res.ContextDir, want)
			}
			if inside(res.ContextDir, res.Dockerfile) {
				t.Errorf("Dockerfile %s is inside the context %s", res.Dockerfile, res.ContextDir)
			}
			if tt.ctxSubpath == "." && !strings.Contains(readFile(t, filepath.Join(res.ContextDir, "Dockerfile")), "FROM scratch") {
				t.Error("the context's own Dockerfile was changed")
			}
			if res.Commit != tt.commit || res.ContextURL == "" || res.URL != files.URL+"/Dockerfile" || res.Clean == nil {
				t.Errorf("result = %+v, want commit %s", res, tt.commit)
			}
		})
	}
}
