package schedule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/imagebuilder/imagebuilder/internal/builder"
)

func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("pushing 127.0.0.1:5000/x: %w", err) }
	tests := []struct {
		name            string
		err             error
		transient, lost bool
	}{
		{"nil", nil, false, false},
		{"registry 503", wrap(&transport.Error{StatusCode: http.StatusServiceUnavailable}), true, false},
		{"registry 429", wrap(&transport.Error{StatusCode: http.StatusTooManyRequests}), true, false},
		{"registry 404", wrap(&transport.Error{StatusCode: http.StatusNotFound}), false, false},
		{"registry 401", wrap(&transport.Error{StatusCode: http.StatusUnauthorized}), false, false},
		{"reset", wrap(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true, false},
		{"refused registry", wrap(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), true, false},
		{"unexpected EOF", wrap(io.ErrUnexpectedEOF), true, false},
		{"timeout", wrap(&net.DNSError{IsTimeout: true}), true, false},
		{"BuildKit connection lost mid-build", wrap(status.Error(codes.Unavailable, "error reading from server: EOF")), true, false},
		{"BuildKit push answered 502", errors.New(`failed to push 127.0.0.1:5000/x: unexpected status from PUT request to http://127.0.0.1:5000/v2/x/manifests/sha256:ab: 502 Bad Gateway`), true, false},
		{"BuildKit not there", wrap(status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial unix /x.sock: connect: no such file or directory"`)), true, true},
		{"builder could not connect", &builder.Error{Step: builder.StepConnect, Err: errors.New("listing workers: the endpoint has no workers")}, false, true},
		{"RUN failed", &builder.Error{Step: builder.StepBuild, Err: errors.New(`process "/bin/sh -c false" did not complete successfully: exit code: 1`)}, false, false},
		{"cancelled", &builder.Error{Step: builder.StepBuild, Err: fmt.Errorf("%w (%v)", context.Canceled, status.Error(codes.Unavailable, "transport is closing"))}, false, false},
		{"deadline", &builder.Error{Step: builder.StepConnect, Err: context.DeadlineExceeded}, false, false},
		{"Dockerfile error", errors.New("dockerfile parse error on line 1: unknown instruction: FORM"), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Transient(tc.err); got != tc.transient {
				t.Errorf("Transient = %v, want %v", got, tc.transient)
			}
			if got := Lost(tc.err); got != tc.lost {
				t.Errorf("Lost = %v, want %v", got, tc.lost)
			}
		})
	}
}

// TestUnreachableBuildKitIsLost classifies what a real builder returns for an
// endpoint nobody serves — a socket path that does not exist, a socket file
// nobody listens on (a killed buildkitd's), a refused TCP port, a Docker
// daemon that is not there — as Lost, with and without platforms (the
// builder asks the endpoint for its native platform first when none are
// given).
func TestUnreachableBuildKitIsLost(t *testing.T) {
	dir := t.TempDir()
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	closed := filepath.Join(dir, "closed.sock")
	ln, err := net.Listen("unix", closed)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	for _, ep := range []string{
		"unix://" + filepath.Join(dir, "missing.sock"),
		"unix://" + closed,
		"tcp://127.0.0.1:1",
		"docker+unix://" + filepath.Join(dir, "missing.sock"),
	} {
		for _, plats := range [][]string{nil, {"linux/amd64"}} {
			t.Run(fmt.Sprint(ep, plats), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				b, err := builder.New(ctx, ep)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				_, err = b.Build(ctx, builder.Request{
					ContextDir: ctxDir,
					Dockerfile: filepath.Join(ctxDir, "Dockerfile"),
					Platforms:  plats,
					Repository: "127.0.0.1:5000/schedule-test/unreachable",
					Publisher:  nopPublisher{},
				})
				t.Log(err)
				if err == nil || !Lost(err) {
					t.Errorf("Lost(%v) = false", err)
				}
			})
		}
	}
}

// nopPublisher satisfies the docker driver, which checks it has a publisher
// before it connects; nothing is ever pushed through it here.
type nopPublisher struct{}

func (nopPublisher) PushImage(context.Context, string, v1.Image) (string, error) {
	return "", errors.New("not pushing")
}

func (nopPublisher) AssembleIndex(context.Context, string, []string) (string, error) {
	return "", errors.New("not pushing")
}

func (nopPublisher) ReuseLayers(_ context.Context, _ string, _ types.MediaType, l []v1.Layer) []v1.Layer {
	return l
}
