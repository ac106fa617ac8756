package source

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"

	"github.com/imagebuilder/imagebuilder/internal/params"
)

func fetchGit(t *testing.T, g params.GitRepo, opts ...Option) (*Fetched, string, error) {
	t.Helper()
	ws, parent := newWorkspace(t)
	res, err := Fetch(bg(), params.Source{GitRepo: &g}, ws, opts...)
	assertOnlyWorkspace(t, parent)
	return res, ws, err
}

func isShallow(ws string) bool {
	_, err := os.Stat(filepath.Join(ws, repoDir, ".git", "shallow"))
	return err == nil
}

func TestGitVersions(t *testing.T) {
	r := makeRepo(t)
	for _, scheme := range []struct{ name, url string }{
		{"file URL", "file://" + r.dir},
		{"plain path", r.dir},
	} {
		tests := []struct {
			version, commit, ref, content string
			shallow                       bool
		}{
			{"", r.second, "refs/heads/main", "# v2", true},
			{"HEAD", r.second, "refs/heads/main", "# v2", true},
			{"main", r.second, "refs/heads/main", "# v2", true},
			{"feature", r.branch, "refs/heads/feature", "# feature", true},
			{"refs/heads/feature", r.branch, "refs/heads/feature", "# feature", true},
			{"v1", r.first, "refs/tags/v1", "# v1", true},
			{"light", r.first, "refs/tags/light", "# v1", true},
			{r.middle, r.middle, "", "# middle", false},                  // not at a tip: full clone
			{strings.ToUpper(r.middle), r.middle, "", "# middle", false}, // ids are case-insensitive
			{r.second, r.second, "", "# v2", true},                       // tip of main: shallow via main
			{r.first, r.first, "", "# v1", true},                         // tagged: shallow via the tag
			{r.middle[:7], r.middle, "", "# middle", false},
			{r.first[:7], r.first, "", "# v1", false},
			{r.branch[:12], r.branch, "", "# feature", false},
		}
		for _, tt := range tests {
			t.Run(scheme.name+"/"+tt.version, func(t *testing.T) {
				var l logs
				res, ws, err := fetchGit(t, params.GitRepo{URL: scheme.url, Version: tt.version}, l.option())
				if err != nil {
					t.Fatal(err)
				}
				if res.Commit != tt.commit || res.Ref != tt.ref {
					t.Errorf("commit, ref = %s, %q; want %s, %q", res.Commit, res.Ref, tt.commit, tt.ref)
				}
				if got := readFile(t, res.Dockerfile); !strings.Contains(got, tt.content) {
					t.Errorf("Dockerfile = %q, want %q in it", got, tt.content)
				}
				if want := filepath.Join(ws, repoDir); res.ContextDir != want || res.Dockerfile != filepath.Join(want, "Dockerfile") {
					t.Errorf("paths = %s, %s; want the clone at %s", res.ContextDir, res.Dockerfile, want)
				}
				if res.Kind != KindGit || res.URL != scheme.url || res.Clean == nil || !*res.Clean {
					t.Errorf("result = %+v", res)
				}
				if got := isShallow(ws); got != tt.shallow {
					t.Errorf("shallow = %v, want %v; log:\n%s", got, tt.shallow, &l)
				}
			})
		}
	}
}

func TestGitCommitShallowWhenAllowed(t *testing.T) {
	r := makeRepo(t)
	runGit(t, r.dir, "config", "uploadpack.allowReachableSHA1InWant", "true")
	var l logs
	res, ws, err := fetchGit(t, params.GitRepo{URL: "file://" + r.dir, Version: r.middle}, l.option())
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != r.middle || !isShallow(ws) {
		t.Errorf("commit %s, shallow %v; want %s fetched shallow; log:\n%s", res.Commit, isShallow(ws), r.middle, &l)
	}
	if got := readFile(t, res.Dockerfile); !strings.Contains(got, "# middle") {
		t.Errorf("Dockerfile = %q", got)
	}
}

func TestGitMissingVersion(t *testing.T) {
	r := makeRepo(t)
	for _, v := range []string{"v9", "nope/branch", "abcdef1", strings.Repeat("0", 40), "abc"} {
		t.Run(v, func(t *testing.T) {
			_, _, err := fetchGit(t, params.GitRepo{URL: "file://" + r.dir, Version: v})
			if err == nil {
				t.Fatal("no error")
			}
			want := `cloning "file://` + r.dir + `" at "` + v + `": version not found (no branch, tag or commit "` + v + `")`
			if err.Error() != want {
				t.Errorf("error = %q\nwant    %q", err, want)
			}
		})
	}
}

func TestGitMissingRepository(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	_, _, err := fetchGit(t, params.GitRepo{URL: dir})
	if want := `cloning "` + dir + `" at "HEAD": repository not found`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	empty := t.TempDir()
	runGit(t, empty, "init", "-q")
	_, _, err = fetchGit(t, params.GitRepo{URL: empty})
	if want := `cloning "` + empty + `" at "HEAD": remote repository is empty`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestGitPaths(t *testing.T) {
	r := makeRepo(t)
	res, ws, err := fetchGit(t, params.GitRepo{URL: r.dir, Dockerfile: "sub/Dockerfile.sub", Workdir: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(ws, repoDir, "sub", "Dockerfile.sub"); res.Dockerfile != want {
		t.Errorf("Dockerfile = %s, want %s", res.Dockerfile, want)
	}
	if want := filepath.Join(ws, repoDir, "app"); res.ContextDir != want {
		t.Errorf("ContextDir = %s, want %s", res.ContextDir, want)
	}
	if readFile(t, filepath.Join(ws, repoDir, ".dockerignore")) != "secret.txt\n" {
		t.Error(".dockerignore is not in the clone")
	}

	// Paths that do not exist or lead out of the repository.
	if err := os.Symlink("/etc", filepath.Join(r.dir, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(r.dir, "Dockerfile.link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../../../..", filepath.Join(r.dir, "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("app", filepath.Join(r.dir, "app.link")); err != nil {
		t.Fatal(err)
	}
	runGit(t, r.dir, "add", "-A")
	runGit(t, r.dir, "commit", "-q", "-m", "links")
	res, ws, err = fetchGit(t, params.GitRepo{URL: r.dir, Workdir: "app.link"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(ws, repoDir, "app"); res.ContextDir != want {
		t.Errorf("ContextDir = %s, want %s (through the link inside the repository)", res.ContextDir, want)
	}
	if target, err := os.Readlink(filepath.Join(ws, repoDir, "etc")); err != nil || target != "/etc" {
		t.Errorf("etc -> %q, %v; want the link as committed", target, err)
	}
	for _, tt := range []struct {
		g    params.GitRepo
		want string
	}{
		{params.GitRepo{Dockerfile: "missing/Dockerfile"}, `dockerfile "missing/Dockerfile" not found`},
		{params.GitRepo{Workdir: "nope"}, `workdir "nope" not found`},
		{params.GitRepo{Workdir: "Dockerfile"}, `workdir "Dockerfile" is not a directory`},
		{params.GitRepo{Dockerfile: "app"}, `dockerfile "app" is not a regular file`},
		{params.GitRepo{Dockerfile: "../Dockerfile"}, `dockerfile "../Dockerfile" leaves its root directory`},
		{params.GitRepo{Dockerfile: "Dockerfile.link"}, `dockerfile "Dockerfile.link" leaves its root directory through a symlink`},
		{params.GitRepo{Workdir: "etc"}, `workdir "etc" leaves its root directory through a symlink`},
		{params.GitRepo{Workdir: "up"}, `workdir "up" leaves its root directory through a symlink`},
		{params.GitRepo{Workdir: "up/tmp"}, `workdir "up/tmp" leaves its root directory through a symlink`},
	} {
		t.Run(tt.want, func(t *testing.T) {
			tt.g.URL = r.dir
			_, _, err := fetchGit(t, tt.g)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `repository "`+r.dir+`" at "HEAD"`) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestGitLowercaseDockerfile(t *testing.T) {
	dir := t.TempDir()
	runGit(t, dir, "init", "-q")
	writeFiles(t, dir, map[string]string{"dockerfile": "FROM scratch\n"})
	runGit(t, dir, "add", "-A")
	runGit(t, dir, "commit", "-q", "-m", "lower")
	res, _, err := fetchGit(t, params.GitRepo{URL: dir})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(res.Dockerfile) != "dockerfile" {
		t.Errorf("Dockerfile = %s", res.Dockerfile)
	}
}

func makeSuperRepo(t *testing.T, libURL string) (super, lib string) {
	t.Helper()
	lib = t.TempDir()
	runGit(t, lib, "init", "-q")
	writeFiles(t, lib, map[string]string{"lib.txt": "library\n"})
	runGit(t, lib, "add", "-A")
	runGit(t, lib, "commit", "-q", "-m", "lib")
	if libURL == "" {
		libURL = lib
	}
	super = t.TempDir()
	runGit(t, super, "init", "-q")
	writeFiles(t, super, map[string]string{"Dockerfile": "FROM scratch\nCOPY vendor/lib/lib.txt /\n"})
	runGit(t, super, "submodule", "add", "-q", lib, "vendor/lib")
	runGit(t, super, "config", "-f", ".gitmodules", "submodule.vendor/lib.url", libURL)
	runGit(t, super, "add", "-A")
	runGit(t, super, "commit", "-q", "-m", "super")
	return super, lib
}

func TestGitSubmodule(t *testing.T) {
	super, _ := makeSuperRepo(t, "")
	for _, version := range []string{"HEAD", runGit(t, super, "rev-parse", "HEAD")[:8]} {
		t.Run(version, func(t *testing.T) {
			var l logs
			res, _, err := fetchGit(t, params.GitRepo{URL: "file://" + super, Version: version}, l.option())
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(res.ContextDir, "vendor", "lib", "lib.txt")); got != "library\n" {
				t.Errorf("lib.txt = %q", got)
			}
			if res.Clean == nil || !*res.Clean {
				t.Errorf("Clean = %v, want true", res.Clean)
			}
			if !strings.Contains(l.String(), `checking out submodule "vendor/lib"`) {
				t.Errorf("log:\n%s", &l)
			}
		})
	}
}

// TestGitHTTPAuth clones from git http-backend behind basic auth.
func TestGitHTTPAuth(t *testing.T) {
	const user, canary = "builder", "canary-Pw-7f3a9c"
	r := makeRepo(t)
	root := t.TempDir()
	serveBare(t, r.dir, root, "repo")
	srv := newGitServer(t, root, user, canary)
	repoURL := srv.URL + "/repo.git"
	hostURL := strings.Replace(repoURL, "http://", "http://"+user+":"+canary+"@", 1)

	for _, tt := range []struct {
		name    string
		g       params.GitRepo
		wantErr string
	}{
		{name: "credentials", g: params.GitRepo{URL: repoURL, Username: user, Password: canary, Version: "v1"}},
		{name: "credentials in URL", g: params.GitRepo{URL: hostURL, Version: "main"}},
		{name: "commit", g: params.GitRepo{URL: repoURL, Username: user, Password: canary, Version: r.middle}},
		{name: "short commit", g: params.GitRepo{URL: repoURL, Username: user, Password: canary, Version: r.middle[:9]}},
		{
			name:    "wrong password",
			g:       params.GitRepo{URL: repoURL, Username: user, Password: "wrong-" + canary},
			wantErr: `cloning "` + repoURL + `" at "HEAD": authentication required: the server rejected the username or password`,
		},
		{
			name:    "wrong password in URL",
			g:       params.GitRepo{URL: strings.Replace(hostURL, canary, canary+"x", 1)},
			wantErr: `cloning "` + repoURL + `" at "HEAD": authentication required: the server rejected the username or password`,
		},
		{
			name:    "no credentials",
			g:       params.GitRepo{URL: repoURL},
			wantErr: `cloning "` + repoURL + `" at "HEAD": authentication required: the server needs a username and password`,
		},
		{
			name:    "missing version",
			g:       params.GitRepo{URL: repoURL, Username: user, Password: canary, Version: "v9"},
			wantErr: `cloning "` + repoURL + `" at "v9": version not found (no branch, tag or commit "v9")`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var l logs
			res, _, err := fetchGit(t, tt.g, l.option())
			noSecret(t, canary, err, res, l.String())
			if !wantError(t, err, tt.wantErr) {
				return
			}
			if res.URL != repoURL {
				t.Errorf("URL = %q, want %q", res.URL, repoURL)
			}
			if res.Commit == "" || !strings.Contains(readFile(t, res.Dockerfile), "FROM scratch") {
				t.Errorf("result = %+v", res)
			}
			if strings.Contains(l.String(), "shallow clone") {
				t.Errorf("the shallow clone failed over http:\n%s", &l)
			}
		})
	}
}

// TestGitSubmoduleCredentials checks that credentials go to submodules on the same server
// only, and that a remote repository cannot pull in a local one.
func TestGitSubmoduleCredentials(t *testing.T) {
	const user, canary = "builder", "canary-Sub-81d2"
	root := t.TempDir()
	other := newGitServer(t, root, "", "") // another server, no auth
	main := newGitServer(t, root, user, canary)

	check := func(t *testing.T, libURL, wantErr string) {
		t.Helper()
		super, lib := makeSuperRepo(t, libURL)
		name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
		serveBare(t, super, root, name)
		if _, err := os.Stat(filepath.Join(root, "lib.git")); err != nil {
			serveBare(t, lib, root, "lib")
		}
		res, _, err := fetchGit(t, params.GitRepo{URL: main.URL + "/" + name + ".git", Username: user, Password: canary})
		noSecret(t, canary, err, res)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("error = %v, want %q", err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(res.ContextDir, "vendor", "lib", "lib.txt")); got != "library\n" {
			t.Errorf("lib.txt = %q", got)
		}
	}
	t.Run("relative", func(t *testing.T) { check(t, "../lib.git", "") })
	t.Run("same server", func(t *testing.T) { check(t, main.URL+"/lib.git", "") })
	t.Run("other server", func(t *testing.T) {
		check(t, other.URL+"/lib.git", "")
		for _, p := range other.Passwords() {
			if p == canary {
				t.Error("the password was sent to another server")
			}
		}
	})
	t.Run("other server with auth", func(t *testing.T) {
		locked := newGitServer(t, root, "someone", "else")
		check(t, locked.URL+"/lib.git", `submodule "vendor/lib" from "`+locked.URL+
			`/lib.git": authentication required: the server needs a username and password`)
	})
	t.Run("local from remote", func(t *testing.T) {
		check(t, "/etc", `submodule "vendor/lib": local URL "/etc" refused in a remote repository`)
	})
}

func TestGitCancel(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hang.Close()
	ctx, cancel := context.WithTimeout(bg(), 200*time.Millisecond)
	defer cancel()
	ws, _ := newWorkspace(t)
	start := time.Now()
	_, err := Fetch(ctx, params.Source{GitRepo: &params.GitRepo{URL: hang.URL + "/repo.git"}}, ws)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s after cancellation", d)
	}
}

func TestNewRemote(t *testing.T) {
	for _, tt := range []struct {
		raw, user, pass       string
		url, display          string
		authUser, authPass    string
		ssh, local, noAuthSet bool
	}{
		{raw: "https://host/org/repo.git", url: "https://host/org/repo.git", display: "https://host/org/repo.git", noAuthSet: true},
		{raw: "https://u:tok@host:8443/r", url: "https://host:8443/r", display: "https://host:8443/r", authUser: "u", authPass: "tok"},
		{raw: "https://u:tok@host/r", user: "me", pass: "pw", url: "https://host/r", display: "https://host/r", authUser: "me", authPass: "pw"},
		{raw: "http://host/r", pass: "token", url: "http://host/r", display: "http://host/r", authPass: "token"},
		{raw: "git@github.com:org/repo.git", url: "ssh://git@github.com/org/repo.git", display: "github.com:org/repo.git", noAuthSet: true},
		{raw: "ssh://git:pw@host/repo", url: "ssh://git@host/repo", display: "ssh://host/repo", authUser: "git", authPass: "pw", ssh: true},
		{raw: "file:///srv/repo", url: "file:///srv/repo", display: "file:///srv/repo", local: true, noAuthSet: true},
		{raw: "/srv/repo", url: "/srv/repo", display: "/srv/repo", local: true, noAuthSet: true},
		{raw: "../repo", url: "../repo", display: "../repo", local: true, noAuthSet: true},
	} {
		t.Run(tt.raw, func(t *testing.T) {
			r, err := newRemote(tt.raw, tt.user, tt.pass)
			if err != nil {
				t.Fatal(err)
			}
			if r.url != tt.url || r.display != tt.display || r.local != tt.local {
				t.Errorf("url, display, local = %q, %q, %v; want %q, %q, %v", r.url, r.display, r.local, tt.url, tt.display, tt.local)
			}
			switch a := r.auth.(type) {
			case nil:
				if !tt.noAuthSet {
					t.Errorf("no auth")
				}
			case *githttp.BasicAuth:
				if a.Username != tt.authUser || a.Password != tt.authPass || tt.ssh {
					t.Errorf("auth = %q:%q", a.Username, a.Password)
				}
			case *gitssh.Password:
				if a.User != tt.authUser || a.Password != tt.authPass || !tt.ssh {
					t.Errorf("auth = %q:%q", a.User, a.Password)
				}
			default:
				t.Errorf("auth = %T", a)
			}
		})
	}
	if _, err := newRemote("https://u:s3cret@[bad", "", ""); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error = %v", err)
	}
}

func TestPlanClone(t *testing.T) {
	const (
		a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		c = "cccccccccccccccccccccccccccccccccccccccc"
	)
	refs := []*plumbing.Reference{
		plumbing.NewSymbolicReference("HEAD", "refs/heads/main"),
		plumbing.NewReferenceFromStrings("refs/heads/main", a),
		plumbing.NewReferenceFromStrings("refs/heads/dev", b),
		plumbing.NewReferenceFromStrings("refs/heads/both", a),
		plumbing.NewReferenceFromStrings("refs/tags/both", b),
		plumbing.NewReferenceFromStrings("refs/tags/v1", c),
		plumbing.NewReferenceFromStrings("refs/tags/v1^{}", b),
	}
	detached := []*plumbing.Reference{
		plumbing.NewReferenceFromStrings("HEAD", b),
		plumbing.NewReferenceFromStrings("refs/heads/main", a),
		plumbing.NewReferenceFromStrings("refs/heads/dev", b),
	}
	for _, tt := range []struct {
		refs    []*plumbing.Reference
		version string
		want    clonePlan
		wantErr string
	}{
		{refs: refs, version: "HEAD", want: clonePlan{ref: "refs/heads/main"}},
		{refs: detached, version: "HEAD", want: clonePlan{ref: "refs/heads/dev"}},
		{refs: detached[:2], version: "HEAD", want: clonePlan{ref: "HEAD"}},
		{refs: detached[1:], version: "HEAD", wantErr: "no HEAD"},
		{refs: refs, version: "main", want: clonePlan{ref: "refs/heads/main"}},
		{refs: refs, version: "both", want: clonePlan{ref: "refs/heads/both"}},
		{refs: refs, version: "refs/tags/both", want: clonePlan{ref: "refs/tags/both"}},
		{refs: refs, version: "v1", want: clonePlan{ref: "refs/tags/v1"}},
		{refs: refs, version: a, want: clonePlan{ref: "refs/heads/both", commit: a}},
		{refs: refs, version: b, want: clonePlan{ref: "refs/heads/dev", commit: b}},
		{refs: refs, version: c, want: clonePlan{ref: "refs/tags/v1", commit: c}},
		{refs: refs, version: strings.Repeat("d", 40), want: clonePlan{commit: strings.Repeat("d", 40)}},
		{refs: refs, version: "ABCD", want: clonePlan{commit: "abcd"}},
		{refs: refs, version: "abc", wantErr: `version not found (no branch, tag or commit "abc")`},
		{refs: refs, version: "v1^{}", wantErr: "version not found"},
		{refs: refs, version: "main~1", wantErr: "version not found"},
		{refs: refs, version: strings.Repeat("d", 41), wantErr: "version not found"},
	} {
		t.Run(tt.version, func(t *testing.T) {
			got, err := planClone(tt.refs, tt.version)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("plan = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
