package api

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/imagebuilder/imagebuilder/internal/service"
)

// logPage is how many lines one read of the log takes.
const logPage = 500

// keepAlive is how long a quiet event stream waits before it sends a comment, so that proxies
// keep it open.
const keepAlive = 15 * time.Second

type logsInput struct {
	ID          string `path:"id" doc:"The invocation id."`
	After       int64  `query:"after" minimum:"0" doc:"Only lines after this sequence number (an event's id)."`
	LastEventID string `header:"Last-Event-ID" doc:"The id of the last event received: a reconnecting event stream resumes after it."`
}

// The log operation serves two representations of one resource, by the Accept header: an event
// stream while the client wants to follow, the stored text otherwise. huma's sse package
// describes only the former, so the operation is a plain huma operation whose handler streams
// (huma.StreamResponse) and whose responses are declared here.
func (s *Server) registerLogs(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "logs",
		Method:      http.MethodGet,
		Path:        "/v1/invocations/{id}/logs",
		Summary:     "An invocation's log",
		Description: "With `Accept: text/event-stream`: server-sent events, `log` events (id = the line's sequence number, data = the line) " +
			"while it runs, then one `end` event whose data is the final state; `Last-Event-ID` or `?after=` resumes. " +
			"Otherwise the stored log as text/plain. Secrets are masked in every line.",
		Tags:     []string{"invocations"},
		Security: secured,
		Errors:   errs(http.StatusNotFound),
		Responses: map[string]*huma.Response{
			"200": {Description: "The log", Content: map[string]*huma.MediaType{
				"text/plain":        {Schema: &huma.Schema{Type: huma.TypeString, Description: "One line per log line."}},
				"text/event-stream": {Schema: &huma.Schema{Type: huma.TypeString, Description: "Events `log` (id: sequence number, data: the line) and a last `end` (data: the final state)."}},
			}},
		},
	}, func(ctx context.Context, in *logsInput) (*huma.StreamResponse, error) {
		p := principal(ctx)
		after := in.After
		if id, err := strconv.ParseInt(strings.TrimSpace(in.LastEventID), 10, 64); err == nil && id > after {
			after = id
		}
		lines, ended, err := s.backend.Logs(ctx, p, in.ID, after, logPage)
		if err != nil {
			return nil, s.fail(err, "request", "")
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			if wantsEventStream(hctx.Header("Accept")) {
				s.streamLogs(hctx, p, in.ID, after, lines, ended)
				return
			}
			s.plainLogs(hctx, p, in.ID, lines)
		}}, nil
	})
}

// wantsEventStream reports whether the Accept header asks for text/event-stream explicitly.
func wantsEventStream(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
			return true
		}
	}
	return false
}

// plainLogs writes the stored log, first holding the first page already read.
func (s *Server) plainLogs(ctx huma.Context, p service.Principal, id string, lines []service.LogLine) {
	ctx.SetHeader("Content-Type", "text/plain; charset=utf-8")
	ctx.SetStatus(http.StatusOK)
	w := ctx.BodyWriter()
	for {
		for _, l := range lines {
			if _, err := io.WriteString(w, l.Text+"\n"); err != nil {
				return
			}
		}
		if len(lines) < logPage {
			return
		}
		var err error
		if lines, _, err = s.backend.Logs(ctx.Context(), p, id, lines[len(lines)-1].Seq, logPage); err != nil {
			s.log.Error("reading an invocation's log", "invocation", id, "error", err)
			return
		}
	}
}

// streamLogs follows the log as server-sent events until the invocation ended and every line
// was sent, or the client went away.
func (s *Server) streamLogs(ctx huma.Context, p service.Principal, id string, after int64, lines []service.LogLine, ended bool) {
	_, w := humago.Unwrap(ctx)
	rc := http.NewResponseController(w)
	// The server's write timeout bounds ordinary responses; a stream lasts as long as the build.
	_ = rc.SetWriteDeadline(time.Time{})
	ctx.SetHeader("Content-Type", "text/event-stream")
	ctx.SetHeader("Cache-Control", "no-cache")
	ctx.SetHeader("X-Accel-Buffering", "no")
	ctx.SetStatus(http.StatusOK)
	_ = rc.Flush()
	reqCtx := ctx.Context()
	quiet := time.Now()
	for {
		for _, l := range lines {
			if !writeEvent(w, "log", strconv.FormatInt(l.Seq, 10), l.Text) {
				return
			}
			after = l.Seq
		}
		if len(lines) > 0 {
			quiet = time.Now()
			if rc.Flush() != nil {
				return
			}
		}
		if ended && len(lines) == 0 {
			state := "unknown"
			if inv, err := s.backend.Get(reqCtx, p, id); err == nil {
				state = string(inv.State)
			}
			writeEvent(w, "end", "", state)
			_ = rc.Flush()
			return
		}
		if len(lines) < logPage && !ended {
			select {
			case <-reqCtx.Done():
				return
			case <-s.closing:
				return
			case <-time.After(s.poll):
			}
			if time.Since(quiet) >= keepAlive {
				if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
					return
				}
				quiet = time.Now()
			}
		}
		var err error
		if lines, ended, err = s.backend.Logs(reqCtx, p, id, after, logPage); err != nil {
			if reqCtx.Err() == nil {
				s.log.Error("reading an invocation's log", "invocation", id, "error", err)
			}
			return
		}
	}
}

// newlines are the line ends of the event stream format, which may not occur inside a field.
var newlines = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// writeEvent writes one server-sent event; a multi-line data becomes several data fields.
func writeEvent(w io.Writer, event, id, data string) bool {
	var b strings.Builder
	fmt.Fprintf(&b, "event: %s\n", event)
	if id != "" {
		fmt.Fprintf(&b, "id: %s\n", id)
	}
	for _, line := range strings.Split(newlines.Replace(data), "\n") {
		fmt.Fprintf(&b, "data: %s\n", line)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err == nil
}
