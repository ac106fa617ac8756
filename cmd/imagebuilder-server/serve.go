package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/api"
	"github.com/imagebuilder/imagebuilder/internal/auth"
	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/cli"
	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/service"
	"github.com/imagebuilder/imagebuilder/internal/webui"
)

// envOAuthClientSecret holds the introspection client's secret (never a flag: flags show in ps).
const envOAuthClientSecret = "IMAGEBUILDER_OAUTH_CLIENT_SECRET"

// defaultServeListen is serve's --listen.
const defaultServeListen = "127.0.0.1:8080"

func newServeCmd() *cobra.Command {
	var (
		listen, database, endpoint, secretKeyFile    string
		introspectionURL, clientID, issuer, audience string
		adminRole                                    string
		workers, maxAttempts                         int
		workersOnly, noAuth, allowLocal              bool
		rateLimit                                    float64
		authFailures                                 int
		jobTimeout, grace                            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve [--listen ADDR] [--database sqlite:///PATH|postgres://…] [--workers N] [--workers-only] [--no-auth]",
		Short: "Run the build service: SODALITE's REST API and ours, a durable queue, API keys and OAuth2, a web page",
		Long: `Serve the build service over HTTP on --listen: SODALITE image-builder's POST /build/ and
GET /status/{invocation_id}, imagebuilder's API under /v1, /healthz, /readyz, /metrics, the
OpenAPI document at /openapi.json and the build-history page at /. Builds are queued in the
database (River) and run by --workers workers of each replica; several replicas on one
PostgreSQL share the queue.

Callers authenticate with X-API-Key (keys from 'imagebuilder serve apikey create') or an OAuth2
bearer token (--oauth-introspection-url, or --oidc-issuer with --oidc-audience); a caller sees
only its own invocations unless it is an admin (an admin key, or --admin-role). --no-auth makes
every caller an admin and is refused unless --listen is a loopback address.

Submitted passwords are sealed (AES-256-GCM) until the build ends; the key comes from
IMAGEBUILDER_SECRET_KEY or --secret-key-file (with a SQLite database and neither, a key file is
created beside it; with PostgreSQL one of them is required). Builds use the server's build
engine (--builder, else the environment as for imagebuilder build) and its Docker config for
registries whose credentials the params do not carry. Documents may not use the server's own
files, environment or SSH agent unless --allow-local.

When it accepts connections it prints one JSON line on stdout:
{"listen":"127.0.0.1:8080","url":"http://127.0.0.1:8080","database":...,"workers":2,"auth":"keys"}
SIGINT or SIGTERM stops it: it stops accepting, requests in flight and running builds finish
(up to --shutdown-timeout; builds cut short go back to the queue), queued builds stay queued.
Exit status: 0 stopped by a signal, 1 failure, 2 usage error.`,
		Example: `  imagebuilder serve apikey create ci
  imagebuilder serve --listen 0.0.0.0:8080 --workers 4
  IMAGEBUILDER_SECRET_KEY=... imagebuilder serve --database postgres://ib@db/ib --workers-only
  imagebuilder serve --no-auth --workers 0`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			explicitListen := f.Changed("listen")
			if err := checkServeFlags(listen, workers, workersOnly, explicitListen, noAuth); err != nil {
				return err
			}
			if endpoint != "" {
				if _, err := builder.Select(endpoint); err != nil {
					return cli.UsageError{Err: fmt.Errorf("--builder: %w%s", err, cli.ContextHint(endpoint))}
				}
			}
			if (introspectionURL == "") != (clientID == "") {
				return cli.UsageError{Err: errors.New("--oauth-introspection-url and --oauth-client-id go together")}
			}
			if (issuer == "") != (audience == "") {
				return cli.UsageError{Err: errors.New("--oidc-issuer and --oidc-audience go together")}
			}
			if authFailures < 0 {
				return cli.UsageError{Err: fmt.Errorf("--auth-failure-limit must be 0 (no limit) or more, got %d", authFailures)}
			}
			if rateLimit < 0 {
				return cli.UsageError{Err: fmt.Errorf("--rate-limit must be 0 (no limit) or more, got %g", rateLimit)}
			}
			ctx := cmd.Context()
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			svc, err := service.Open(ctx, database, service.Options{
				Workers:       workers,
				Pipeline:      pipeline.Options{Endpoint: endpoint},
				SecretKeyFile: secretKeyFile,
				AllowLocal:    allowLocal,
				JobTimeout:    jobTimeout,
				MaxAttempts:   maxAttempts,
				Logger:        logger,
			})
			if err != nil {
				return err
			}
			defer svc.Close()
			authMode := authDescription(noAuth, introspectionURL, issuer)
			var handler *api.Server
			if !workersOnly || explicitListen {
				handler, err = api.New(ctx, svc, api.Config{
					Auth: auth.Config{
						IntrospectionURL: introspectionURL, ClientID: clientID, ClientSecret: os.Getenv(envOAuthClientSecret),
						OIDCIssuer: issuer, OIDCAudience: audience, AdminRole: adminRole, NoAuth: noAuth,
					},
					RateLimit:    rateLimit,
					AuthFailures: authFailures,
					UI:           webui.Handler(),
					Logger:       logger,
					HealthOnly:   workersOnly,
				})
				if err != nil {
					return err
				}
			}
			return runServer(ctx, cmd, svc, handler, listen, grace, api.Ready{
				Database: redactedURL(database), Workers: workers, Auth: authMode,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", defaultServeListen, "address to listen on, HOST:PORT (port 0: any free port); with --workers-only, given: health and metrics only")
	f.StringVar(&database, "database", service.DefaultDatabaseURL(), "the database: sqlite:///PATH (embedded) or postgres://USER@HOST/DB (shared by replicas)")
	f.IntVar(&workers, "workers", 2, "builds this replica runs at once (0: queue only)")
	f.BoolVar(&workersOnly, "workers-only", false, "run builds from the shared queue and serve no API (no listener unless --listen is given)")
	f.BoolVar(&noAuth, "no-auth", false, "no authentication: every caller is the admin \"anonymous\" (loopback --listen only)")
	cli.BuilderFlag(cmd, &endpoint, "of every build, over a request's builder.endpoint, which only --allow-local lets it set; default: the environment's engine")
	f.BoolVar(&allowLocal, "allow-local", false, "let documents use the server's files, environment and SSH agent (local sources, file/env secrets, ssh)")
	f.StringVar(&secretKeyFile, "secret-key-file", "", "file holding the 32-byte key that seals submitted secrets (default $IMAGEBUILDER_SECRET_KEY)")
	f.IntVar(&authFailures, "auth-failure-limit", api.DefaultAuthFailures, "failed authentications one client address may make at once before it is held to one a second (0: no limit)")
	f.Float64Var(&rateLimit, "rate-limit", 20, "requests a second each caller may make on average, bursts of ten seconds' worth (0: no limit)")
	f.StringVar(&introspectionURL, "oauth-introspection-url", "", "RFC 7662 token introspection endpoint that checks bearer tokens (client secret in $"+envOAuthClientSecret+")")
	f.StringVar(&clientID, "oauth-client-id", "", "client id the service authenticates to the introspection endpoint with")
	f.StringVar(&issuer, "oidc-issuer", "", "OpenID Connect issuer URL whose JWT access tokens are accepted")
	f.StringVar(&audience, "oidc-audience", "", "audience a JWT access token must carry (with --oidc-issuer)")
	f.StringVar(&adminRole, "admin-role", "", "token role (Keycloak realm role) or scope that makes its bearer an admin")
	f.DurationVar(&jobTimeout, "job-timeout", time.Hour, "longest one build may run")
	f.IntVar(&maxAttempts, "max-attempts", 3, "runs a build gets when the replicas running it die (a failed build is never retried)")
	f.DurationVar(&grace, "shutdown-timeout", 30*time.Second, "how long requests in flight and running builds may take to finish after SIGINT/SIGTERM")
	cmd.AddCommand(newAPIKeyCmd())
	return cmd
}

// checkServeFlags refuses the flag combinations that make no sense, as usage errors.
func checkServeFlags(listen string, workers int, workersOnly, explicitListen, noAuth bool) error {
	if workers < 0 {
		return cli.UsageError{Err: fmt.Errorf("--workers must be 0 or more, got %d", workers)}
	}
	if workersOnly && workers == 0 {
		return cli.UsageError{Err: errors.New("--workers-only with --workers 0 would run nothing")}
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return cli.UsageError{Err: fmt.Errorf("--listen %q: want HOST:PORT: %w", listen, err)}
	}
	if noAuth && !isLoopback(host) {
		return cli.UsageError{Err: fmt.Errorf("--no-auth is only allowed on a loopback address (--listen 127.0.0.1:PORT or [::1]:PORT), not %q", listen)}
	}
	return nil
}

// isLoopback reports whether host only reaches this machine: localhost or a loopback IP (an
// empty host listens on every interface).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func authDescription(noAuth bool, introspectionURL, issuer string) string {
	switch {
	case noAuth:
		return "none"
	case introspectionURL != "" && issuer != "":
		return "keys+introspection+oidc"
	case introspectionURL != "":
		return "keys+introspection"
	case issuer != "":
		return "keys+oidc"
	}
	return "keys"
}

// redactedURL is a database URL without its password.
func redactedURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

// runServer starts the workers and, with a handler, the HTTP server; it prints the ready line
// and runs until ctx ends, then shuts down gracefully within grace.
func runServer(ctx context.Context, cmd *cobra.Command, svc *service.Service, handler *api.Server, listen string, grace time.Duration, ready api.Ready) error {
	var srv *http.Server
	var ln net.Listener
	if handler != nil {
		var err error
		if ln, err = net.Listen("tcp", listen); err != nil {
			return fmt.Errorf("listening on %s: %w", listen, err)
		}
		srv = &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       time.Minute,
			WriteTimeout:      time.Minute, // log streams lift it for themselves
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          nil,
		}
		srv.RegisterOnShutdown(handler.CloseStreams)
		ready.Listen = ln.Addr().String()
		ready.URL = "http://" + ln.Addr().String()
	}
	if err := svc.Start(ctx); err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	served := make(chan error, 1)
	if srv != nil {
		go func() { served <- srv.Serve(ln) }()
	}
	line, _ := json.Marshal(ready)
	fmt.Fprintf(cmd.OutOrStdout(), "%s\n", line)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if srv != nil {
		if err := srv.Shutdown(stopCtx); err != nil && serveErr == nil {
			serveErr = fmt.Errorf("shutting the HTTP server down: %w", err)
		}
	}
	if err := svc.Stop(stopCtx); err != nil && serveErr == nil {
		serveErr = err
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

func newAPIKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey create|list|revoke",
		Short: "Manage the API keys of the build service",
		Long: `API keys authenticate callers of imagebuilder serve (header X-API-Key). A key is shown once, at
creation, and stored hashed; its name owns the invocations it submits. An admin key sees and
cancels everyone's invocations. Revoked keys keep their names.`,
	}
	var database, secretKeyFile string
	pf := cmd.PersistentFlags()
	pf.StringVar(&database, "database", service.DefaultDatabaseURL(), "the database of the service (as serve --database)")
	pf.StringVar(&secretKeyFile, "secret-key-file", "", "the service's secret key file (as serve --secret-key-file; a shared database needs the key)")
	open := func(ctx context.Context) (*service.Service, error) {
		return service.Open(ctx, database, service.Options{SecretKeyFile: secretKeyFile})
	}

	var admin bool
	create := &cobra.Command{
		Use:     "create NAME [--admin] [--database URL]",
		Short:   "Create an API key and print it (alone, on stdout)",
		Example: "  KEY=$(imagebuilder serve apikey create ci)\n  curl -H \"X-API-Key: $KEY\" http://127.0.0.1:8080/v1/invocations",
		Args:    cli.OneArg("key name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer svc.Close()
			key, err := svc.CreateKey(cmd.Context(), args[0], admin)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), key)
			return err
		},
	}
	create.Flags().BoolVar(&admin, "admin", false, "the key sees and cancels every caller's invocations")

	var output string
	list := &cobra.Command{
		Use:   "list [--output json|yaml]",
		Short: "List the API keys (names, admin, created, last used, revoked; never the keys)",
		Args:  cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer svc.Close()
			keys, err := svc.ListKeys(cmd.Context())
			if err != nil {
				return err
			}
			if keys == nil {
				keys = []service.Key{}
			}
			data, err := cli.Encode(output, nil, keys)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cli.OutputFlag(list, &output, "format: json or yaml")

	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an API key: requests with it are refused (401) from now on",
		Args:  cli.OneArg("key name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer svc.Close()
			if err := svc.RevokeKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "api key %q revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
