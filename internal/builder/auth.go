package builder

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/session/auth"
	"google.golang.org/grpc"
)

// dockerHubHost is the host BuildKit asks credentials for when it talks to Docker Hub.
const dockerHubHost = "registry-1.docker.io"

// credentials resolves registry credentials: the request's callback first, then a fallback
// keychain (the Docker config and its credential helpers). It is the single source for the
// BuildKit session (base image pulls, the exporter's push) and for pushes done here.
type credentials struct {
	fn       func(host string) (username, secret string, ok bool)
	fallback authn.Keychain
}

func newCredentials(fn func(host string) (string, string, bool)) *credentials {
	return &credentials{fn: fn, fallback: authn.DefaultKeychain}
}

// hostResource is an authn.Resource for a bare registry host.
type hostResource string

func (h hostResource) String() string      { return string(h) }
func (h hostResource) RegistryStr() string { return string(h) }

// normalizeHost maps the host BuildKit uses for Docker Hub to the one go-containerregistry
// and the Docker config use.
func normalizeHost(host string) string {
	host = strings.ToLower(host)
	if host == dockerHubHost || host == "docker.io" {
		return name.DefaultRegistry
	}
	return host
}

// Resolve implements authn.Keychain.
func (c *credentials) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return c.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain.
func (c *credentials) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	host := normalizeHost(r.RegistryStr())
	if c.fn != nil {
		if user, secret, ok := c.fn(host); ok {
			if user == "" && secret != "" {
				return authn.FromConfig(authn.AuthConfig{IdentityToken: secret}), nil
			}
			return authn.FromConfig(authn.AuthConfig{Username: user, Password: secret}), nil
		}
	}
	if c.fallback == nil {
		return authn.Anonymous, nil
	}
	return authn.Resolve(ctx, c.fallback, r)
}

// lookup returns the username and secret for host; both empty means anonymous. An identity
// token comes back as a secret with an empty username, as BuildKit expects.
func (c *credentials) lookup(ctx context.Context, host string) (username, secret string, err error) {
	a, err := c.ResolveContext(ctx, hostResource(normalizeHost(host)))
	if err != nil {
		return "", "", err
	}
	cfg, err := authn.Authorization(ctx, a)
	if err != nil {
		return "", "", err
	}
	switch {
	case cfg.IdentityToken != "":
		return "", cfg.IdentityToken, nil
	case cfg.Username != "" || cfg.Password != "":
		return cfg.Username, cfg.Password, nil
	case cfg.Auth != "":
		dec, err := base64.StdEncoding.DecodeString(cfg.Auth)
		if err != nil {
			return "", "", errors.New("malformed auth entry in the Docker config")
		}
		user, pass, ok := strings.Cut(string(dec), ":")
		if !ok {
			return "", "", errors.New("malformed auth entry in the Docker config")
		}
		return user, pass, nil
	case cfg.RegistryToken != "":
		return "", "", errors.New("registry bearer tokens from the Docker config are not supported for builds")
	}
	return "", "", nil
}

// authServer answers BuildKit's credential requests over the session. It implements only
// Credentials: BuildKit treats Unimplemented from GetTokenAuthority and VerifyTokenAuthority
// as "no client-side token authority" and then fetches registry tokens itself with these
// credentials, so FetchToken is never called. Nothing here logs; errors never carry secrets.
type authServer struct {
	auth.UnimplementedAuthServer
	creds *credentials
}

func (s *authServer) Register(server *grpc.Server) {
	auth.RegisterAuthServer(server, s)
}

func (s *authServer) Credentials(ctx context.Context, req *auth.CredentialsRequest) (*auth.CredentialsResponse, error) {
	user, secret, err := s.creds.lookup(ctx, req.GetHost())
	if err != nil {
		return nil, fmt.Errorf("loading credentials for %s: %w", normalizeHost(req.GetHost()), err)
	}
	return &auth.CredentialsResponse{Username: user, Secret: secret}, nil
}
