package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// Client talks to OCI registries. It is safe for concurrent use; it reuses token exchanges
// per repository.
type Client struct {
	creds     map[string]Credentials
	insecure  map[string]bool
	fallback  authn.Keychain
	base      http.RoundTripper // the caller's transport under the client's guard
	retry     retryPolicy
	userAgent string
	log       *slog.Logger
	red       *redact.Redactor // shared with the caller when given, see WithRedactor
	cache     *pushCache       // nil without WithPushCache
	puller    *remote.Puller
	pusher    *remote.Pusher
	scopes    map[string][]compiledScope // writes allowed per host (none: any)
}

// New returns a client configured by opts.
func New(opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("configuring registry client: %w", err)
		}
	}
	c := &Client{
		creds:     o.creds,
		insecure:  o.insecure,
		fallback:  o.keychain,
		retry:     defaultRetry,
		userAgent: o.userAgent,
		log:       o.logger,
		red:       o.redactor,
		scopes:    o.scopes,
	}
	if c.fallback == nil {
		c.fallback = authn.DefaultKeychain
	}
	if o.retry != nil {
		c.retry = *o.retry
	}
	if c.red == nil {
		c.red = redact.New()
	}
	if o.pushCache != "" {
		c.cache = loadPushCache(o.pushCache)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, creds := range c.creds {
		c.addCredentials(creds)
	}
	inner := o.transport
	if inner == nil {
		inner = remote.DefaultTransport
	}
	// Registries marked insecure get TLS without verification too (as Docker's
	// insecure-registries and BuildKit's registry.insecure do); everything else is verified.
	unverified := inner
	if t, ok := inner.(*http.Transport); ok && len(c.insecure) > 0 {
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // only for hosts marked insecure
		unverified = t
	}
	c.base = &guardTransport{c: c, inner: inner, unverified: unverified}

	ropts := []remote.Option{
		remote.WithTransport(c.base),
		remote.WithAuthFromKeychain(keychain{c}),
		remote.WithRetryBackoff(c.retry.backoffSpec()),
		remote.WithRetryPredicate(c.retryable),
		remote.WithRetryStatusCodes(retryStatusCodes...),
	}
	if c.userAgent != "" {
		ropts = append(ropts, remote.WithUserAgent(c.userAgent))
	}
	var err error
	if c.puller, err = remote.NewPuller(ropts...); err != nil {
		return nil, fmt.Errorf("configuring registry client: %w", err)
	}
	if c.pusher, err = remote.NewPusher(ropts...); err != nil {
		return nil, fmt.Errorf("configuring registry client: %w", err)
	}
	return c, nil
}

// retryStatusCodes are the answers retried; 4xx never are.
var retryStatusCodes = []int{
	http.StatusInternalServerError,
	http.StatusBadGateway,
	http.StatusServiceUnavailable,
	http.StatusGatewayTimeout,
}

func (p retryPolicy) backoffSpec() remote.Backoff {
	return remote.Backoff{Duration: p.backoff, Factor: 2, Jitter: 0.1, Steps: p.attempts}
}

// retryable reports whether err is transient: a retried status code, a connection reset, a
// broken pipe, an unexpected EOF or a network timeout; never a cancelled context or a 4xx.
func (c *Client) retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	retry := false
	var terr *transport.Error
	var nerr net.Error
	switch {
	case errors.As(err, &terr):
		retry = slices.Contains(retryStatusCodes, terr.StatusCode)
	case errors.As(err, &nerr) && nerr.Timeout():
		retry = true
	default:
		retry = errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
			errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
	}
	if retry {
		c.log.Warn("transient registry error; retrying while attempts remain", "error", c.scrub(err.Error()))
	}
	return retry
}

// checkTransport wraps the base transport the way remote does for its own requests, for the
// requests the client makes through the transport package directly.
func (c *Client) checkTransport() http.RoundTripper {
	rt := transport.NewRetry(c.base,
		transport.WithRetryBackoff(c.retry.backoffSpec()),
		transport.WithRetryPredicate(c.retryable),
		transport.WithRetryStatusCodes(retryStatusCodes...))
	return transport.NewUserAgent(rt, c.userAgent)
}

// plainHTTP reports whether host may be reached without TLS.
func (c *Client) plainHTTP(host string) bool {
	return IsLoopback(host) || c.insecure[strings.ToLower(host)]
}

// guardTransport sits under go-containerregistry's retry and auth layers: it refuses plain
// HTTP to hosts that are neither loopback nor insecure, records every Authorization value
// as a secret, and logs each request without headers, bodies or query strings.
type guardTransport struct {
	c          *Client
	inner      http.RoundTripper
	unverified http.RoundTripper // for https to hosts marked insecure
}

func (g *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	g.c.red.AddAuthorization(req.Header.Get("Authorization"))
	if req.URL.Scheme == "http" && !g.c.plainHTTP(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refusing plain HTTP to %s: it is not a loopback address and not marked insecure", req.URL.Host)
	}
	if repo := writeTarget(req); repo != "" {
		host, err := Host(req.URL.Host)
		if err == nil {
			err = g.c.checkWrite(host, repo)
		}
		if err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
	}
	start := time.Now()
	inner := g.inner
	if req.URL.Scheme == "https" && g.c.insecure[strings.ToLower(req.URL.Host)] {
		inner = g.unverified
	}
	resp, err := inner.RoundTrip(req)
	u := *req.URL
	u.RawQuery, u.ForceQuery, u.User, u.Fragment = "", false, nil, ""
	attrs := []slog.Attr{
		slog.String("method", req.Method),
		slog.String("url", u.String()),
		slog.Duration("duration", time.Since(start)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", g.c.scrub(err.Error())))
	} else {
		attrs = append(attrs, slog.Int("status", resp.StatusCode))
	}
	g.c.log.LogAttrs(req.Context(), slog.LevelDebug, "registry request", attrs...)
	return resp, err
}

// nameOpts returns the name options for references on host.
func (c *Client) nameOpts(host string) []name.Option {
	if c.plainHTTP(host) {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (c *Client) parseRef(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("parsing reference %q: %w", s, err)
	}
	if opts := c.nameOpts(ref.Context().RegistryStr()); opts != nil {
		if ref, err = name.ParseReference(s, opts...); err != nil {
			return nil, fmt.Errorf("parsing reference %q: %w", s, err)
		}
	}
	return ref, nil
}

func (c *Client) parseRepo(s string) (name.Repository, error) {
	repo, err := name.NewRepository(s)
	if err != nil {
		return name.Repository{}, fmt.Errorf("parsing repository %q: %w", s, err)
	}
	if opts := c.nameOpts(repo.RegistryStr()); opts != nil {
		if repo, err = name.NewRepository(s, opts...); err != nil {
			return name.Repository{}, fmt.Errorf("parsing repository %q: %w", s, err)
		}
	}
	return repo, nil
}

func (c *Client) parseDigest(s string) (name.Digest, error) {
	ref, err := c.parseRef(s)
	if err != nil {
		return name.Digest{}, err
	}
	d, ok := ref.(name.Digest)
	if !ok {
		return name.Digest{}, fmt.Errorf("reference %q is not a digest reference (REPOSITORY@sha256:...)", s)
	}
	return d, nil
}

func (c *Client) parseTag(s string) (name.Tag, error) {
	ref, err := c.parseRef(s)
	if err != nil {
		return name.Tag{}, err
	}
	t, ok := ref.(name.Tag)
	if !ok {
		return name.Tag{}, fmt.Errorf("reference %q is not a tag reference (REPOSITORY:TAG)", s)
	}
	return t, nil
}
