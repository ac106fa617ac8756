package regserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/proxy"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/registry"
)

// The fall-through is a distribution registry middleware (a distribution.Namespace wrapping
// the filesystem storage): every repository is the local one, and reads that the local store
// cannot answer go to distribution's own pull-through proxy for the repository's upstream,
// which caches what it fetches in the same storage. distribution's proxy mode serves one
// upstream and refuses pushes, so it is used only for reads, one proxy instance per upstream,
// chosen by the [Router].

// pushedRoot holds one empty file per tag pushed to this registry
// (pushedRoot/REPOSITORY/_tags/TAG: "_tags" is no repository component, so repository a's tag b
// and repository a/b do not collide): such tags are served locally and never asked upstream, while a
// tag that was only cached from an upstream is asked upstream again (distribution's
// pull-through rule: the upstream's current tag wins, the cached one serves when the upstream
// does not answer).
const pushedRoot = "/imagebuilder/pushed-tags"

// headKey marks a HEAD request in the request context: a HEAD on a blob answers only for the
// blobs this registry holds (a client checks before a push whether to upload), while a GET
// pulls through.
type headKey struct{}

// withMethod records the request's method for the namespace.
func withMethod(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			r = r.WithContext(context.WithValue(r.Context(), headKey{}, true))
		}
		next.ServeHTTP(w, r)
	})
}

func isHead(ctx context.Context) bool { v, _ := ctx.Value(headKey{}).(bool); return v }

// localNameKey carries the local repository name to the proxy's embedded namespace, which
// the proxy asks with the upstream name.
type localNameKey struct{}

// namespace routes every repository to the local storage, with a fall-through to its
// upstream's proxy for reads.
type namespace struct {
	distribution.Namespace                             // the local storage
	driver                 storagedriver.StorageDriver // for the pushed-tag marks
	router                 *Router                     // which upstream
	creds                  CredentialsFunc
	redactor               *redact.Redactor
	log                    *slog.Logger

	mu      sync.Mutex
	proxies map[string]distribution.Namespace // by Upstream.Prefix, made on first use
}

// Remove deletes a repository (the storage supports it; the handlers check for it).
func (n *namespace) Remove(ctx context.Context, name reference.Named) error {
	rr, ok := n.Namespace.(distribution.RepositoryRemover)
	if !ok {
		return distribution.ErrUnsupported
	}
	return rr.Remove(ctx, name)
}

func (n *namespace) Repository(ctx context.Context, name reference.Named) (distribution.Repository, error) {
	local, err := n.Namespace.Repository(ctx, name)
	if err != nil {
		return nil, err
	}
	r := &repository{Repository: local, ns: n}
	u, remote, ok := n.router.Match(name.Name())
	if !ok {
		return r, nil
	}
	remoteNamed, err := reference.WithName(remote)
	if err != nil {
		return r, nil // a name the upstream cannot have: local only
	}
	p, err := n.proxyFor(ctx, u)
	if err != nil {
		// What is stored here is still served; the upstream is tried again next time.
		n.log.Warn("upstream unavailable: serving what is stored here", "repository", name.Name(), "upstream", u.URL, "error", err)
		return r, nil
	}
	r.proxy, err = p.Repository(context.WithValue(ctx, localNameKey{}, name), remoteNamed)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// renaming is the namespace a proxy stores into: the local storage, under the local name of
// the repository the proxy was asked for (the proxy names repositories as the upstream does).
type renaming struct{ distribution.Namespace }

func (n renaming) Repository(ctx context.Context, name reference.Named) (distribution.Repository, error) {
	if local, ok := ctx.Value(localNameKey{}).(reference.Named); ok {
		name = local
	}
	return n.Namespace.Repository(ctx, name)
}

// repository is the local repository, reading through proxy when it has an upstream.
type repository struct {
	distribution.Repository
	ns    *namespace
	proxy distribution.Repository // nil without upstream
}

func (r *repository) Blobs(ctx context.Context) distribution.BlobStore {
	b := &blobs{BlobStore: r.Repository.Blobs(ctx)}
	if r.proxy != nil {
		b.proxy = r.proxy.Blobs(ctx)
	}
	return b
}

func (r *repository) Manifests(ctx context.Context, options ...distribution.ManifestServiceOption) (distribution.ManifestService, error) {
	local, err := r.Repository.Manifests(ctx, options...)
	if err != nil {
		return nil, err
	}
	m := &manifests{ManifestService: local}
	if r.proxy != nil {
		if m.proxy, err = r.proxy.Manifests(ctx); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (r *repository) Tags(ctx context.Context) distribution.TagService {
	t := &tags{TagService: r.Repository.Tags(ctx), driver: r.ns.driver, repo: r.Named().Name()}
	if r.proxy != nil {
		t.proxy = r.proxy.Tags(ctx)
	}
	return t
}

// blobs: writes and deletes are local; Stat, Get and ServeBlob fall through when the local
// store does not hold the blob (a HEAD only answers for local blobs).
type blobs struct {
	distribution.BlobStore
	proxy distribution.BlobStore
}

func (b *blobs) fallThrough(ctx context.Context, dgst digest.Digest) bool {
	if b.proxy == nil {
		return false
	}
	_, err := b.BlobStore.Stat(ctx, dgst)
	return errors.Is(err, distribution.ErrBlobUnknown)
}

func (b *blobs) Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error) {
	desc, err := b.BlobStore.Stat(ctx, dgst)
	if errors.Is(err, distribution.ErrBlobUnknown) && b.proxy != nil && !isHead(ctx) {
		return b.proxy.Stat(ctx, dgst)
	}
	return desc, err
}

func (b *blobs) Get(ctx context.Context, dgst digest.Digest) ([]byte, error) {
	if b.fallThrough(ctx, dgst) {
		return b.proxy.Get(ctx, dgst)
	}
	return b.BlobStore.Get(ctx, dgst)
}

func (b *blobs) ServeBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, dgst digest.Digest) error {
	if b.fallThrough(ctx, dgst) {
		return b.proxy.ServeBlob(ctx, w, r, dgst)
	}
	return b.BlobStore.ServeBlob(ctx, w, r, dgst)
}

// manifests: writes and deletes are local; Exists and Get fall through (the proxy caches
// what it fetched in the local store).
type manifests struct {
	distribution.ManifestService
	proxy distribution.ManifestService
}

func (m *manifests) Exists(ctx context.Context, dgst digest.Digest) (bool, error) {
	ok, err := m.ManifestService.Exists(ctx, dgst)
	if err != nil || ok || m.proxy == nil {
		return ok, err
	}
	return m.proxy.Exists(ctx, dgst)
}

func (m *manifests) Get(ctx context.Context, dgst digest.Digest, options ...distribution.ManifestServiceOption) (distribution.Manifest, error) {
	if m.proxy != nil {
		if ok, err := m.ManifestService.Exists(ctx, dgst); err == nil && !ok {
			return m.proxy.Get(ctx, dgst, options...)
		}
	}
	return m.ManifestService.Get(ctx, dgst, options...)
}

// tags: a pushed tag is local; any other is asked upstream first (the proxy caches it, and
// answers from the cache when the upstream fails); lists merge both.
type tags struct {
	distribution.TagService
	proxy  distribution.TagService
	driver storagedriver.StorageDriver
	repo   string
}

func (t *tags) mark(tag string) string { return path.Join(pushedRoot, t.repo, "_tags", tag) }

func (t *tags) pushed(ctx context.Context, tag string) bool {
	_, err := t.driver.Stat(ctx, t.mark(tag))
	return err == nil
}

func (t *tags) Get(ctx context.Context, tag string) (v1.Descriptor, error) {
	if t.proxy == nil || t.pushed(ctx, tag) {
		return t.TagService.Get(ctx, tag)
	}
	return t.proxy.Get(ctx, tag)
}

func (t *tags) Tag(ctx context.Context, tag string, desc v1.Descriptor) error {
	if err := t.TagService.Tag(ctx, tag, desc); err != nil {
		return err
	}
	return t.driver.PutContent(ctx, t.mark(tag), nil)
}

func (t *tags) Untag(ctx context.Context, tag string) error {
	if err := t.TagService.Untag(ctx, tag); err != nil {
		return err
	}
	if err := t.driver.Delete(ctx, t.mark(tag)); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

func isNotFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf)
}

func (t *tags) All(ctx context.Context) ([]string, error) {
	local, err := t.TagService.All(ctx)
	var unknown distribution.ErrRepositoryUnknown
	if t.proxy == nil || (err != nil && !errors.As(err, &unknown)) {
		return local, err
	}
	remote, rerr := t.proxy.All(ctx)
	if rerr != nil {
		return local, err // the upstream does not know it (or does not answer): local only
	}
	return union(local, remote), nil
}

// List pages through All (distribution's convention: io.EOF when nothing follows).
func (t *tags) List(ctx context.Context, limit int, last string) ([]string, error) {
	if t.proxy == nil {
		return t.TagService.List(ctx, limit, last)
	}
	all, err := t.All(ctx)
	if err != nil {
		return nil, err
	}
	i := sort.SearchStrings(all, last)
	if last != "" && i < len(all) && all[i] == last {
		i++
	}
	all = all[i:]
	if limit < 0 || limit >= len(all) {
		return all, io.EOF
	}
	return all[:limit], nil
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// proxyFor returns the pull-through proxy of u, creating it on first use: that reads the
// upstream's credentials and asks the upstream for its authentication endpoints, without a
// lock held (a hanging upstream holds up only the requests that need it, until they end).
func (n *namespace) proxyFor(ctx context.Context, u Upstream) (distribution.Namespace, error) {
	n.mu.Lock()
	p, ok := n.proxies[u.Prefix]
	n.mu.Unlock()
	if ok {
		return p, nil
	}
	type made struct {
		p   distribution.Namespace
		err error
	}
	ch := make(chan made, 1)
	go func() {
		p, err := n.newProxy(context.WithoutCancel(ctx), u)
		ch <- made{p, err}
	}()
	select {
	case m := <-ch:
		if m.err != nil {
			return nil, m.err
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		if p, ok := n.proxies[u.Prefix]; ok {
			return p, nil // another request made it first
		}
		n.proxies[u.Prefix] = m.p
		return m.p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (n *namespace) newProxy(ctx context.Context, u Upstream) (distribution.Namespace, error) {
	creds, err := n.creds(ctx, u.host)
	if err != nil {
		n.log.Warn("reading upstream credentials failed: pulling anonymously", "upstream", u.URL, "error", n.redactor.String(err.Error()))
		creds = registry.Credentials{}
	}
	if creds.IdentityToken != "" || creds.RegistryToken != "" {
		n.redactor.Add(creds.IdentityToken, creds.RegistryToken)
		n.log.Warn("the Docker config holds a token, not a user name and password, for this upstream: pulling anonymously", "upstream", u.URL)
		creds = registry.Credentials{}
	}
	n.redactor.AddBasic(creds.Username, creds.Password)
	zero := time.Duration(0)
	p, err := proxy.NewRegistryPullThroughCache(ctx, renaming{n.Namespace}, n.driver, configuration.Proxy{
		RemoteURL: u.base,
		Username:  creds.Username,
		Password:  creds.Password,
		TTL:       &zero, // never expire: the cache shares the storage with what was pushed
	})
	if err != nil {
		return nil, n.redactor.Error(fmt.Errorf("reaching upstream %s: %w", u.URL, err))
	}
	n.log.Info("pulling through", "upstream", u.URL, "authenticated", creds.Username != "")
	return p, nil
}
