// Package api is the HTTP API of the build service (imagebuilder serve): SODALITE image-builder's
// POST /build/ and GET /status/{invocation_id} with SODALITE's shapes, ours under /v1 (submit,
// list, get, cancel, logs as server-sent events), /healthz, /readyz, Prometheus /metrics, the
// OpenAPI 3.1 document at /openapi.json, and the web UI at /.
//
// The operations are declared with huma (github.com/danielgtaylor/huma/v2 on net/http), which
// generates the OpenAPI document from the handlers' Go types; request bodies are validated by the
// service with the build-params and family schemas (internal/schemacheck), and the document
// refers to those same schemas. Errors under /v1 are RFC 9457 problem+json (huma's ErrorModel,
// errors[].location a JSON pointer into the request body, no offending value ever echoed);
// SODALITE's paths answer errors with a JSON string, as its openapi-spec.yml declares.
//
// What the API needs from the service is the Backend interface: internal/service implements it;
// tests also use a fake.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imagebuilder/imagebuilder/internal/auth"
	"github.com/imagebuilder/imagebuilder/internal/service"
)

// Backend is what the API asks of the build service (internal/service.Service).
type Backend interface {
	Submit(ctx context.Context, p service.Principal, kind service.Kind, doc []byte, dryRun bool) (*service.Invocation, error)
	Get(ctx context.Context, p service.Principal, id string) (*service.Invocation, error)
	List(ctx context.Context, p service.Principal, f service.Filter) (*service.Page, error)
	Cancel(ctx context.Context, p service.Principal, id string) (*service.Invocation, error)
	Logs(ctx context.Context, p service.Principal, id string, after int64, limit int) ([]service.LogLine, bool, error)
	Ready(ctx context.Context) error
	Collector() prometheus.Collector
	LookupKey(ctx context.Context, key string) (*service.Principal, error)
}

// Ready is the line imagebuilder serve prints on stdout once it accepts connections (JSON).
type Ready struct {
	Listen   string `json:"listen,omitempty"`
	URL      string `json:"url,omitempty"`
	Database string `json:"database"`
	Workers  int    `json:"workers"`
	Auth     string `json:"auth"`
}

// Config configures the API.
type Config struct {
	// Auth says how callers authenticate; its Keys default to the backend's LookupKey.
	Auth auth.Config
	// RateLimit is each principal's average requests a second (0: no limit), RateBurst the
	// burst allowed above it (default: 10 seconds' worth, at least 1).
	RateLimit float64
	RateBurst int
	// AuthFailures is how many failed authentications one client address may make at once
	// before it is held to one a second (0: no limit; serve's default is DefaultAuthFailures).
	AuthFailures int
	// UI serves GET / and GET /FILE that no API path takes (the web page and its files).
	UI http.Handler
	// Logger receives server-side errors (never a secret); default: discard.
	Logger *slog.Logger
	// LogPollInterval is how often a log stream looks for new lines (default 1s).
	LogPollInterval time.Duration
	// HealthOnly serves /healthz, /readyz and /metrics only (serve --workers-only --listen):
	// no API, no page, no authentication.
	HealthOnly bool
}

// Server is the API's http.Handler.
type Server struct {
	backend Backend
	auth    *auth.Authenticator
	limiter *auth.Limiter
	// failures limits the failed authentications of each client address.
	failures *auth.Limiter
	log      *slog.Logger
	poll     time.Duration
	mux      *http.ServeMux
	metrics  *httpMetrics
	// closing ends the log streams (CloseStreams) when the server shuts down.
	closing   chan struct{}
	closeOnce sync.Once
}

// Title and Version of the OpenAPI document (Version is the API's, not the binary's, so that
// the committed document does not change with every release).
const (
	Title   = "imagebuilder build service"
	Version = "1"
)

// New builds the API on b. With an OIDC issuer configured it fetches the issuer's discovery
// document (ctx bounds that).
func New(ctx context.Context, b Backend, cfg Config) (*Server, error) {
	ac := cfg.Auth
	if ac.Keys == nil {
		ac.Keys = b.LookupKey
	}
	authn, err := auth.New(ctx, ac)
	if err != nil {
		return nil, err
	}
	burst := cfg.RateBurst
	if burst <= 0 {
		burst = int(math.Min(math.Ceil(cfg.RateLimit*10), 1e6))
	}
	s := &Server{
		backend: b,
		auth:    authn,
		limiter: auth.NewLimiter(cfg.RateLimit, burst),
		log:     cfg.Logger,
		poll:    cfg.LogPollInterval,
		mux:     http.NewServeMux(),
		closing: make(chan struct{}),
	}
	if cfg.AuthFailures > 0 {
		// Guessing keys or tokens: each address may fail authentication AuthFailures times at
		// once, then once a second.
		s.failures = auth.NewLimiter(1, cfg.AuthFailures)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.poll <= 0 {
		s.poll = time.Second
	}
	s.metrics, err = newHTTPMetrics(b.Collector())
	if err != nil {
		return nil, err
	}
	if cfg.HealthOnly {
		s.registerHealth(newHuma(s.mux), s.mux)
		return s, nil
	}
	s.register(s.mux)
	ui := cfg.UI
	if ui == nil {
		ui = http.NotFoundHandler()
	}
	// The page is "/" and files beside it: a catch-all GET pattern would make net/http's mux
	// offer GET on every API path (its 405 answers list it in Allow).
	s.mux.Handle("GET /{$}", ui)
	s.mux.Handle("GET /{file}", ui)
	return s, nil
}

// CloseStreams ends every log stream (their clients resume with Last-Event-ID elsewhere or
// later): http.Server.Shutdown waits for open requests, and a stream lasts as long as its build.
// Register it with http.Server.RegisterOnShutdown.
func (s *Server) CloseStreams() { s.closeOnce.Do(func() { close(s.closing) }) }

// ServeHTTP serves the API, counting every request by route and status.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// POST /build/ is a subtree pattern on net/http's mux: only the path itself is SODALITE's.
	if r.URL.Path != "/build/" && strings.HasPrefix(r.URL.Path, "/build/") {
		http.NotFound(w, r)
		return
	}
	s.metrics.serve(s.mux, w, r)
}

// Document is the OpenAPI 3.1 document the API serves at /openapi.json, indented as it is
// committed in schema/openapi.json.
func Document() ([]byte, error) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	api := s.register(http.NewServeMux())
	doc, err := json.MarshalIndent(api.OpenAPI(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the OpenAPI document: %w", err)
	}
	return append(doc, '\n'), nil
}

// Security scheme names in the document.
const (
	schemeAPIKey = "apiKey"
	schemeBearer = "bearer"
)

// newHuma is the huma API on mux, its document's header and security schemes declared.
func newHuma(mux *http.ServeMux) huma.API {
	cfg := huma.DefaultConfig(Title, Version)
	cfg.CreateHooks = nil // no $schema link in response bodies: SODALITE's shapes are exact
	cfg.DocsPath = ""
	cfg.SchemasPath = ""
	cfg.OpenAPIPath = "/openapi"
	cfg.Info.Description = "Builds container images from build params (SODALITE image-builder's shape) or family files, " +
		"on a durable queue. SODALITE's POST /build/ and GET /status/{invocation_id} keep its shapes; " +
		"the /v1 paths are imagebuilder's own. See https://github.com/imagebuilder/imagebuilder#service-api."
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		schemeAPIKey: {Type: "apiKey", In: "header", Name: "X-API-Key",
			Description: "An API key made by `imagebuilder serve apikey create NAME`."},
		schemeBearer: {Type: "http", Scheme: "bearer",
			Description: "An OAuth2 access token, checked by RFC 7662 introspection (--oauth-introspection-url) or as an OIDC JWT (--oidc-issuer)."},
	}
	cfg.Transformers = append(cfg.Transformers, transformErrors)
	return humago.New(mux, cfg)
}

// register declares every operation on mux and returns the huma API.
func (s *Server) register(mux *http.ServeMux) huma.API {
	api := newHuma(mux)
	api.UseMiddleware(s.authenticate(api), rejectEmptyParams(api))
	addDocumentSchemas(api.OpenAPI().Components.Schemas)
	s.registerSODALITE(api)
	s.registerV1(api)
	s.registerHealth(api, mux)
	return api
}

// secured is the security requirement of every operation that needs a caller.
var secured = []map[string][]string{{schemeAPIKey: {}}, {schemeBearer: {}}}

type principalKey struct{}

// DefaultAuthFailures is how many failed authentications one client address may make at once
// before it is held to one a second.
const DefaultAuthFailures = 30

// clientHost is the host of a request's remote address (the address itself when it has no
// port). Behind a reverse proxy every client shares the proxy's address.
func clientHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// principal is the caller that the middleware authenticated.
func principal(ctx context.Context) service.Principal {
	p, _ := ctx.Value(principalKey{}).(service.Principal)
	return p
}

// authenticate is the middleware of secured operations: 401 without valid credentials, 429 over
// the caller's rate.
func (s *Server) authenticate(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if len(ctx.Operation().Security) == 0 {
			next(ctx)
			return
		}
		client := clientHost(ctx.RemoteAddr())
		if spent, wait := s.failures.Exhausted(client); spent {
			ctx.SetHeader("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			_ = huma.WriteErr(api, ctx, http.StatusTooManyRequests, "too many failed authentications from this address; retry after the Retry-After header's seconds")
			return
		}
		p, err := s.auth.Authenticate(ctx.Context(), ctx.Header("X-API-Key"), ctx.Header("Authorization"))
		if err != nil {
			if errors.Is(err, service.ErrUnauthorized) {
				s.failures.Allow(client)
				if s.auth.BearerEnabled() {
					ctx.SetHeader("WWW-Authenticate", `Bearer realm="imagebuilder"`)
				}
				_ = huma.WriteErr(api, ctx, http.StatusUnauthorized, err.Error())
				return
			}
			s.log.Error("authenticating a request", "error", err)
			_ = huma.WriteErr(api, ctx, http.StatusServiceUnavailable, "authentication is unavailable; try again later")
			return
		}
		if ok, wait := s.limiter.Allow(p.Name); !ok {
			ctx.SetHeader("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			_ = huma.WriteErr(api, ctx, http.StatusTooManyRequests, fmt.Sprintf("rate limit exceeded for %q; retry after the Retry-After header's seconds", p.Name))
			return
		}
		next(huma.WithValue(ctx, principalKey{}, *p))
	}
}

// rejectEmptyParams refuses a query parameter given empty ("?kind=") when its schema accepts
// no empty string (an enum, a number, a boolean, a list of at least one item): huma reads it as
// absent, which would accept a request the document says is invalid.
func rejectEmptyParams(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		u := ctx.URL()
		query := u.Query()
		var details []error
		for _, p := range ctx.Operation().Parameters {
			if p.In != "query" || p.Schema == nil || !query.Has(p.Name) || slices.ContainsFunc(query[p.Name], func(v string) bool { return v != "" }) {
				continue
			}
			if sc := p.Schema; sc.Type == huma.TypeString && len(sc.Enum) == 0 || sc.Items != nil && (sc.MinItems == nil || *sc.MinItems == 0) {
				continue
			}
			details = append(details, &huma.ErrorDetail{Location: "query." + p.Name, Message: "must not be empty"})
		}
		if len(details) > 0 {
			_ = huma.WriteErr(api, ctx, http.StatusUnprocessableEntity, "validation failed", details...)
			return
		}
		next(ctx)
	}
}

// problem is an RFC 9457 error.
func problem(status int, detail string, errs ...*huma.ErrorDetail) *huma.ErrorModel {
	return &huma.ErrorModel{Status: status, Title: http.StatusText(status), Detail: detail, Errors: errs}
}

// fail maps a service error to an HTTP error; what names the submitted document ("build
// params"), prefix is the JSON pointer of the document in the request body.
func (s *Server) fail(err error, what, prefix string) error {
	var ve *service.ValidationError
	switch {
	case errors.As(err, &ve):
		details := make([]*huma.ErrorDetail, len(ve.Errors))
		for i, fe := range ve.Errors {
			details[i] = &huma.ErrorDetail{Location: prefix + fe.Pointer, Message: fe.Message}
		}
		return problem(http.StatusBadRequest, "invalid "+what, details...)
	case errors.Is(err, service.ErrNotFound):
		return problem(http.StatusNotFound, "invocation not found")
	case errors.Is(err, service.ErrEnded):
		return problem(http.StatusConflict, "the invocation already ended")
	case errors.Is(err, service.ErrUnauthorized):
		return problem(http.StatusUnauthorized, err.Error())
	case errors.Is(err, context.Canceled):
		return problem(499, "the request was canceled")
	}
	s.log.Error("serving a request", "error", err)
	return problem(http.StatusInternalServerError, "internal error; the server log says more")
}

// transformErrors keeps every offending value out of error bodies (huma's own validation puts
// it in errors[].value, and a value may be a secret), makes huma's body locations JSON pointers,
// and turns the errors of SODALITE's operations into the JSON strings SODALITE answers.
func transformErrors(ctx huma.Context, _ string, v any) (any, error) {
	em, ok := v.(*huma.ErrorModel)
	if !ok {
		return v, nil
	}
	for _, d := range em.Errors {
		if d != nil {
			d.Value = nil
			d.Location = bodyPointer(d.Location)
		}
	}
	if op := ctx.Operation(); op != nil && isSODALITE(op) {
		ctx.SetHeader("Content-Type", "application/json")
		return sodaliteMessage(em), nil
	}
	return em, nil
}

// bodyPointer turns huma's "body.a.b[3]" into the JSON pointer "/a/b/3"; other locations
// (query.limit, path.id) stay.
func bodyPointer(loc string) string {
	if loc != "body" && !strings.HasPrefix(loc, "body.") && !strings.HasPrefix(loc, "body[") {
		return loc
	}
	rest := strings.TrimPrefix(loc, "body")
	var b strings.Builder
	for _, part := range strings.FieldsFunc(rest, func(r rune) bool { return r == '.' || r == '[' || r == ']' }) {
		b.WriteString("/" + strings.ReplaceAll(strings.ReplaceAll(part, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// sodaliteMessage is an error as one string: the detail, then one line per problem, each with
// its JSON pointer.
func sodaliteMessage(em *huma.ErrorModel) string {
	msg := em.Detail
	for _, d := range em.Errors {
		if d == nil {
			continue
		}
		loc := d.Location
		if loc == "" {
			loc = "/"
		}
		msg += "\n" + loc + ": " + d.Message
	}
	return msg
}
