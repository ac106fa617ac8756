package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// Credentials for one registry. Formatting them (fmt, slog, encoding/json) never shows a
// secret.
type Credentials struct {
	Username string
	// Password or access token.
	Password string
	// IdentityToken is an OAuth2 refresh token (from a credential helper or "identitytoken"
	// in the Docker config), used instead of Username and Password.
	IdentityToken string
	// RegistryToken is a bearer token sent to the registry as is ("registrytoken" in the
	// Docker config).
	RegistryToken string
}

func (c Credentials) empty() bool { return c == Credentials{} }

func (c Credentials) redacted() map[string]string {
	m := map[string]string{}
	if c.Username != "" {
		m["username"] = c.Username
	}
	for k, v := range map[string]string{"password": c.Password, "identityToken": c.IdentityToken, "registryToken": c.RegistryToken} {
		if v != "" {
			m[k] = redact.Mask
		}
	}
	return m
}

// String shows the user name and which secrets are set, never their values.
func (c Credentials) String() string {
	var b strings.Builder
	b.WriteString("{")
	sep := ""
	for _, k := range []string{"username", "password", "identityToken", "registryToken"} {
		if v, ok := c.redacted()[k]; ok {
			fmt.Fprintf(&b, "%s%s:%s", sep, k, v)
			sep = " "
		}
	}
	b.WriteString("}")
	return b.String()
}

// Format makes every fmt verb (%v, %+v, %#v, %s, %q) print [Credentials.String].
func (c Credentials) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue keeps secrets out of slog output.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON keeps secrets out of JSON output.
func (c Credentials) MarshalJSON() ([]byte, error) { return json.Marshal(c.redacted()) }

func (c Credentials) authConfig() authn.AuthConfig {
	return authn.AuthConfig{
		Username:      c.Username,
		Password:      c.Password,
		IdentityToken: c.IdentityToken,
		RegistryToken: c.RegistryToken,
	}
}

func credentialsFromConfig(cfg authn.AuthConfig) Credentials {
	c := Credentials{
		Username:      cfg.Username,
		Password:      cfg.Password,
		IdentityToken: cfg.IdentityToken,
		RegistryToken: cfg.RegistryToken,
	}
	if cfg.Auth != "" && c.Username == "" && c.Password == "" {
		if b, err := base64.StdEncoding.DecodeString(cfg.Auth); err == nil {
			c.Username, c.Password, _ = strings.Cut(string(b), ":")
		}
	}
	return c
}

// keychain resolves credentials for go-containerregistry: explicit ones first, then the
// fallback keychain. Whatever it hands out is added to the client's secrets so that it is
// scrubbed from errors.
type keychain struct{ c *Client }

func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

func (k keychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	creds, err := k.c.credentials(ctx, r)
	if err != nil {
		return nil, err
	}
	if creds.empty() {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(creds.authConfig()), nil
}

func (c *Client) credentials(ctx context.Context, r authn.Resource) (Credentials, error) {
	host := r.RegistryStr()
	if creds, ok := c.creds[strings.ToLower(host)]; ok {
		return creds, nil
	}
	a, err := authn.Resolve(ctx, c.fallback, r)
	if err == nil {
		var cfg *authn.AuthConfig
		if cfg, err = authn.Authorization(ctx, a); err == nil {
			creds := credentialsFromConfig(*cfg)
			c.addCredentials(creds)
			return creds, nil
		}
	}
	// A credential helper that is missing or fails is an error naming it, not an anonymous
	// attempt that a registry answers with an unexplained 401 later.
	if helper := c.credentialHelper(host); helper != "" {
		return Credentials{}, fmt.Errorf("reading credentials for %s: credential helper %q (docker-credential-%s, configured in %s): %w",
			host, helper, helper, filepath.Join(config.Dir(), config.ConfigFileName), err)
	}
	return Credentials{}, fmt.Errorf("reading credentials for %s from the Docker config: %w", host, err)
}

// credentialHelper names the credential helper the Docker config assigns to host ("" when
// none, or when the client does not read the Docker config).
func (c *Client) credentialHelper(host string) string {
	if c.fallback != authn.DefaultKeychain {
		return ""
	}
	cf, err := config.Load(config.Dir())
	if err != nil {
		return ""
	}
	for _, key := range []string{host, "https://" + host, "http://" + host} {
		if h := cf.CredentialHelpers[key]; h != "" {
			return h
		}
	}
	if host == name.DefaultRegistry {
		if h := cf.CredentialHelpers[authn.DefaultAuthKey]; h != "" {
			return h
		}
	}
	return cf.CredentialsStore
}

// Auth reports the credentials the client uses for host (given as for [WithCredentials]) and
// whether there are any; false means anonymous access. The builder forwards them to
// BuildKit's session auth provider.
func (c *Client) Auth(ctx context.Context, host string) (Credentials, bool, error) {
	h, err := Host(host)
	if err != nil {
		return Credentials{}, false, c.fail(err)
	}
	reg, err := name.NewRegistry(h)
	if err != nil {
		return Credentials{}, false, c.fail(fmt.Errorf("parsing registry host %q: %w", h, err))
	}
	creds, err := c.credentials(ctx, reg)
	if err != nil {
		return Credentials{}, false, c.fail(err)
	}
	return creds, !creds.empty(), nil
}

// CheckPush verifies, without writing anything, that the registry of repo answers and
// accepts the client's credentials for a push to repo: it pings the registry, fails when the
// registry demands authentication and no credentials are configured, performs the token
// exchange with push scope (bearer registries) and sends an authenticated request (basic
// registries). Errors wrap [ErrUnauthorized] when the credentials are missing or rejected.
//
// Registries that accept credentials and decide about each repository only when an upload
// starts (Docker Hub, for one) can still refuse the push later; finding out would need an
// upload to be started, which CheckPush does not do.
func (c *Client) CheckPush(ctx context.Context, repo string) error {
	r, err := c.parseRepo(repo)
	if err != nil {
		return c.fail(err)
	}
	host := r.RegistryStr()
	creds, err := c.credentials(ctx, r)
	if err != nil {
		return c.fail(fmt.Errorf("checking push access to %q: %w", repo, err))
	}
	rt := c.checkTransport()
	challenge, err := transport.Ping(ctx, r.Registry, rt)
	if err != nil {
		return c.fail(fmt.Errorf("checking push access to %q: pinging %s: %w", repo, host, err))
	}
	if challenge.Scheme != "" && creds.empty() {
		return c.fail(&kindError{kind: ErrUnauthorized, err: fmt.Errorf(
			"checking push access to %q: %s requires authentication and no credentials are configured for it (build params or Docker config)", repo, host)})
	}
	auth := authn.Anonymous
	if !creds.empty() {
		auth = authn.FromConfig(creds.authConfig())
	}
	tr, err := transport.NewWithContext(ctx, r.Registry, auth, rt, []string{r.Scope(transport.PushScope)})
	if err != nil {
		return c.fail(fmt.Errorf("checking push access to %q: authenticating to %s: %w", repo, host, err))
	}
	scheme := "https"
	if challenge.Insecure {
		scheme = "http"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
	if err != nil {
		return c.fail(fmt.Errorf("checking push access to %q: %w", repo, err))
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return c.fail(fmt.Errorf("checking push access to %q: %w", repo, err))
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return c.fail(fmt.Errorf("checking push access to %q: %s rejected the credentials: %w", repo, host, err))
		}
		return c.fail(fmt.Errorf("checking push access to %q: %w", repo, err))
	}
	return nil
}
