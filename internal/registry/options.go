package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// Option configures a [Client]. Options that contradict each other make [New] fail.
type Option func(*options) error

type options struct {
	creds     map[string]Credentials // by normalized registry host
	insecure  map[string]bool        // by normalized registry host
	transport http.RoundTripper
	keychain  authn.Keychain
	retry     *retryPolicy
	userAgent string
	logger    *slog.Logger
	redactor  *redact.Redactor
	pushCache string
	scopes    map[string][]compiledScope // by normalized registry host
}

type retryPolicy struct {
	attempts int
	backoff  time.Duration
}

// Retries by default: three attempts, 500ms then 1s apart.
var defaultRetry = retryPolicy{attempts: 3, backoff: 500 * time.Millisecond}

// WithCredentials sets the credentials for one registry host. host may be given as in the
// build params ("docker.io", "127.0.0.1:5000", "https://ghcr.io/team"; see [Host]).
// These credentials take precedence over the fallback keychain for that host. Giving different
// credentials twice for one host is an error.
func WithCredentials(host string, c Credentials) Option {
	return func(o *options) error {
		h, err := Host(host)
		if err != nil {
			return fmt.Errorf("WithCredentials: %w", err)
		}
		if c.empty() {
			return fmt.Errorf("WithCredentials: empty credentials for %s", h)
		}
		if prev, ok := o.creds[h]; ok && prev != c {
			return fmt.Errorf("WithCredentials: conflicting credentials for %s", h)
		}
		if o.creds == nil {
			o.creds = map[string]Credentials{}
		}
		o.creds[h] = c
		return nil
	}
}

// WithInsecure marks host insecure: the client reaches it over HTTPS without verifying its
// certificate, or over plain HTTP (it tries HTTPS first), as Docker's insecure-registries and
// BuildKit's registry.insecure do. Loopback hosts get plain HTTP without it (see
// [IsLoopback]), but their TLS is verified; every other host needs TLS with a valid
// certificate.
func WithInsecure(host string) Option {
	return func(o *options) error {
		h, err := Host(host)
		if err != nil {
			return fmt.Errorf("WithInsecure: %w", err)
		}
		if o.insecure == nil {
			o.insecure = map[string]bool{}
		}
		o.insecure[h] = true
		return nil
	}
}

// WithTransport sets the HTTP transport under the client's own layers (scheme policy,
// logging, retries, authentication). The default is go-containerregistry's
// remote.DefaultTransport.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error {
		if rt == nil {
			return errors.New("WithTransport: nil transport")
		}
		if o.transport != nil {
			return errors.New("WithTransport: given twice")
		}
		o.transport = rt
		return nil
	}
}

// WithKeychain replaces authn.DefaultKeychain (Docker config and credential helpers) as the
// source of credentials for hosts without [WithCredentials].
func WithKeychain(kc authn.Keychain) Option {
	return func(o *options) error {
		if kc == nil {
			return errors.New("WithKeychain: nil keychain")
		}
		if o.keychain != nil {
			return errors.New("WithKeychain: given twice")
		}
		o.keychain = kc
		return nil
	}
}

// WithRetry sets how often a request failing transiently (500, 502, 503, 504, connection
// reset, broken pipe, unexpected EOF, network timeout) is tried in all, and the wait before
// the first retry, which doubles for each further one. attempts 1 disables retries. 4xx
// answers are never retried. The default is 3 attempts starting at 500ms.
func WithRetry(attempts int, initialBackoff time.Duration) Option {
	return func(o *options) error {
		if attempts < 1 {
			return fmt.Errorf("WithRetry: attempts must be at least 1, got %d", attempts)
		}
		if initialBackoff < 0 {
			return fmt.Errorf("WithRetry: negative backoff %s", initialBackoff)
		}
		if o.retry != nil {
			return errors.New("WithRetry: given twice")
		}
		o.retry = &retryPolicy{attempts: attempts, backoff: initialBackoff}
		return nil
	}
}

// WithUserAgent adds ua to the User-Agent header of every request (go-containerregistry
// appends its own product token).
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		if ua == "" {
			return errors.New("WithUserAgent: empty user agent")
		}
		if o.userAgent != "" && o.userAgent != ua {
			return errors.New("WithUserAgent: given twice")
		}
		o.userAgent = ua
		return nil
	}
}

// WithLogger makes the client log each HTTP request at debug level (method, URL without its
// query string, status, duration: never headers or bodies) and transient failures at warn
// level. By default nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		if o.logger != nil {
			return errors.New("WithLogger: given twice")
		}
		o.logger = l
		return nil
	}
}

// WithRedactor shares a redactor with the caller: the client masks every secret the redactor
// knows in its errors and logs, and adds to it the secrets it learns (credentials read from
// the Docker config, Authorization values it sends, bearer tokens among them), so the caller's
// output masks them too. Without it the client keeps a redactor of its own.
func WithRedactor(r *redact.Redactor) Option {
	return func(o *options) error {
		if r == nil {
			return errors.New("WithRedactor: nil redactor")
		}
		if o.redactor != nil && o.redactor != r {
			return errors.New("WithRedactor: given twice")
		}
		o.redactor = r
		return nil
	}
}

// WithPushCache keeps a push cache in the file at path (created when missing): what this
// machine pushed where, so that pushing an unchanged image again costs a manifest check
// instead of an export and a recompression of every layer (see [Client.PushImage]). The file
// holds digests only. Without it nothing is remembered.
func WithPushCache(path string) Option {
	return func(o *options) error {
		if path == "" {
			return errors.New("WithPushCache: empty path")
		}
		if o.pushCache != "" && o.pushCache != path {
			return errors.New("WithPushCache: given twice")
		}
		o.pushCache = path
		return nil
	}
}
