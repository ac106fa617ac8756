package regserve

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/distribution/v3/registry/handlers"
	registrymiddleware "github.com/distribution/distribution/v3/registry/middleware/registry"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"

	// The access controller and the storage driver register themselves by import.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/registry"
)

// Ready is what the server prints once it accepts connections.
type Ready struct {
	// Listen is the address it listens on (the port resolved when 0 was asked for).
	Listen string `json:"listen"`
	// URL is how clients reach it: http:// or https:// and Listen.
	URL string `json:"url"`
	// Root is the absolute storage directory.
	Root string `json:"root"`
	// Upstreams are the routing rules, longest prefix first.
	Upstreams []Upstream `json:"upstreams"`
	// Auth is "htpasswd" or "none".
	Auth string `json:"auth"`
}

// Server is a running embedded registry.
type Server struct {
	ready Ready
	app   *handlers.App
	http  *http.Server
	ln    net.Listener
	ns    *namespace
	log   *slog.Logger
	tls   bool
}

// middlewareName is the registry middleware through which the routing namespace wraps the
// storage; the options carry the *namespace to fill in.
const middlewareName = "imagebuilder-regserve"

var registerOnce sync.Once

func registerMiddleware() {
	registerOnce.Do(func() {
		_ = registrymiddleware.Register(middlewareName, func(ctx context.Context, reg distribution.Namespace, driver storagedriver.StorageDriver, options map[string]any) (distribution.Namespace, error) {
			ns, ok := options["namespace"].(*namespace)
			if !ok {
				return nil, errors.New("regserve middleware: no namespace in the options")
			}
			ns.Namespace, ns.driver = reg, driver
			return ns, nil
		})
	})
}

// New checks cfg, opens the storage and starts listening; Serve then answers requests.
// Nothing is asked of the upstreams before a request needs them.
func New(ctx context.Context, cfg Config) (*Server, error) {
	router, warnings, err := cfg.check()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("resolving --root %q: %w", cfg.Root, err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating --root: %w", err)
	}
	redactor := redact.New()
	if cfg.LogOutput != nil {
		lvl, err := logrus.ParseLevel(cmp.Or(cfg.LogLevel, "info"))
		if err != nil {
			return nil, fmt.Errorf("--log-level: %w", err)
		}
		logrus.SetLevel(lvl)
		logrus.SetOutput(redactor.Writer(cfg.LogOutput))
		logrus.SetFormatter(urlMasking{&logrus.TextFormatter{}})
	}
	ns := &namespace{
		router:   router,
		proxies:  map[string]distribution.Namespace{},
		creds:    cfg.Credentials,
		redactor: redactor,
		log:      log,
	}
	if ns.creds == nil {
		ns.creds = dockerConfigCredentials
	}

	registerMiddleware()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	dc := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": root},
			"delete":     configuration.Parameters{"enabled": true},
		},
		Middleware: map[string][]configuration.Middleware{
			"registry": {{Name: middlewareName, Options: configuration.Parameters{"namespace": ns}}},
		},
	}
	dc.HTTP.Secret = hex.EncodeToString(secret)
	// What distribution's configuration parser would default.
	dc.Catalog.MaxEntries, dc.Tags.MaxTags = 1000, 1000
	dc.Validation.Manifests.URLs.Allow = []string{"^https?://"}
	authMode := "none"
	if cfg.Htpasswd != "" {
		authMode = "htpasswd"
		dc.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "imagebuilder-registry", "path": cfg.Htpasswd}}
	}
	app, err := newApp(ctx, dc)
	if err != nil {
		return nil, err
	}

	var access auth.AccessController
	if cfg.Htpasswd != "" {
		if access, err = auth.GetAccessController("htpasswd", dc.Auth["htpasswd"]); err != nil {
			app.Shutdown()
			return nil, fmt.Errorf("reading --htpasswd: %w", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.listen())
	if err != nil {
		app.Shutdown()
		return nil, fmt.Errorf("listening on %s: %w", cfg.listen(), err)
	}
	s := &Server{app: app, ln: ln, ns: ns, log: log}
	s.http = &http.Server{
		Handler:           withMethod(&extensions{next: app, ns: ns, access: access}),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			ln.Close()
			app.Shutdown()
			return nil, fmt.Errorf("loading --tls-cert and --tls-key: %w", err)
		}
		s.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.tls, scheme = true, "https"
	}
	s.ready = Ready{
		Listen:    ln.Addr().String(),
		URL:       scheme + "://" + ln.Addr().String(),
		Root:      root,
		Upstreams: router.Upstreams(),
		Auth:      authMode,
	}
	if s.ready.Upstreams == nil {
		s.ready.Upstreams = []Upstream{}
	}
	return s, nil
}

// newApp builds distribution's application, which panics on a configuration it rejects.
func newApp(ctx context.Context, dc *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("starting the registry: %v", r)
		}
	}()
	return handlers.NewApp(ctx, dc), nil
}

// Ready describes the listening server.
func (s *Server) Ready() Ready { return s.ready }

// Serve answers requests until Shutdown; it returns nil after a Shutdown.
func (s *Server) Serve() error {
	var err error
	if s.tls {
		err = s.http.ServeTLS(s.ln, "", "")
	} else {
		err = s.http.Serve(s.ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, lets the requests in flight finish (until ctx ends,
// then closes them), and removes the upload sessions left unfinished: after a shutdown no
// client can resume them.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	s.app.Shutdown()
	if _, serr := s.ns.driver.Stat(context.Background(), storageRepositories); serr == nil { // else nothing was ever stored
		deleted, errs := storage.PurgeUploads(context.Background(), s.ns.driver, time.Now().Add(time.Minute), true)
		if len(deleted) > 0 {
			s.log.Info("removed unfinished uploads", "files", len(deleted))
		}
		for _, e := range errs {
			err = errors.Join(err, fmt.Errorf("removing unfinished uploads: %w", e))
		}
	}
	return err
}

// Run serves cfg until ctx ends, then shuts down, giving requests in flight up to grace to
// finish. ready is called once the server listens.
func Run(ctx context.Context, cfg Config, grace time.Duration, ready func(Ready)) error {
	s, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	if ready != nil {
		ready(s.Ready())
	}
	select {
	case err := <-done:
		s.app.Shutdown()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err = s.Shutdown(sctx)
	if serr := <-done; serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

// dockerConfigCredentials reads the credentials of host from the Docker config and its
// credential helpers, as imagebuilder's registry client does.
func dockerConfigCredentials(ctx context.Context, host string) (registry.Credentials, error) {
	c, err := registry.New()
	if err != nil {
		return registry.Credentials{}, err
	}
	creds, _, err := c.Auth(ctx, host)
	return creds, err
}

// urlMasking shows the request URIs distribution logs as imagebuilder shows every URL: query
// values masked (an upload's _state, say).
type urlMasking struct{ logrus.Formatter }

func (f urlMasking) Format(e *logrus.Entry) ([]byte, error) {
	for k, v := range e.Data {
		if s, ok := v.(string); ok && strings.HasSuffix(k, ".uri") {
			e.Data[k] = redact.URL(s)
		}
	}
	return f.Formatter.Format(e)
}
