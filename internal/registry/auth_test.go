package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/logs"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/registry"
)

const (
	user = "builder"
	// canaryPassword and canaryToken must never appear in an error, a log line or formatted
	// credentials.
	canaryPassword = "canary-PASSWORD-5f3a9c71"
	canaryToken    = "canary-TOKEN-b81e77d042"
)

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// basicAuth guards h with HTTP basic auth. A hostile registry (echo) quotes the credentials
// it got in its error bodies, and quotes the Authorization header when a manifest named
// "echo" is asked for.
func basicAuth(h http.Handler, password string, echo bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			msg := "authentication required"
			if echo {
				msg = fmt.Sprintf("bad credentials %s:%s (%s)", u, p, r.Header.Get("Authorization"))
			}
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
			return
		}
		if echo && strings.HasSuffix(r.URL.Path, "/manifests/echo") {
			writeError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "unknown for "+r.Header.Get("Authorization"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bearerAuth guards h with a token server on the same host (/token, basic auth) handing out
// token. echo works as for basicAuth.
func bearerAuth(h http.Handler, password, token string, echo bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != password {
				msg := "bad credentials"
				if echo {
					msg = fmt.Sprintf("bad credentials %s:%s (%s)", u, p, r.Header.Get("Authorization"))
				}
				writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"token": token, "access_token": token})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test"`, r.Host))
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "token required")
			return
		}
		if echo && strings.HasSuffix(r.URL.Path, "/manifests/echo") {
			writeError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "unknown for "+r.Header.Get("Authorization"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

type authServer struct {
	name string
	wrap func(h http.Handler, echo bool) http.Handler
}

var authServers = []authServer{
	{"basic", func(h http.Handler, echo bool) http.Handler { return basicAuth(h, canaryPassword, echo) }},
	{"bearer", func(h http.Handler, echo bool) http.Handler { return bearerAuth(h, canaryPassword, canaryToken, echo) }},
}

var setupAuth = remote.WithAuth(&authn.Basic{Username: user, Password: canaryPassword})

func good() registry.Credentials {
	return registry.Credentials{Username: user, Password: canaryPassword}
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	for _, s := range authServers {
		t.Run(s.name, func(t *testing.T) {
			host := serve(t, s.wrap(memRegistry(), false))
			ref := host + "/auth/app:v1"
			want := push(t, ref, image(t, "linux/amd64", false), setupAuth)

			// Explicit credentials.
			c := newClient(t, noKeychain, registry.WithCredentials(host, good()))
			if d, err := c.Resolve(ctx, ref); err != nil || d.Digest != want {
				t.Errorf("Resolve with credentials = %+v, %v; want %s", d, err, want)
			}
			// Wrong and missing credentials.
			for what, opts := range map[string][]registry.Option{
				"wrong":   {noKeychain, registry.WithCredentials(host, registry.Credentials{Username: user, Password: "nope"})},
				"missing": {noKeychain},
			} {
				_, err := newClient(t, opts...).Resolve(ctx, ref)
				if !errors.Is(err, registry.ErrUnauthorized) {
					t.Errorf("Resolve with %s credentials: err = %v, want ErrUnauthorized", what, err)
				}
				if err != nil && !strings.Contains(err.Error(), ref) {
					t.Errorf("Resolve with %s credentials: error %q does not name %s", what, err, ref)
				}
			}
		})
	}
}

func TestKeychainFallback(t *testing.T) {
	ctx := context.Background()
	host := serve(t, basicAuth(memRegistry(), canaryPassword, false))
	ref := host + "/auth/app:v1"
	want := push(t, ref, image(t, "linux/amd64", false), setupAuth)

	t.Run("docker config", func(t *testing.T) {
		dockerConfig(t, map[string]authn.AuthConfig{host: {Username: user, Password: canaryPassword}})
		c := newClient(t)
		if d, err := c.Resolve(ctx, ref); err != nil || d.Digest != want {
			t.Errorf("Resolve with Docker config credentials = %+v, %v; want %s", d, err, want)
		}
		creds, ok, err := c.Auth(ctx, host)
		if err != nil || !ok || creds != good() {
			t.Errorf("Auth(%s) = %v, %v, %v; want the Docker config's credentials", host, creds, ok, err)
		}
		if _, ok, err := c.Auth(ctx, "other.example.com"); err != nil || ok {
			t.Errorf("Auth(other host) = %v, %v; want no credentials", ok, err)
		}
	})
	t.Run("explicit credentials win", func(t *testing.T) {
		dockerConfig(t, map[string]authn.AuthConfig{host: {Username: user, Password: "stale"}})
		c := newClient(t, registry.WithCredentials("http://"+host+"/team", good()))
		if d, err := c.Resolve(ctx, ref); err != nil || d.Digest != want {
			t.Errorf("Resolve = %+v, %v; want %s", d, err, want)
		}
		if creds, ok, err := c.Auth(ctx, host); err != nil || !ok || creds != good() {
			t.Errorf("Auth(%s) = %v, %v, %v; want the explicit credentials", host, creds, ok, err)
		}
	})
	t.Run("docker config rejected", func(t *testing.T) {
		dockerConfig(t, map[string]authn.AuthConfig{host: {Username: user, Password: "stale"}})
		if _, err := newClient(t).Resolve(ctx, ref); !errors.Is(err, registry.ErrUnauthorized) {
			t.Errorf("Resolve with stale Docker config: err = %v, want ErrUnauthorized", err)
		}
	})
	t.Run("identity token", func(t *testing.T) {
		dockerConfig(t, map[string]authn.AuthConfig{"registry.example.com": {IdentityToken: canaryToken}})
		creds, ok, err := newClient(t).Auth(ctx, "registry.example.com")
		if err != nil || !ok || creds.IdentityToken != canaryToken {
			t.Errorf("Auth = %v, %v, %v; want the identity token", creds, ok, err)
		}
	})
}

// TestDockerHubNames checks that Docker Hub's aliases find the same credentials, as in
// go-containerregistry's name package and Docker's config ("https://index.docker.io/v1/").
func TestDockerHubNames(t *testing.T) {
	ctx := context.Background()
	hub := registry.Credentials{Username: "hubuser", Password: canaryPassword}
	aliases := []string{"docker.io", "index.docker.io", "https://index.docker.io/v1/", "docker.io/library"}

	t.Run("docker config", func(t *testing.T) {
		dockerConfig(t, map[string]authn.AuthConfig{authn.DefaultAuthKey: {Username: hub.Username, Password: hub.Password}})
		c := newClient(t)
		for _, a := range aliases {
			if creds, ok, err := c.Auth(ctx, a); err != nil || !ok || creds != hub {
				t.Errorf("Auth(%q) = %v, %v, %v; want the Docker Hub entry", a, creds, ok, err)
			}
		}
	})
	t.Run("explicit", func(t *testing.T) {
		for _, given := range aliases {
			c := newClient(t, noKeychain, registry.WithCredentials(given, hub))
			for _, a := range aliases {
				if creds, ok, err := c.Auth(ctx, a); err != nil || !ok || creds != hub {
					t.Errorf("WithCredentials(%q): Auth(%q) = %v, %v, %v", given, a, creds, ok, err)
				}
			}
		}
	})
}

func TestCheckPush(t *testing.T) {
	ctx := context.Background()
	for _, s := range authServers {
		t.Run(s.name, func(t *testing.T) {
			var writes atomic.Int32
			h := s.wrap(memRegistry(), false)
			host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet && r.Method != http.MethodHead {
					writes.Add(1)
				}
				h.ServeHTTP(w, r)
			}))
			repo := host + "/team/app"
			tests := []struct {
				name    string
				opts    []registry.Option
				wantErr string // "" for success
			}{
				{"good", []registry.Option{registry.WithCredentials(host, good())}, ""},
				{"wrong password", []registry.Option{registry.WithCredentials(host, registry.Credentials{Username: user, Password: "nope"})}, "checking push access"},
				{"no credentials", nil, "no credentials are configured"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					err := newClient(t, append(tt.opts, noKeychain)...).CheckPush(ctx, repo)
					if tt.wantErr == "" {
						if err != nil {
							t.Fatalf("CheckPush: %v", err)
						}
						return
					}
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), repo) {
						t.Fatalf("CheckPush: err = %v, want one naming %s and containing %q", err, repo, tt.wantErr)
					}
					if !errors.Is(err, registry.ErrUnauthorized) {
						t.Errorf("CheckPush: err = %v, want ErrUnauthorized", err)
					}
				})
			}
			if n := writes.Load(); n != 0 {
				t.Errorf("CheckPush sent %d writing requests, want none", n)
			}
		})
	}

	t.Run("open registry", func(t *testing.T) {
		host := serve(t, memRegistry())
		if err := newClient(t, noKeychain).CheckPush(ctx, host+"/team/app"); err != nil {
			t.Errorf("CheckPush: %v", err)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		host := l.Addr().String()
		l.Close()
		err = newClient(t, noKeychain, registry.WithRetry(1, 0)).CheckPush(ctx, host+"/team/app")
		if err == nil || errors.Is(err, registry.ErrUnauthorized) || !strings.Contains(err.Error(), host) {
			t.Errorf("CheckPush: err = %v, want a connection error naming %s", err, host)
		}
	})
	t.Run("plain HTTP refused for a non-loopback host", func(t *testing.T) {
		// Any address works: the request must be refused before it is sent. 10.x would make
		// go-containerregistry fall back to plain HTTP on its own.
		err := newClient(t, noKeychain, registry.WithRetry(1, 0), registry.WithTransport(failTransport{t})).CheckPush(ctx, "10.1.2.3:5000/team/app")
		if err == nil || !strings.Contains(err.Error(), "refusing plain HTTP to 10.1.2.3:5000") {
			t.Errorf("CheckPush: err = %v, want plain HTTP refused", err)
		}
	})
}

// failTransport fails every HTTPS request and fails the test on any other.
type failTransport struct{ t *testing.T }

func (f failTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		f.t.Errorf("request sent over %s to %s", r.URL.Scheme, r.URL.Host)
	}
	return nil, errors.New("no network in this test")
}

// TestSecretsNeverLeak runs every operation with right and wrong credentials, from the
// params and from the Docker config, against basic and bearer registries, honest ones and
// hostile ones that quote the credentials and tokens they receive in their error bodies. It
// checks that neither the password nor the token appears in any error or in the client's
// log, and, for honest registries (go-containerregistry's debug log dumps response bodies
// verbatim), in go-containerregistry's own logs.
func TestSecretsNeverLeak(t *testing.T) {
	saved := []*log.Logger{logs.Debug, logs.Warn, logs.Progress}
	t.Cleanup(func() { logs.Debug, logs.Warn, logs.Progress = saved[0], saved[1], saved[2] })

	secretsIn := func(s string) []string {
		var found []string
		for _, secret := range []string{canaryPassword, canaryToken, b64(user + ":" + canaryPassword)} {
			if strings.Contains(s, secret) {
				found = append(found, secret)
			}
		}
		return found
	}
	ctx := context.Background()
	wrong := registry.Credentials{Username: user, Password: canaryPassword + "-wrong"}

	for _, hostile := range []bool{false, true} {
		for _, s := range authServers {
			t.Run(fmt.Sprintf("%s/hostile=%v", s.name, hostile), func(t *testing.T) {
				var ggcrLog, clientLog syncBuffer
				if hostile {
					logs.Debug, logs.Warn, logs.Progress = saved[0], saved[1], saved[2]
				} else {
					logs.Debug = log.New(&ggcrLog, "debug: ", 0)
					logs.Warn = log.New(&ggcrLog, "warn: ", 0)
					logs.Progress = log.New(&ggcrLog, "progress: ", 0)
				}
				logger := slog.New(slog.NewTextHandler(&clientLog, &slog.HandlerOptions{Level: slog.LevelDebug}))

				host := serve(t, s.wrap(memRegistry(), hostile))
				repo := host + "/leak/app"
				amd := push(t, repo+":amd64", image(t, "linux/amd64", false), setupAuth)
				arm := push(t, repo+":arm64", image(t, "linux/arm64", false), setupAuth)

				// run calls every operation and returns the errors.
				run := func(c *registry.Client, wantOK bool) []error {
					var errs []error
					note := func(op string, err error) {
						switch {
						case err != nil:
							errs = append(errs, fmt.Errorf("%s: %w", op, err))
							if wantOK {
								t.Errorf("%s: %v", op, err)
							}
						case !wantOK:
							t.Errorf("%s succeeded with wrong credentials", op)
						}
					}
					_, err := c.Resolve(ctx, repo+":amd64")
					note("Resolve", err)
					_, err = c.Platforms(ctx, repo+":arm64")
					note("Platforms", err)
					idx, err := c.AssembleIndex(ctx, repo, []string{amd, arm})
					note("AssembleIndex", err)
					if idx == "" {
						idx = amd
					}
					note("Tag", c.Tag(ctx, repo+"@"+idx, repo+":v1", host+"/leak/copy:v1"))
					note("Delete", c.Delete(ctx, repo+":v1"))
					note("CheckPush", c.CheckPush(ctx, repo))
					// An error even with the right credentials; a hostile registry quotes
					// the Authorization header in it.
					// (Platforms, because it GETs the manifest: HEAD answers have no body.)
					if _, err = c.Platforms(ctx, repo+":echo"); err == nil {
						t.Error("Platforms echo: no error")
					}
					return append(errs, err)
				}

				var errs []error
				errs = append(errs, run(newClient(t, noKeychain, registry.WithCredentials(host, good()), registry.WithLogger(logger)), true)...)
				errs = append(errs, run(newClient(t, noKeychain, registry.WithCredentials(host, wrong), registry.WithLogger(logger)), false)...)
				dockerConfig(t, map[string]authn.AuthConfig{host: {Username: wrong.Username, Password: wrong.Password}})
				errs = append(errs, run(newClient(t, registry.WithLogger(logger)), false)...)

				for _, err := range errs {
					if found := secretsIn(err.Error()); len(found) > 0 {
						t.Errorf("error leaks %q: %v", found, err)
					}
				}
				if hostile && !strings.Contains(strings.Join(errorStrings(errs), "\n"), redact.Mask) {
					t.Error("no error had anything redacted: the hostile registry did not quote the credentials")
				}
				if !strings.Contains(clientLog.String(), "registry request") {
					t.Error("the client logged nothing")
				}
				if found := secretsIn(clientLog.String()); len(found) > 0 {
					t.Errorf("client log leaks %q", found)
				}
				if !hostile && ggcrLog.Len() == 0 {
					t.Error("go-containerregistry logged nothing")
				}
				if found := secretsIn(ggcrLog.String()); len(found) > 0 {
					t.Errorf("go-containerregistry's log leaks %q", found)
				}
			})
		}
	}
}

// syncBuffer is a bytes.Buffer several loggers can write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Len() int { return len(s.String()) }

func errorStrings(errs []error) []string {
	var s []string
	for _, err := range errs {
		s = append(s, err.Error())
	}
	return s
}

func TestCredentialsFormatting(t *testing.T) {
	c := registry.Credentials{Username: user, Password: canaryPassword, IdentityToken: canaryToken, RegistryToken: canaryToken}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&out, verb+"\n", c)
		fmt.Fprintf(&out, verb+"\n", &c)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(b)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("creds", "c", c)
	slog.New(slog.NewTextHandler(&out, nil)).Info("creds", "c", c)
	if s := out.String(); strings.Contains(s, canaryPassword) || strings.Contains(s, canaryToken) {
		t.Errorf("formatted credentials leak a secret:\n%s", s)
	}
	if !strings.Contains(out.String(), user) {
		t.Errorf("formatted credentials lost the user name:\n%s", out.String())
	}
}

// TestCredentialHelpers: a credential helper the Docker config names that is missing or fails
// is an error naming it, not an anonymous attempt.
func TestCredentialHelpers(t *testing.T) {
	ctx := context.Background()
	bin := t.TempDir()
	// A helper that crashes, and one that answers.
	writeScript(t, filepath.Join(bin, "docker-credential-ib-crash"), "#!/bin/sh\necho 'keyring locked' >&2\nexit 3\n")
	writeScript(t, filepath.Join(bin, "docker-credential-ib-good"), "#!/bin/sh\nread host\necho '{\"ServerURL\":\"'$host'\",\"Username\":\"u\",\"Secret\":\""+canaryPassword+"\"}'\n")
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dockerConfig(t, nil)
	cfg := `{"credHelpers": {"missing.example.com": "ib-missing", "crash.example.com": "ib-crash", "good.example.com": "ib-good"}}`
	if err := os.WriteFile(filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newClient(t)
	for host, want := range map[string]string{
		"missing.example.com": `reading credentials for missing.example.com: credential helper "ib-missing" (docker-credential-ib-missing, configured in `,
		"crash.example.com":   `reading credentials for crash.example.com: credential helper "ib-crash" (docker-credential-ib-crash, configured in `,
	} {
		_, _, err := c.Auth(ctx, host)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Auth(%s): err = %v\nwant %q", host, err, want)
		}
		// CheckPush stops there too, before any request.
		if err := c.CheckPush(ctx, host+"/team/app"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckPush(%s): err = %v", host, err)
		}
	}
	creds, ok, err := c.Auth(ctx, "good.example.com")
	if err != nil || !ok || creds.Password != canaryPassword {
		t.Errorf("a working helper: %v %v %v", creds, ok, err)
	}
	if _, ok, err := c.Auth(ctx, "none.example.com"); err != nil || ok {
		t.Errorf("a host without a helper: %v %v", ok, err)
	}
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}
