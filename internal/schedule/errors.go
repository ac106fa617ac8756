package schedule

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/imagebuilder/imagebuilder/internal/builder"
)

// Lost reports whether err says the build endpoint cannot be reached: the
// builder failed to connect ([builder.Error] at [builder.StepConnect]), or
// BuildKit's gRPC client could not dial it (status Unavailable, "Error while
// dialing": no socket, connection refused, no route). That is what a
// buildkitd that was never started, was killed or whose machine is gone
// answers, for both the buildkit and the docker drivers. A cancelled context
// is never Lost.
func Lost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var be *builder.Error
	if errors.As(err, &be) && be.Step == builder.StepConnect {
		return true
	}
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unavailable && strings.Contains(st.Message(), "while dialing")
}

// transientStatus are the HTTP answers of a registry worth retrying.
var transientStatus = map[int]bool{
	http.StatusTooManyRequests:     true,
	http.StatusInternalServerError: true,
	http.StatusBadGateway:          true,
	http.StatusServiceUnavailable:  true,
	http.StatusGatewayTimeout:      true,
}

// transientText are the texts of transient errors that reach us as text
// only: BuildKit returns the errors of its own pulls and pushes (and of RUN
// steps) over gRPC as messages.
var transientText = []string{
	"connection reset by peer",
	"connection refused",
	"broken pipe",
	"unexpected EOF",
	"i/o timeout",
	"TLS handshake timeout",
	"429 Too Many Requests",
	"500 Internal Server Error",
	"502 Bad Gateway",
	"503 Service Unavailable",
	"504 Gateway Timeout",
}

// Transient reports whether err may go away when tried again: a registry's
// 429 or 5xx (go-containerregistry's transport.Error, or its text in a
// BuildKit error), a network timeout, a connection reset, refused or aborted,
// a broken pipe, an unexpected EOF, or BuildKit's gRPC connection lost during
// the build (status Unavailable). A cancelled context, a 4xx and build
// failures (a RUN step exiting non-zero, a Dockerfile error) are not.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		return transientStatus[terr.StatusCode]
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return true
	}
	for _, e := range []error{syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return true
		}
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return true
	}
	msg := err.Error()
	for _, s := range transientText {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
