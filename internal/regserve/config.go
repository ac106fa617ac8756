package regserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/imagebuilder/imagebuilder/internal/registry"
)

// DefaultListen is the address served when none is given: loopback only.
const DefaultListen = "127.0.0.1:5000"

// CredentialsFunc returns the credentials to pull from an upstream host with (empty for
// anonymous access).
type CredentialsFunc func(ctx context.Context, host string) (registry.Credentials, error)

// Config is what `imagebuilder registry serve` is given.
type Config struct {
	// Listen is host:port; "" is DefaultListen. Port 0 picks a free port.
	Listen string
	// Root is the storage directory (created when missing).
	Root string
	// Upstreams are --upstream values: "URL" (the default rule) or "PREFIX=URL".
	Upstreams []string
	// UpstreamInsecure lists upstream hosts that may be reached over plain http although they
	// are not loopback.
	UpstreamInsecure []string
	// Htpasswd is an htpasswd file (bcrypt entries); every request must then authenticate.
	Htpasswd string
	// TLSCert and TLSKey serve HTTPS; both or neither.
	TLSCert, TLSKey string
	// Credentials for the upstreams; nil reads the Docker config and its credential helpers.
	Credentials CredentialsFunc
	// Logger receives the server's own messages (warnings, upstreams reached); nil discards.
	Logger *slog.Logger
	// LogOutput, when set, receives distribution's own log (process-wide: it logs through
	// logrus's standard logger) at LogLevel (debug, info, warn, error; default info), with the
	// upstream credentials masked.
	LogOutput io.Writer
	LogLevel  string
}

func (c Config) listen() string {
	if c.Listen == "" {
		return DefaultListen
	}
	return c.Listen
}

// Check validates c and returns the warnings it deserves (a reachable, unprotected
// registry); errors name the flag.
func (c Config) Check() (warnings []string, err error) {
	_, warnings, err = c.check()
	return warnings, err
}

func (c Config) check() (*Router, []string, error) {
	var errs, warnings []string
	if strings.TrimSpace(c.Root) == "" {
		errs = append(errs, "--root: a storage directory is required")
	} else if fi, err := os.Stat(c.Root); err == nil && !fi.IsDir() {
		errs = append(errs, fmt.Sprintf("--root %q: not a directory", c.Root))
	}
	host, port, err := net.SplitHostPort(c.listen())
	if err != nil {
		errs = append(errs, fmt.Sprintf("--listen %q: not HOST:PORT", c.listen()))
	} else if _, perr := net.LookupPort("tcp", port); perr != nil {
		errs = append(errs, fmt.Sprintf("--listen %q: bad port %q", c.listen(), port))
	}
	if c.LogLevel != "" {
		if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
			errs = append(errs, fmt.Sprintf("--log-level %q: debug, info, warn or error", c.LogLevel))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, "--tls-cert and --tls-key go together")
	}
	for _, f := range []struct{ flag, path string }{{"--tls-cert", c.TLSCert}, {"--tls-key", c.TLSKey}, {"--htpasswd", c.Htpasswd}} {
		if f.path == "" {
			continue
		}
		// distribution creates a missing htpasswd file with a generated password that it
		// logs: never let it get that far.
		if fi, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", f.flag, err))
		} else if fi.IsDir() {
			errs = append(errs, fmt.Sprintf("%s %q: a directory, not a file", f.flag, f.path))
		}
	}
	var rules []Upstream
	for _, raw := range c.Upstreams {
		u, err := ParseUpstream(raw, c.UpstreamInsecure)
		if err != nil {
			// Quote only the prefix: the URL may carry credentials.
			prefix, _, hasPrefix := strings.Cut(raw, "=")
			if hasPrefix && !strings.Contains(prefix, "://") {
				errs = append(errs, fmt.Sprintf("--upstream %s=…: %v", prefix, err))
			} else {
				errs = append(errs, fmt.Sprintf("--upstream: %v", err))
			}
			continue
		}
		rules = append(rules, u)
	}
	router, err := NewRouter(rules)
	if err != nil {
		errs = append(errs, "--upstream: "+err.Error())
	}
	if len(errs) > 0 {
		return nil, nil, errors.New(strings.Join(errs, "; "))
	}
	if !registry.IsLoopback(host) {
		where := host
		if where == "" {
			where = "every interface"
		}
		switch {
		case c.Htpasswd != "" && c.TLSCert == "":
			return nil, nil, fmt.Errorf("--listen %q: --htpasswd without --tls-cert on a non-loopback address would send passwords in clear over the network", c.listen())
		case c.Htpasswd == "" && c.TLSCert == "":
			warnings = append(warnings, fmt.Sprintf("listening on %s without --htpasswd or TLS: anyone who can reach it can push and pull, in clear", where))
		case c.Htpasswd == "":
			warnings = append(warnings, fmt.Sprintf("listening on %s without --htpasswd: anyone who can reach it can push", where))
		}
	}
	return router, warnings, nil
}
