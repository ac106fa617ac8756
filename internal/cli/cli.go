// Package cli holds what imagebuilder's commands share across their programs (imagebuilder,
// and imagebuilder-server, which runs the daemons): exit statuses, usage errors, the --output
// flag and result encoding, the build-endpoint forms for help and completion.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// Exit statuses of every imagebuilder program.
const (
	ExitOK      = 0
	ExitFailure = 1 // the request was valid but running it failed
	ExitInvalid = 2 // usage errors and invalid input
)

// UsageError marks errors in how a command was called (exit status 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// ExitCodeError lets a command choose its exit status after it printed its own output; Err,
// when set, is printed too.
type ExitCodeError struct {
	Code int
	Err  error
}

func (e ExitCodeError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e ExitCodeError) Unwrap() error { return e.Err }

// Execute runs root on args and returns the exit status, printing the error (as
// "imagebuilder: ...") on stderr: an ExitCodeError's status, 2 for a usage error, an unknown
// command or an error invalid reports, else 1. It never panics outward.
func Execute(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer, invalid func(error) bool) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "imagebuilder: internal error: %v\n", r)
			code = ExitFailure
		}
	}()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ec ExitCodeError
	if errors.As(err, &ec) {
		if ec.Err != nil && ec.Err.Error() != "" {
			fmt.Fprintf(stderr, "imagebuilder: %v\n", ec.Err)
		}
		return ec.Code
	}
	fmt.Fprintf(stderr, "imagebuilder: %v\n", err)
	var ue UsageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ") || (invalid != nil && invalid(err)) {
		return ExitInvalid
	}
	return ExitFailure
}

// Version is the program's version: the one set at link time (-ldflags "-X main.version=..."),
// else the module's, else "dev".
func Version(linked string) string {
	if linked != "" {
		return linked
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// formatFlag is the value of --output: json or yaml; anything else is refused when the flag is
// parsed, as a usage error, before the command runs.
type formatFlag string

func (o *formatFlag) String() string { return string(*o) }
func (o *formatFlag) Type() string   { return "json|yaml" }
func (o *formatFlag) Set(v string) error {
	if v != "json" && v != "yaml" {
		return fmt.Errorf("must be json or yaml, got %q", v)
	}
	*o = formatFlag(v)
	return nil
}

// OutputFlag adds -o/--output (default json) to cmd, into p, with its completion.
func OutputFlag(cmd *cobra.Command, p *string, usage string) {
	*p = "json"
	cmd.Flags().VarP((*formatFlag)(p), "output", "o", usage)
	CompleteValues(cmd, "output", "json", "yaml")
}

// CompleteValues completes a flag with fixed values.
func CompleteValues(cmd *cobra.Command, flag string, values ...string) {
	_ = cmd.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
}

// Encode renders a result, masked, as indented JSON or YAML.
func Encode(format string, red *redact.Redactor, res any) ([]byte, error) {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the result: %w", err)
	}
	if format == "yaml" {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return nil, fmt.Errorf("encoding the result: %w", err)
		}
	} else {
		data = append(data, '\n')
	}
	return []byte(red.String(string(data))), nil
}

// BuilderFlag adds --builder (a build-engine endpoint) to cmd, into p: its usage lists the
// accepted forms before tail, and its values complete to those forms.
func BuilderFlag(cmd *cobra.Command, p *string, tail string) {
	cmd.Flags().StringVar(p, "builder", "", "build engine endpoint: "+strings.ReplaceAll(strings.Join(EndpointPrefixes(), ", "), "://", "://…")+" ("+tail+")")
	_ = cmd.RegisterFlagCompletionFunc("builder", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return EndpointPrefixes(), cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	})
}

// EndpointPrefixes are the build-endpoint forms cut after their scheme, for help and
// completion: docker, docker+unix://, unix://, ...
func EndpointPrefixes() []string {
	var out []string
	for _, f := range builder.EndpointForms {
		if scheme, _, ok := strings.Cut(f, "://"); ok {
			f = scheme + "://"
		}
		out = append(out, f)
	}
	return out
}

// NoArgs rejects positional arguments as a usage error.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return UsageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)}
	}
	return nil
}

// OneArg accepts exactly one positional argument, what it is; anything else is a usage error.
func OneArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return UsageError{fmt.Errorf("%s takes one %s, got %d arguments", cmd.CommandPath(), what, len(args))}
		}
		return nil
	}
}

// ContextHint adds a hint when a --builder or builder.endpoint value is the name of a Docker
// context.
func ContextHint(value string) string {
	names, err := builder.DockerContexts(nil)
	if err == nil && value != "default" && slices.Contains(names, value) {
		return fmt.Sprintf("\n(docker context %q exists: use --context %s)", value, value)
	}
	return ""
}
