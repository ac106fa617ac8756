package builder

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/session/auth"
	"google.golang.org/grpc"
)

// dockerHubHost is the host BuildKit asks credentials for when it talks to Docker Hub.
const dockerHubHost = "registry-1.docker.io"

// normalizeHost maps the host BuildKit uses for Docker Hub to the one go-containerregistry
// and the Docker config use.
func normalizeHost(host string) string {
	host = strings.ToLower(host)
	if host == dockerHubHost || host == "docker.io" {
		return name.DefaultRegistry
	}
	return host
}

// authServer answers BuildKit's credential requests over the session with the request's
// Credentials callback (nil: anonymous). It implements only Credentials: BuildKit treats
// Unimplemented from GetTokenAuthority and VerifyTokenAuthority as "no client-side token
// authority" and then fetches registry tokens itself with these credentials, so FetchToken is
// never called. Nothing here logs; errors never carry secrets.
type authServer struct {
	auth.UnimplementedAuthServer
	creds func(host string) (username, secret string, err error)
}

func (s *authServer) Register(server *grpc.Server) {
	auth.RegisterAuthServer(server, s)
}

func (s *authServer) Credentials(_ context.Context, req *auth.CredentialsRequest) (*auth.CredentialsResponse, error) {
	if s.creds == nil {
		return &auth.CredentialsResponse{}, nil
	}
	host := normalizeHost(req.GetHost())
	user, secret, err := s.creds(host)
	if err != nil {
		return nil, fmt.Errorf("loading credentials for %s: %w", host, err)
	}
	return &auth.CredentialsResponse{Username: user, Secret: secret}, nil
}
