package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// gitSpec is a repository to clone, as the params give it.
type gitSpec struct {
	URL, Version, Username, Password string
}

// cloned holds the facts of a finished clone.
type cloned struct {
	URL        string // without credentials
	Commit     string
	CommitTime time.Time
	Ref        string
	Clean      *bool
}

// remote is a repository endpoint with its credentials kept apart from its URL.
type remote struct {
	display string // for messages and results: no password, no http(s) userinfo
	url     string // what go-git gets: no credentials
	ep      *transport.Endpoint
	auth    transport.AuthMethod // nil: none, or go-git's defaults (ssh-agent) for ssh
	local   bool                 // file:// or a path on this machine
	secret  string               // a password found in the URL itself, for redaction
}

// newRemote parses a clone URL and moves credentials out of it: explicit user and pass win
// over userinfo in an http(s) URL, which is otherwise used as the credentials.
func newRemote(raw, user, pass string) (*remote, error) {
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid git URL %q", redact.URL(raw))
	}
	r := &remote{ep: ep, secret: ep.Password}
	switch ep.Protocol {
	case "file":
		r.local, r.url, r.display = true, raw, redact.URL(raw)
		return r, nil
	case "http", "https":
		if user == "" && pass == "" {
			user, pass = ep.User, ep.Password
		}
		ep.User, ep.Password = "", ""
		if user != "" || pass != "" {
			r.auth = &githttp.BasicAuth{Username: user, Password: pass}
		}
	case "ssh":
		if u, p, ok := strings.Cut(ep.User, ":"); ok { // user:pass@host:path
			ep.User, ep.Password, r.secret = u, p, p
		}
		if user != "" {
			ep.User = user
		}
		if pass == "" {
			pass = ep.Password
		}
		ep.Password = ""
		if pass != "" {
			r.auth = &gitssh.Password{User: ep.User, Password: pass}
		}
	default: // git:// and whatever else go-git speaks
		ep.User, ep.Password = "", ""
	}
	r.url = ep.String()
	r.display = redact.URL(r.url)
	if ep.Protocol == "ssh" {
		r.display = redact.URL(raw) // keep the user's spelling (git@host:path), not a password
	}
	return r, nil
}

// sameServer reports whether two endpoints are the same server, so that credentials for one
// may go to the other.
func sameServer(a, b *transport.Endpoint) bool {
	return a.Protocol == b.Protocol && strings.EqualFold(a.Host, b.Host) && a.Port == b.Port
}

// clone clones spec into dir (which must not exist yet) and checks out its version.
func (o *options) clone(ctx context.Context, spec gitSpec, dir string) (*cloned, error) {
	r, err := newRemote(spec.URL, spec.Username, spec.Password)
	if err != nil {
		return nil, masker(spec.URL, spec.Password).Error(err)
	}
	c, err := o.cloneRemote(ctx, r, spec.Version, dir)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		err = fmt.Errorf("cloning %q at %q: %w", r.display, spec.Version, err)
		return nil, masker(spec.URL, spec.Password, r.secret).Error(err)
	}
	return c, nil
}

// explainGitErr adds a hint to go-git's terse transport errors.
func explainGitErr(err error, withAuth bool) error {
	// The server's own text (often an HTML page) is left out.
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired) && withAuth:
		return fmt.Errorf("%w: the server rejected the username or password", transport.ErrAuthenticationRequired)
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return fmt.Errorf("%w: the server needs a username and password", transport.ErrAuthenticationRequired)
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%w: access denied", transport.ErrAuthorizationFailed)
	}
	return err
}

// errVersionNotFound is returned when no ref or commit matches the version.
type errVersionNotFound string

func (e errVersionNotFound) Error() string {
	return fmt.Sprintf("version not found (no branch, tag or commit %q)", string(e))
}

// clonePlan says how to fetch a version: a shallow clone of ref, and/or resolving commit.
type clonePlan struct {
	ref    plumbing.ReferenceName // fetch this ref shallow ("" when only a commit id is known)
	commit string                 // full or abbreviated commit id to end up at ("" for a ref)
}

// planClone decides how to fetch version from a remote that advertises refs. It follows
// `git clone --branch`: a full ref name, then a branch, then a tag, then a commit id.
func planClone(refs []*plumbing.Reference, version string) (clonePlan, error) {
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, r := range refs {
		byName[r.Name()] = r
	}
	if version == "HEAD" {
		head, ok := byName[plumbing.HEAD]
		if !ok {
			return clonePlan{}, errors.New("the remote has no HEAD; give a branch, tag or commit as version")
		}
		if head.Type() == plumbing.SymbolicReference {
			if _, ok := byName[head.Target()]; ok {
				return clonePlan{ref: head.Target()}, nil
			}
		}
		// No symref advertised: name the branch if exactly one points at HEAD's commit.
		var match []plumbing.ReferenceName
		for _, r := range refs {
			if r.Name().IsBranch() && r.Type() == plumbing.HashReference && r.Hash() == head.Hash() {
				match = append(match, r.Name())
			}
		}
		if len(match) == 1 {
			return clonePlan{ref: match[0]}, nil
		}
		return clonePlan{ref: plumbing.HEAD}, nil
	}
	for _, name := range []plumbing.ReferenceName{
		plumbing.ReferenceName(version),
		plumbing.NewBranchReferenceName(version),
		plumbing.NewTagReferenceName(version),
	} {
		if r, ok := byName[name]; ok && strings.HasPrefix(string(name), "refs/") && !strings.HasSuffix(string(name), "^{}") &&
			r.Type() == plumbing.HashReference {
			return clonePlan{ref: name}, nil
		}
	}
	v := strings.ToLower(version)
	if !isHex(v) || len(v) < 4 || len(v) > 40 {
		return clonePlan{}, errVersionNotFound(version)
	}
	if len(v) == 40 {
		// A commit at the tip of a branch or tag can be fetched shallow through that ref.
		var best plumbing.ReferenceName
		for _, r := range refs {
			name := plumbing.ReferenceName(strings.TrimSuffix(string(r.Name()), "^{}"))
			if r.Type() != plumbing.HashReference || r.Hash().String() != v || !(name.IsBranch() || name.IsTag()) {
				continue
			}
			if best == "" || name.IsBranch() && !best.IsBranch() || name.IsBranch() == best.IsBranch() && name < best {
				best = name
			}
		}
		if best != "" {
			return clonePlan{ref: best, commit: v}, nil
		}
	}
	return clonePlan{commit: v}, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// fatal reports errors that no other way of fetching would get past.
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil ||
		errors.Is(err, transport.ErrAuthenticationRequired) ||
		errors.Is(err, transport.ErrAuthorizationFailed) ||
		errors.Is(err, transport.ErrRepositoryNotFound) ||
		errors.Is(err, transport.ErrInvalidAuthMethod)
}

func (o *options) cloneRemote(ctx context.Context, r *remote, version, dir string) (*cloned, error) {
	o.logf("cloning %q at %q", r.display, version)
	lister := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{r.url}})
	refs, err := lister.ListContext(ctx, &git.ListOptions{Auth: r.auth, PeelingOption: git.AppendPeeled})
	if err != nil {
		return nil, explainGitErr(err, r.auth != nil)
	}
	plan, err := planClone(refs, version)
	if err != nil {
		return nil, err
	}

	var repo *git.Repository
	if plan.ref != "" {
		repo, err = o.cloneRef(ctx, r, plan.ref, dir)
		if err != nil {
			return nil, explainGitErr(err, r.auth != nil)
		}
		if plan.commit != "" {
			if head, err := repo.Head(); err != nil || head.Hash().String() != plan.commit {
				repo = nil // the id named a tag object, not a commit: resolve it below
			}
		}
	}
	if repo == nil {
		if repo, err = o.cloneCommit(ctx, r, plan.commit, dir); err != nil {
			return nil, explainGitErr(err, r.auth != nil)
		}
	}
	if err := o.updateSubmodules(ctx, repo, r, 1); err != nil {
		return nil, err
	}

	head, err := repo.Head()
	if err != nil {
		return nil, fmt.Errorf("reading HEAD: %w", err)
	}
	c := &cloned{URL: r.display, Commit: head.Hash().String()}
	if plan.commit == "" && plan.ref != plumbing.HEAD {
		c.Ref = plan.ref.String()
	}
	c.Clean = workTreeClean(repo)
	c.CommitTime = commitTime(repo, head.Hash(), c.Clean)
	if c.Ref != "" {
		o.logf("checked out %s (%s)", c.Commit, c.Ref)
	} else {
		o.logf("checked out %s", c.Commit)
	}
	return c, nil
}

// cloneRef clones one ref shallow, or in full when the shallow clone fails.
func (o *options) cloneRef(ctx context.Context, r *remote, ref plumbing.ReferenceName, dir string) (*git.Repository, error) {
	opts := &git.CloneOptions{
		URL: r.url, Auth: r.auth, ReferenceName: ref, SingleBranch: true, Depth: 1,
		Tags: git.NoTags, RecurseSubmodules: git.NoRecurseSubmodules,
	}
	repo, err := cloneInto(ctx, dir, opts)
	if err == nil || fatal(ctx, err) {
		return repo, err
	}
	o.logf("shallow clone of %s failed (%v); cloning its full history", ref, err)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	opts.Depth = 0
	return cloneInto(ctx, dir, opts)
}

// cloneCommit fetches a commit by id: a 40-hex id shallow where the server allows fetching
// commits by id, else (and for abbreviated ids) through a full clone.
func (o *options) cloneCommit(ctx context.Context, r *remote, commit, dir string) (*git.Repository, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if len(commit) == 40 {
		repo, err := fetchCommitShallow(ctx, r, commit, dir)
		if err == nil || fatal(ctx, err) {
			return repo, err
		}
		o.logf("cannot fetch commit %s alone (%v); cloning the full history", commit, err)
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	repo, err := cloneInto(ctx, dir, &git.CloneOptions{
		URL: r.url, Auth: r.auth, NoCheckout: true, Tags: git.AllTags,
		RecurseSubmodules: git.NoRecurseSubmodules,
	})
	if err != nil {
		return nil, err
	}
	h, err := repo.ResolveRevision(plumbing.Revision(commit))
	if err != nil {
		return nil, errVersionNotFound(commit)
	}
	return repo, checkout(repo, *h)
}

func fetchCommitShallow(ctx context.Context, r *remote, commit, dir string) (*git.Repository, error) {
	st, wt, err := boundFS(dir)
	if err != nil {
		return nil, err
	}
	repo, err := git.Init(st, wt)
	if err != nil {
		return nil, err
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{r.url}}); err != nil {
		return nil, err
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: git.DefaultRemoteName, Auth: r.auth, Depth: 1, Tags: git.NoTags,
		RefSpecs: []config.RefSpec{config.RefSpec(commit + ":refs/imagebuilder/commit")},
	})
	if err != nil {
		return nil, err
	}
	return repo, checkout(repo, plumbing.NewHash(commit))
}

// boundFS returns the storage and work tree of a repository at dir. Unlike go-git's Plain*
// functions, it uses billy's BoundOS: symlinks are written as the repository has them (the
// default ChrootOS rewrites absolute targets into the clone), and no file operation follows a
// symlink out of dir.
func boundFS(dir string) (*filesystem.Storage, billy.Filesystem, error) {
	wt := osfs.New(dir, osfs.WithBoundOS())
	dot, err := wt.Chroot(git.GitDirName)
	if err != nil {
		return nil, nil, err
	}
	return filesystem.NewStorage(dot, cache.NewObjectLRUDefault()), wt, nil
}

func cloneInto(ctx context.Context, dir string, o *git.CloneOptions) (*git.Repository, error) {
	st, wt, err := boundFS(dir)
	if err != nil {
		return nil, err
	}
	return git.CloneContext(ctx, st, wt, o)
}

func checkout(repo *git.Repository, h plumbing.Hash) error {
	w, err := repo.Worktree()
	if err != nil {
		return err
	}
	if err := w.Checkout(&git.CheckoutOptions{Hash: h, Force: true}); err != nil {
		return fmt.Errorf("checking out %s: %w", h, err)
	}
	return nil
}

// maxSubmoduleDepth bounds submodule recursion, like go-git's default.
const maxSubmoduleDepth = git.DefaultSubmoduleRecursionDepth

// updateSubmodules checks out the submodules of repo, recursively. Credentials only go to
// submodules on the parent's server, and local submodules are only followed from a local
// parent (as git's protocol.file.allow=user does).
func (o *options) updateSubmodules(ctx context.Context, repo *git.Repository, parent *remote, depth int) error {
	w, err := repo.Worktree()
	if err != nil {
		return err
	}
	subs, err := w.Submodules()
	if err != nil {
		return fmt.Errorf("reading .gitmodules: %w", err)
	}
	if len(subs) > 0 && depth > int(maxSubmoduleDepth) {
		return fmt.Errorf("submodules nested deeper than %d levels", maxSubmoduleDepth)
	}
	for _, s := range subs {
		cfg := s.Config()
		sr, err := parent.submodule(cfg.URL)
		if err != nil {
			return fmt.Errorf("submodule %q: %w", cfg.Path, err)
		}
		o.logf("checking out submodule %q from %q", cfg.Path, sr.display)
		err = s.UpdateContext(ctx, &git.SubmoduleUpdateOptions{
			Init: true, RecurseSubmodules: git.NoRecurseSubmodules, Auth: sr.auth,
		})
		if err != nil {
			return fmt.Errorf("submodule %q from %q: %w", cfg.Path, sr.display, explainGitErr(err, sr.auth != nil))
		}
		sub, err := s.Repository()
		if err != nil {
			return fmt.Errorf("submodule %q: %w", cfg.Path, err)
		}
		if err := o.updateSubmodules(ctx, sub, sr, depth+1); err != nil {
			return fmt.Errorf("submodule %q: %w", cfg.Path, err)
		}
	}
	return nil
}

// submodule returns the remote of a submodule URL as written in .gitmodules.
func (r *remote) submodule(raw string) (*remote, error) {
	if strings.HasPrefix(raw, "./") || strings.HasPrefix(raw, "../") {
		// Relative to the parent's remote: same server, same credentials.
		return &remote{display: redact.URL(raw), url: raw, ep: r.ep, auth: r.auth, local: r.local}, nil
	}
	s, err := newRemote(raw, "", "")
	if err != nil {
		return nil, err
	}
	if s.local && !r.local {
		return nil, fmt.Errorf("local URL %q refused in a remote repository", raw)
	}
	if s.auth == nil && sameServer(r.ep, s.ep) {
		s.auth = r.auth
	}
	return s, nil
}

// workTreeClean reports whether the work tree matches HEAD; nil when that cannot be told.
func workTreeClean(repo *git.Repository) *bool {
	w, err := repo.Worktree()
	if err != nil {
		return nil
	}
	st, err := w.Status()
	if err != nil {
		return nil
	}
	clean := st.IsClean()
	return &clean
}

// localGitFacts describes the git checkout a local directory belongs to, if any.
func (o *options) localGitFacts(dir string) (commit, ref string, clean *bool, when time.Time) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return "", "", nil, time.Time{}
	}
	head, err := repo.Head()
	if err != nil {
		return "", "", nil, time.Time{}
	}
	if head.Name().IsBranch() {
		ref = head.Name().String()
	}
	clean = workTreeClean(repo)
	return head.Hash().String(), ref, clean, commitTime(repo, head.Hash(), clean)
}

// commitTime is the committer time of a commit whose work tree is known to be clean (the
// tree then is exactly that commit, so its time stands for the content); zero otherwise.
func commitTime(repo *git.Repository, h plumbing.Hash, clean *bool) time.Time {
	if clean == nil || !*clean {
		return time.Time{}
	}
	c, err := repo.CommitObject(h)
	if err != nil {
		return time.Time{}
	}
	return c.Committer.When
}
