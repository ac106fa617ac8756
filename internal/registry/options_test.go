package registry_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebuilder/imagebuilder/internal/registry"
)

func TestNewRejectsBadOptions(t *testing.T) {
	creds := registry.Credentials{Username: "u", Password: "p"}
	tests := []struct {
		name    string
		opts    []registry.Option
		wantErr string
	}{
		{"two transports", []registry.Option{registry.WithTransport(http.DefaultTransport), registry.WithTransport(http.DefaultTransport)}, "WithTransport: given twice"},
		{"nil transport", []registry.Option{registry.WithTransport(nil)}, "nil transport"},
		{"zero attempts", []registry.Option{registry.WithRetry(0, time.Second)}, "at least 1"},
		{"negative backoff", []registry.Option{registry.WithRetry(3, -time.Second)}, "negative backoff"},
		{"two retry policies", []registry.Option{registry.WithRetry(3, time.Second), registry.WithRetry(3, time.Second)}, "WithRetry: given twice"},
		{"conflicting credentials", []registry.Option{
			registry.WithCredentials("docker.io", creds),
			registry.WithCredentials("index.docker.io", registry.Credentials{Username: "u", Password: "other"}),
		}, "conflicting credentials for index.docker.io"},
		{"empty credentials", []registry.Option{registry.WithCredentials("example.com", registry.Credentials{})}, "empty credentials"},
		{"credentials in host", []registry.Option{registry.WithCredentials("u:secret@example.com", creds)}, "user information"},
		{"bad scheme", []registry.Option{registry.WithCredentials("ftp://example.com", creds)}, "unsupported scheme"},
		{"bad insecure host", []registry.Option{registry.WithInsecure("")}, "WithInsecure"},
		{"nil logger", []registry.Option{registry.WithLogger(nil)}, "nil logger"},
		{"two loggers", []registry.Option{registry.WithLogger(slog.Default()), registry.WithLogger(slog.Default())}, "WithLogger: given twice"},
		{"nil keychain", []registry.Option{registry.WithKeychain(nil)}, "nil keychain"},
		{"two keychains", []registry.Option{registry.WithKeychain(authn.DefaultKeychain), registry.WithKeychain(authn.DefaultKeychain)}, "WithKeychain: given twice"},
		{"empty user agent", []registry.Option{registry.WithUserAgent("")}, "empty user agent"},
		{"two user agents", []registry.Option{registry.WithUserAgent("a"), registry.WithUserAgent("b")}, "WithUserAgent: given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := registry.New(tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: client %v, err = %v; want an error containing %q", c, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestNewAcceptsRepeatedEqualOptions(t *testing.T) {
	creds := registry.Credentials{Username: "u", Password: "p"}
	newClient(t,
		registry.WithCredentials("docker.io", creds),
		registry.WithCredentials("https://index.docker.io/v1/", creds),
		registry.WithInsecure("registry.internal:5000"),
		registry.WithInsecure("registry.internal:5000"),
		registry.WithUserAgent("imagebuilder/test"),
		registry.WithUserAgent("imagebuilder/test"),
	)
}

func TestUserAgent(t *testing.T) {
	var ua atomic.Value
	h := memRegistry()
	host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ua.Store(r.UserAgent())
		h.ServeHTTP(w, r)
	}))
	c := newClient(t, noKeychain, registry.WithUserAgent("imagebuilder/1.2.3"))
	if _, err := c.Exists(context.Background(), host+"/ua/app:v1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := ua.Load().(string); !strings.Contains(got, "imagebuilder/1.2.3") {
		t.Errorf("User-Agent = %q, want it to contain imagebuilder/1.2.3", got)
	}
}

// dialTo is a transport that connects every request to addr, whatever its host, so a test
// can use registry names that are not loopback addresses.
func dialTo(addr string) http.RoundTripper {
	return &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
}

func TestInsecure(t *testing.T) {
	ctx := context.Background()
	addr := serve(t, memRegistry())
	const host = "registry.internal:5000"
	// Push through the fake name too.
	want := push(t, host+"/team/app:v1", image(t, "linux/amd64", false), remote.WithTransport(dialTo(addr)))

	c := newClient(t, noKeychain, registry.WithRetry(1, 0), registry.WithTransport(dialTo(addr)), registry.WithInsecure("http://"+host+"/team"))
	if d, err := c.Resolve(ctx, host+"/team/app:v1"); err != nil || d.Digest != want {
		t.Errorf("Resolve with WithInsecure = %+v, %v; want %s", d, err, want)
	}

	// Without WithInsecure only HTTPS is tried, and it fails against a plain HTTP server.
	c = newClient(t, noKeychain, registry.WithRetry(1, 0), registry.WithTransport(dialTo(addr)))
	if _, err := c.Resolve(ctx, host+"/team/app:v1"); err == nil || !strings.Contains(err.Error(), "https://"+host) {
		t.Errorf("Resolve without WithInsecure: err = %v, want an HTTPS failure", err)
	}
}

// TestTLSVerification: TLS is verified for every registry, loopback ones included, unless it
// is marked insecure, which also allows plain HTTP (one meaning of insecure everywhere).
func TestTLSVerification(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewTLSServer(memRegistry()) // a self-signed certificate
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")
	want := push(t, addr+"/team/app:v1", image(t, "linux/amd64", false), remote.WithTransport(srv.Client().Transport))

	for _, host := range []string{addr, "registry.internal:" + strings.Split(addr, ":")[1]} {
		c := newClient(t, noKeychain, registry.WithRetry(1, 0), registry.WithTransport(dialTo(addr)))
		_, err := c.Resolve(ctx, host+"/team/app:v1")
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s without insecure: err = %v, want a certificate error", host, err)
		}
		c = newClient(t, noKeychain, registry.WithRetry(1, 0), registry.WithTransport(dialTo(addr)), registry.WithInsecure(host))
		if d, err := c.Resolve(ctx, host+"/team/app:v1"); err != nil || d.Digest != want {
			t.Errorf("%s with insecure: %+v, %v; want %s", host, d, err, want)
		}
	}
}
