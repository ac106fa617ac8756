package ansible

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// LogEnv names the environment variable that, when set to a file path, makes a module append its
// log (steps and build progress, secrets masked) to that file. Without it the log is discarded:
// a module's stdout carries only its result, and ansible-core drops stderr.
const LogEnv = "IMAGEBUILDER_MODULE_LOG"

// Module is one Ansible module.
type Module struct {
	// Name is the module's short name (image_build), used in messages.
	Name string
	// Spec describes the options. It names the secrets to mask (no_log) and the conversions
	// applied before the module sees the options (see Spec.Normalize).
	Spec Spec
	// Run does the work and returns the response (nil counts as an internal error). It must
	// honour req.CheckMode. It writes its log on req.Log, never on stdout.
	Run func(ctx context.Context, req *Request) *Response
}

// Streams are the module's input and outputs.
type Streams struct {
	Args   []string  // command-line arguments after the program name: [ARGS_FILE] or none
	Stdin  io.Reader // read when Args is empty
	Stdout io.Writer // receives the one JSON result
	Log    io.Writer // receives the log, masked (nil: discarded)
}

// Main runs the module as a process: it reserves stdout for the result (anything else that
// writes to file descriptor 1, a library included, writes to /dev/null instead), cancels the
// run on SIGINT and SIGTERM, and returns the exit status for os.Exit.
func Main(m Module) int {
	result, err := reserveStdout()
	if err != nil {
		result = os.Stdout
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := Streams{Args: os.Args[1:], Stdin: os.Stdin, Stdout: result}
	if path := os.Getenv(LogEnv); path != "" {
		if f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
			defer f.Close()
			s.Log = f
		}
	}
	return m.Serve(ctx, s)
}

// Serve runs the module once: reads the arguments, runs it, writes the response with every
// secret from the options masked, and returns the exit status (0, or 1 when failed).
func (m Module) Serve(ctx context.Context, s Streams) int {
	resp, red := m.serve(ctx, s)
	if err := resp.Write(s.Stdout, red); err != nil {
		return 2
	}
	if resp.Failed {
		return 1
	}
	return 0
}

func (m Module) serve(ctx context.Context, s Streams) (*Response, *redact.Redactor) {
	req, err := ReadArgs(s.Args, s.Stdin)
	if err != nil {
		return Failf("%s: %v", m.Name, err), nil
	}
	red := redact.New(m.Spec.Secrets(req.Options)...)
	// Options that are URLs show without their credentials (user information, query values).
	redact.Strings(req.Options, func(_, s string) { red.AddURL(s) })
	req.Redactor = red
	warnings := m.Spec.Normalize(req.Options)
	if s.Log != nil {
		rw := red.Writer(s.Log)
		defer rw.Close()
		req.Log = rw
	}
	resp := m.call(ctx, req)
	resp.Warnings = append(warnings, resp.Warnings...)
	return resp, red
}

// call runs the module, turning a panic into a failed response.
func (m Module) call(ctx context.Context, req *Request) (resp *Response) {
	defer func() {
		if p := recover(); p != nil {
			resp = &Response{
				Failed:    true,
				Msg:       fmt.Sprintf("%s: internal error: %v", m.Name, p),
				Exception: fmt.Sprintf("panic: %v\n\n%s", p, debug.Stack()),
			}
		}
	}()
	resp = m.Run(ctx, req)
	if resp == nil {
		resp = Failf("%s: internal error: the module returned no result", m.Name)
	}
	return resp
}
