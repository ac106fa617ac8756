// Package auth resolves an HTTP request of the build service to a service.Principal: an API key
// in X-API-Key (SODALITE's header, looked up through the service's key store), or an OAuth2
// bearer token in Authorization, checked by RFC 7662 introspection against a configured endpoint
// (SODALITE used Keycloak's) or validated as an OIDC JWT (issuer discovery, signature, audience,
// expiry). A principal is an admin when its key says so or when its token carries the configured
// admin role or scope. The package also holds the per-principal rate limiter.
//
// No error, log line or principal name ever contains the key or the token.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/imagebuilder/imagebuilder/internal/service"
)

// Anonymous is the principal of every caller when authentication is off (--no-auth).
const Anonymous = "anonymous"

// Config says how callers authenticate.
type Config struct {
	// Keys looks an API key up (the service's LookupKey); it returns an error wrapping
	// service.ErrUnauthorized for an unknown or revoked key.
	Keys func(ctx context.Context, key string) (*service.Principal, error)
	// IntrospectionURL is an RFC 7662 token introspection endpoint; the service authenticates
	// to it with ClientID and ClientSecret (HTTP basic).
	IntrospectionURL       string
	ClientID, ClientSecret string
	// OIDCIssuer is an OpenID Connect issuer whose JWT access tokens are accepted when their
	// audience includes OIDCAudience.
	OIDCIssuer, OIDCAudience string
	// AdminRole is the role (Keycloak realm_access.roles, or a roles claim) or scope that makes
	// a token's principal an admin; empty: no token principal is an admin.
	AdminRole string
	// NoAuth makes every caller the admin "anonymous" (only for loopback listeners).
	NoAuth bool
	// HTTPClient reaches the introspection endpoint and the OIDC issuer (default: a client
	// with a 10 s timeout).
	HTTPClient *http.Client
}

// Authenticator checks credentials. It is safe for concurrent use.
type Authenticator struct {
	cfg      Config
	client   *http.Client
	verifier *oidc.IDTokenVerifier
}

// New prepares an Authenticator; with an OIDC issuer it fetches the issuer's discovery document.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	a := &Authenticator{cfg: cfg, client: cfg.HTTPClient}
	if a.client == nil {
		a.client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.NoAuth {
		return a, nil
	}
	if cfg.IntrospectionURL != "" {
		u, err := url.Parse(cfg.IntrospectionURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("introspection URL %q: want an http(s) URL", cfg.IntrospectionURL)
		}
		if cfg.ClientID == "" {
			return nil, errors.New("token introspection needs a client id (--oauth-client-id)")
		}
	}
	if cfg.OIDCIssuer != "" {
		if cfg.OIDCAudience == "" {
			return nil, errors.New("OIDC token validation needs an audience (--oidc-audience)")
		}
		// The provider keeps this context to fetch the issuer's keys later: it must outlive
		// New's caller.
		pctx := oidc.ClientContext(context.WithoutCancel(ctx), a.client)
		provider, err := oidc.NewProvider(pctx, cfg.OIDCIssuer)
		if err != nil {
			return nil, fmt.Errorf("discovering OIDC issuer %q: %w", cfg.OIDCIssuer, err)
		}
		a.verifier = provider.Verifier(&oidc.Config{ClientID: cfg.OIDCAudience})
	}
	return a, nil
}

// BearerEnabled reports whether bearer tokens can be checked at all.
func (a *Authenticator) BearerEnabled() bool {
	return a.verifier != nil || a.cfg.IntrospectionURL != ""
}

// unauthorized wraps service.ErrUnauthorized with a reason that quotes no credential.
func unauthorized(format string, args ...any) error {
	return fmt.Errorf("%w: %s", service.ErrUnauthorized, fmt.Sprintf(format, args...))
}

// Authenticate resolves the credentials of a request (the values of its X-API-Key and
// Authorization headers) to a principal. Every refusal wraps service.ErrUnauthorized; other
// errors (the key store or the identity provider failing) do not.
func (a *Authenticator) Authenticate(ctx context.Context, apiKey, authorization string) (*service.Principal, error) {
	if a.cfg.NoAuth {
		return &service.Principal{Name: Anonymous, Admin: true}, nil
	}
	if apiKey != "" && authorization != "" {
		// Which one would count is a guess either way; a caller sends one.
		return nil, unauthorized("both X-API-Key and Authorization were sent: send one")
	}
	if apiKey != "" {
		if a.cfg.Keys == nil {
			return nil, unauthorized("API keys are not accepted")
		}
		p, err := a.cfg.Keys(ctx, apiKey)
		if err != nil {
			if errors.Is(err, service.ErrUnauthorized) {
				return nil, unauthorized("unknown or revoked API key")
			}
			return nil, fmt.Errorf("looking up the API key: %w", err)
		}
		return p, nil
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(authorization), " ")
	token = strings.TrimSpace(token)
	switch {
	case authorization == "":
		return nil, unauthorized("no credentials: send X-API-Key: KEY or Authorization: Bearer TOKEN")
	case !strings.EqualFold(scheme, "Bearer") || token == "":
		return nil, unauthorized("the Authorization header is not a bearer token")
	case !a.BearerEnabled():
		return nil, unauthorized("bearer tokens are not accepted (no introspection endpoint or OIDC issuer is configured)")
	}
	if a.verifier != nil && strings.Count(token, ".") == 2 {
		p, err := a.verifyJWT(ctx, token)
		if err == nil || a.cfg.IntrospectionURL == "" {
			return p, err
		}
	}
	if a.cfg.IntrospectionURL == "" {
		return nil, unauthorized("the bearer token is not a JWT")
	}
	return a.introspect(ctx, token)
}

// claims are the token claims the principal comes from, in an introspection response (RFC 7662
// with Keycloak's additions) or a JWT.
type claims struct {
	Active            bool   `json:"active"`
	Subject           string `json:"sub"`
	Username          string `json:"username"`
	PreferredUsername string `json:"preferred_username"`
	Scope             string `json:"scope"`
	Roles             []any  `json:"roles"`
	RealmAccess       struct {
		Roles []string `json:"roles"`
	} `json:"realm_access"`
}

func (c *claims) principal(adminRole string) (*service.Principal, error) {
	name := c.Username
	if name == "" {
		name = c.PreferredUsername
	}
	if name == "" {
		name = c.Subject
	}
	if name == "" {
		return nil, unauthorized("the token names no subject")
	}
	return &service.Principal{Name: name, Admin: adminRole != "" && c.has(adminRole)}, nil
}

// has reports whether the token carries role as a scope, a Keycloak realm role or a role.
func (c *claims) has(role string) bool {
	if slices.Contains(strings.Fields(c.Scope), role) || slices.Contains(c.RealmAccess.Roles, role) {
		return true
	}
	for _, r := range c.Roles {
		if s, ok := r.(string); ok && s == role {
			return true
		}
	}
	return false
}

func (a *Authenticator) verifyJWT(ctx context.Context, token string) (*service.Principal, error) {
	idt, err := a.verifier.Verify(oidc.ClientContext(ctx, a.client), token)
	if err != nil {
		// go-oidc's messages name claims and issuers, never the token itself.
		return nil, unauthorized("the bearer token is not valid: %v", err)
	}
	var c claims
	if err := idt.Claims(&c); err != nil {
		return nil, unauthorized("reading the token's claims: %v", err)
	}
	return c.principal(a.cfg.AdminRole)
}

func (a *Authenticator) introspect(ctx context.Context, token string) (*service.Principal, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.IntrospectionURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspecting the token: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(a.cfg.ClientID), url.QueryEscape(a.cfg.ClientSecret))
	resp, err := a.client.Do(req)
	if err != nil {
		// The URL in a *url.Error is the configured endpoint, which holds no token.
		return nil, fmt.Errorf("introspecting the token: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("introspecting the token: reading the response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspecting the token: %s answered %s", a.cfg.IntrospectionURL, resp.Status)
	}
	var c claims
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("introspecting the token: decoding the response of %s: %w", a.cfg.IntrospectionURL, err)
	}
	if !c.Active {
		return nil, unauthorized("the bearer token is not active")
	}
	return c.principal(a.cfg.AdminRole)
}
