package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// Source kinds, as reported in Fetched.Kind.
const (
	KindGit        = params.KindGit
	KindDockerfile = params.KindDockerfile
	KindTar        = params.KindTar
	KindLocal      = params.KindLocal
)

// ReadFile reads a file of the source, given by its absolute path below Root, without
// following any link out of Root (a repository's symlink to /etc/shadow, say). A missing file
// is an error wrapping fs.ErrNotExist.
func (r *Fetched) ReadFile(name string) ([]byte, error) {
	rel, err := filepath.Rel(r.Root, name)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("%q is not inside the source", name)
	}
	root, err := os.OpenRoot(r.Root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	data, err := root.ReadFile(rel)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			// Name the file as the source has it, not the workspace path.
			return nil, fmt.Errorf("%s: %w", filepath.ToSlash(rel), pe.Err)
		}
		return nil, err
	}
	return data, nil
}

// Resolve resolves rel, a slash-separated path relative to base (Root or a directory below
// it), following symlinks, and checks that the result stays inside Root and is an existing
// directory (dir) or regular file. Errors start with the quoted rel; a missing path wraps
// fs.ErrNotExist.
func (r *Fetched) Resolve(base, rel string, dir bool) (string, error) {
	from, err := filepath.Rel(r.Root, base)
	if err != nil || (from != "." && !filepath.IsLocal(from)) {
		return "", fmt.Errorf("%q is not inside the source", base)
	}
	joined := path.Join(filepath.ToSlash(from), rel)
	if path.IsAbs(rel) || joined == ".." || strings.HasPrefix(joined, "../") {
		return "", fmt.Errorf("%q leaves its root directory", rel)
	}
	p, err := resolveIn(r.Root, joined, dir)
	if errors.Is(err, errNotFound) {
		return "", fmt.Errorf("%q: %w", rel, fs.ErrNotExist)
	}
	if err != nil {
		return "", fmt.Errorf("%q%s", rel, strings.TrimPrefix(err.Error(), fmt.Sprintf("%q", joined)))
	}
	return p, nil
}

// Fetched is a fetched source: where the build context and the Dockerfile are, and facts about
// where they came from. No field ever holds a credential.
type Fetched struct {
	// Kind is git, dockerfile, tar or local.
	Kind string
	// Root is the directory the source was fetched into (the local directory itself for a
	// local source); ContextDir and Dockerfile lie below it. Read files of the source with
	// ReadFile, which keeps to it.
	Root string
	// ContextDir is the absolute path of the build context directory.
	ContextDir string
	// Dockerfile is the absolute path of the Dockerfile to build. It may lie outside ContextDir
	// (a downloaded Dockerfile does).
	Dockerfile string
	// URL is the source URL without credentials: the git repository, the Dockerfile URL or the
	// tarball URL; "" for local directories and local tarballs.
	URL string
	// ContextURL is the build_context repository URL without credentials (dockerfile kind).
	ContextURL string
	// Commit is the resolved 40-hex commit of a git source (git_repo or build_context), or of
	// the checkout a local directory belongs to.
	Commit string
	// Ref is the ref the commit was resolved from (refs/heads/main, refs/tags/v1); "" when a
	// commit id was asked for or HEAD is detached.
	Ref string
	// Clean tells whether the git work tree matches its commit; nil when not known.
	Clean *bool
	// CommitTime is the committer time of Commit when the work tree is clean (zero otherwise);
	// it stands for the content's time, so rebuilds of one commit are reproducible.
	CommitTime time.Time
	// SHA256 is the hex sha256 of the downloaded Dockerfile (dockerfile kind) or of the tarball
	// as read (tar kind).
	SHA256 string
}

// Limits bound what downloads and tarballs may hold. A zero field means its default.
type Limits struct {
	// DockerfileBytes caps the size of a downloaded Dockerfile (default 1 MiB).
	DockerfileBytes int64
	// TarBytes caps the total size of the files in a tarball (default 8 GiB).
	TarBytes int64
	// TarEntries caps the number of entries in a tarball (default 1,000,000).
	TarEntries int
}

// DefaultLimits are the limits used unless WithLimits says otherwise.
var DefaultLimits = Limits{
	DockerfileBytes: 1 << 20,
	TarBytes:        8 << 30,
	TarEntries:      1_000_000,
}

// DefaultTimeout is how long an http(s) download waits for the server by default.
const DefaultTimeout = 60 * time.Second

// Option configures Fetch.
type Option func(*options) error

type options struct {
	client      *http.Client
	timeout     time.Duration
	limits      Limits
	log         func(string)
	contextOnly bool
}

// WithHTTPClient sets the client for Dockerfile and tarball downloads (default
// http.DefaultClient). Git over http(s) uses go-git's own transport.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("WithHTTPClient: nil client")
		}
		o.client = c
		return nil
	}
}

// WithTimeout sets how long a Dockerfile or tarball download waits for the server: for the
// response headers, and then between reads of the body (default DefaultTimeout). Clones are
// bounded by the context only.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("WithTimeout: %s is not a positive duration", d)
		}
		o.timeout = d
		return nil
	}
}

// WithLimits overrides the download and extraction limits; zero fields keep their defaults.
func WithLimits(l Limits) Option {
	return func(o *options) error {
		if l.DockerfileBytes < 0 || l.TarBytes < 0 || l.TarEntries < 0 {
			return fmt.Errorf("WithLimits: negative limit in %+v", l)
		}
		if l.DockerfileBytes > 0 {
			o.limits.DockerfileBytes = l.DockerfileBytes
		}
		if l.TarBytes > 0 {
			o.limits.TarBytes = l.TarBytes
		}
		if l.TarEntries > 0 {
			o.limits.TarEntries = l.TarEntries
		}
		return nil
	}
}

// ContextsOnly fetches a source that holds build contexts rather than one Dockerfile (a
// family's source, whose images each name their context and Dockerfile inside it): no
// Dockerfile is looked for, Fetched.Dockerfile stays empty (except a downloaded Dockerfile's),
// and ContextDir is the source's workdir (subdir of a build_context), the base of the images'
// contexts. Use Fetched.Resolve to find paths inside it.
func ContextsOnly() Option {
	return func(o *options) error {
		o.contextOnly = true
		return nil
	}
}

// WithLogger receives one progress line per step ("cloning \"https://host/repo\" at \"v1\"").
// Lines never hold credentials.
func WithLogger(log func(line string)) Option {
	return func(o *options) error {
		if log == nil {
			return errors.New("WithLogger: nil function")
		}
		o.log = log
		return nil
	}
}

func (o *options) logf(format string, args ...any) {
	if o.log != nil {
		o.log(fmt.Sprintf(format, args...))
	}
}

// Workspace layout: fixed names below the caller's directory.
const (
	repoDir       = "repo"       // git clone (git_repo or build_context)
	dockerfileDir = "dockerfile" // downloaded Dockerfile, outside any context
	contextDir    = "context"    // empty context of a lone Dockerfile
	tarDir        = "tar"        // extracted tarball
)

// Fetch makes src available as a build context directory and a Dockerfile. Whatever it
// downloads, clones or extracts goes below ws, an existing directory that the caller created
// and removes afterwards (also when Fetch fails). A local directory is used where it is.
// Cancelling ctx stops clones and downloads.
//
// Empty optional fields of src take their documented defaults (params.DefaultVersion,
// params.DefaultDockerfile, params.DefaultWorkdir).
func Fetch(ctx context.Context, src params.Source, ws string, opts ...Option) (*Fetched, error) {
	o := &options{client: http.DefaultClient, timeout: DefaultTimeout, limits: DefaultLimits}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	ws, err := realDir(ws)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	if err := src.Check(); err != nil {
		return nil, err
	}
	src = src.WithDefaults()
	var res *Fetched
	switch src.Kind() {
	case KindGit:
		res, err = o.fetchGitRepo(ctx, src.GitRepo, ws)
	case KindDockerfile:
		res, err = o.fetchDockerfile(ctx, src.Dockerfile, src.BuildContext, ws)
	case KindTar:
		res, err = o.fetchTar(ctx, src.Tar, ws)
	default:
		res, err = o.fetchLocal(src.Local)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (o *options) fetchGitRepo(ctx context.Context, g *params.GitRepo, ws string) (*Fetched, error) {
	dir := filepath.Join(ws, repoDir)
	c, err := o.clone(ctx, gitSpec{URL: g.URL, Version: g.Version, Username: g.Username, Password: g.Password}, dir)
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("repository %q at %q", c.URL, g.Version)
	df, ctxDir, err := o.resolveBuildPaths(dir, g.Dockerfile, g.Workdir, where)
	if err != nil {
		return nil, err
	}
	return &Fetched{
		Kind: KindGit, Root: dir, ContextDir: ctxDir, Dockerfile: df,
		URL: c.URL, Commit: c.Commit, Ref: c.Ref, Clean: c.Clean, CommitTime: c.CommitTime,
	}, nil
}

func (o *options) fetchDockerfile(ctx context.Context, d *params.DockerfileURL, bc *params.BuildContext, ws string) (*Fetched, error) {
	dfDir := filepath.Join(ws, dockerfileDir)
	if err := os.Mkdir(dfDir, 0o755); err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	df := filepath.Join(dfDir, "Dockerfile")
	display, sum, err := o.downloadFile(ctx, d.URL, d.Username, d.Password, df)
	if err != nil {
		return nil, err
	}
	// The downloaded Dockerfile and the context both lie below the workspace.
	res := &Fetched{Kind: KindDockerfile, Root: ws, Dockerfile: df, URL: display, SHA256: sum}
	if bc == nil {
		res.ContextDir = filepath.Join(ws, contextDir)
		if err := os.Mkdir(res.ContextDir, 0o755); err != nil {
			return nil, fmt.Errorf("workspace: %w", err)
		}
		return res, nil
	}
	dir := filepath.Join(ws, repoDir)
	c, err := o.clone(ctx, gitSpec{URL: bc.URL, Version: bc.Version, Username: bc.Username, Password: bc.Password}, dir)
	if err != nil {
		return nil, err
	}
	res.ContextDir, err = resolveIn(dir, bc.Subdir, true)
	if err != nil {
		return nil, fmt.Errorf("build context %q at %q: subdir %w", c.URL, bc.Version, err)
	}
	res.ContextURL, res.Commit, res.Ref, res.Clean, res.CommitTime = c.URL, c.Commit, c.Ref, c.Clean, c.CommitTime
	return res, nil
}

func (o *options) fetchTar(ctx context.Context, t *params.Tar, ws string) (*Fetched, error) {
	root := filepath.Join(ws, tarDir)
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	res := &Fetched{Kind: KindTar, Root: root}
	var err error
	var where string
	if t.URL != "" {
		res.URL, res.SHA256, err = o.downloadTar(ctx, t.URL, t.Username, t.Password, root)
		where = fmt.Sprintf("tarball %q", res.URL)
	} else {
		res.SHA256, err = o.extractFile(ctx, t.Path, root)
		where = fmt.Sprintf("tarball %q", t.Path)
	}
	if err != nil {
		return nil, err
	}
	res.Dockerfile, res.ContextDir, err = o.resolveBuildPaths(root, t.Dockerfile, t.Workdir, where)
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (o *options) fetchLocal(l *params.Local) (*Fetched, error) {
	root, err := realDir(l.Path)
	if err != nil {
		return nil, fmt.Errorf("local directory: %w", err)
	}
	df, ctxDir, err := o.resolveBuildPaths(root, l.Dockerfile, l.Workdir, fmt.Sprintf("local directory %q", l.Path))
	if err != nil {
		return nil, err
	}
	res := &Fetched{Kind: KindLocal, Root: root, ContextDir: ctxDir, Dockerfile: df}
	res.Commit, res.Ref, res.Clean, res.CommitTime = o.localGitFacts(root)
	return res, nil
}

// resolveBuildPaths resolves a Dockerfile and a context directory, both relative to root; no
// Dockerfile with ContextsOnly.
func (o *options) resolveBuildPaths(root, dockerfile, workdir, where string) (df, ctxDir string, err error) {
	if o.contextOnly {
		ctxDir, err = resolveIn(root, workdir, true)
		if err != nil {
			return "", "", fmt.Errorf("%s: workdir %w", where, err)
		}
		return "", ctxDir, nil
	}
	df, err = resolveIn(root, dockerfile, false)
	if errors.Is(err, errNotFound) && dockerfile == params.DefaultDockerfile {
		// Like docker build, accept a lowercase dockerfile when the default one is missing.
		if alt, altErr := resolveIn(root, "dockerfile", false); altErr == nil {
			df, err = alt, nil
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("%s: dockerfile %w", where, err)
	}
	ctxDir, err = resolveIn(root, workdir, true)
	if err != nil {
		return "", "", fmt.Errorf("%s: workdir %w", where, err)
	}
	return df, ctxDir, nil
}

var errNotFound = errors.New("not found")

// resolveIn resolves rel, a slash-separated path relative to root (an absolute path without
// symlinks), following symlinks, and checks that the result stays inside root, exists and is
// a directory (dir) or a regular file. Errors start with the quoted rel.
func resolveIn(root, rel string, dir bool) (string, error) {
	clean := path.Clean(rel)
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%q leaves its root directory", rel)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(clean)))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%q %w", rel, errNotFound)
		}
		return "", fmt.Errorf("%q: %w", rel, err)
	}
	if !inside(root, real) {
		return "", fmt.Errorf("%q leaves its root directory through a symlink", rel)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%q: %w", rel, err)
	}
	switch {
	case dir && !fi.IsDir():
		return "", fmt.Errorf("%q is not a directory", rel)
	case !dir && !fi.Mode().IsRegular():
		return "", fmt.Errorf("%q is not a regular file", rel)
	}
	return real, nil
}

// inside reports whether p is root or below it; both are clean absolute paths.
func inside(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

// realDir returns the absolute, symlink-free path of an existing directory.
func realDir(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("no directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%q is not a directory", dir)
	}
	return real, nil
}

// masker masks the given secrets and the credentials of rawURL in the errors of a fetch.
func masker(rawURL string, secrets ...string) *redact.Redactor {
	r := redact.New(secrets...)
	r.AddURL(rawURL)
	return r
}
