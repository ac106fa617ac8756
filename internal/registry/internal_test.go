package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/redact"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func statusErr(code int, path string) error {
	return &transport.Error{StatusCode: code, Request: &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "https", Host: "r.example", Path: path}}}
}

func TestRetryable(t *testing.T) {
	c, err := New(WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	urlErr := func(err error) error { return &url.Error{Op: "Get", URL: "https://r.example/v2/", Err: err} }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"500", statusErr(500, "/v2/x/manifests/y"), true},
		{"502", statusErr(502, "/v2/"), true},
		{"503", statusErr(503, "/v2/"), true},
		{"504", statusErr(504, "/v2/"), true},
		{"501", statusErr(501, "/v2/"), false},
		{"400", statusErr(400, "/v2/"), false},
		{"401", statusErr(401, "/v2/"), false},
		{"403", statusErr(403, "/v2/"), false},
		{"404", statusErr(404, "/v2/x/manifests/y"), false},
		{"408", statusErr(408, "/v2/"), false},
		{"429", statusErr(429, "/v2/"), false},
		{"connection reset", urlErr(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true},
		{"broken pipe", urlErr(&net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}), true},
		{"unexpected EOF", urlErr(io.ErrUnexpectedEOF), true},
		{"EOF", urlErr(io.EOF), true},
		{"timeout", urlErr(timeoutErr{}), true},
		{"connection refused", urlErr(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), false},
		{"cancelled", urlErr(context.Canceled), false},
		{"deadline", urlErr(context.DeadlineExceeded), false},
		{"other", errors.New("tls: first record does not look like a TLS handshake"), false},
	}
	for _, tt := range tests {
		if got := c.retryable(tt.err); got != tt.want {
			t.Errorf("retryable(%s: %v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error // nil: neither sentinel
	}{
		{"manifest 404", statusErr(404, "/v2/x/manifests/y"), ErrNotFound},
		{"blob 404", statusErr(404, "/v2/x/blobs/sha256:00"), ErrNotFound},
		{"ping 404 is no registry, not a missing image", statusErr(404, "/v2/"), nil},
		{"401", statusErr(401, "/v2/"), ErrUnauthorized},
		{"403 token", statusErr(403, "/token"), ErrUnauthorized},
		{"wrapped 404", fmt.Errorf("resolving: %w", statusErr(404, "/v2/x/manifests/y")), ErrNotFound},
		{"500", statusErr(500, "/v2/x/manifests/y"), nil},
		{"405", statusErr(405, "/v2/x/manifests/sha256:00"), ErrUnsupported},
		{"UNSUPPORTED code", &transport.Error{StatusCode: 400, Errors: []transport.Diagnostic{{Code: transport.UnsupportedErrorCode}}}, ErrUnsupported},
		{"plain", errors.New("boom"), nil},
	}
	for _, tt := range tests {
		got := classify(tt.err)
		for _, sentinel := range []error{ErrNotFound, ErrUnauthorized, ErrUnsupported} {
			if is := errors.Is(got, sentinel); is != (sentinel == tt.want) {
				t.Errorf("%s: errors.Is(classify(err), %v) = %v", tt.name, sentinel, is)
			}
		}
		if got.Error() != tt.err.Error() {
			t.Errorf("%s: classify changed the message to %q", tt.name, got)
		}
		var terr *transport.Error
		if errors.As(tt.err, &terr) && !errors.As(got, &terr) {
			t.Errorf("%s: classify lost the *transport.Error", tt.name)
		}
	}
}

func TestScrub(t *testing.T) {
	c := &Client{red: redact.New()}
	c.addCredentials(Credentials{Username: "u", Password: "pa ss/wörd", IdentityToken: "refresh-456"})
	c.red.AddAuthorization("Bearer bearer-123")
	c.red.AddAuthorization("Basic")
	m := redact.Mask
	tests := []struct{ in, want string }{
		{"no secret here", "no secret here"},
		{"password pa ss/wörd!", "password " + m + "!"},
		{"query pa+ss%2Fw%C3%B6rd", "query " + m},
		{"path pa%20ss%2Fw%C3%B6rd", "path " + m},
		{"basic " + "dTpwYSBzcy93w7ZyZA==", "basic " + m},
		{"bearer-123 used, refresh-456 too", m + " used, " + m + " too"},
		{"GET /token: no token in bearer response:\n{\"refresh_token\":\"unknown-secret\"}", "GET /token: no token in bearer response (response body withheld)"},
	}
	for _, tt := range tests {
		if got := c.scrub(tt.in); got != tt.want {
			t.Errorf("scrub(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
