// Command imagebuilder builds, tags, pushes and promotes container images from declarative build
// params, and converts and validates those params. It is a thin front end: every command parses
// its flags, calls internal packages and prints their results.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/cli"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/progress"
)

// version is set at link time (-ldflags "-X main.version=..."); otherwise it comes from the
// module's build info.
var version = ""

// Exit statuses.
const (
	exitOK      = cli.ExitOK
	exitFailure = cli.ExitFailure // the request was valid but running it failed
	exitInvalid = cli.ExitInvalid // usage errors and invalid input
)

// usageError marks errors in how the command was called.
type usageError = cli.UsageError

// exitCodeError lets a command choose its exit status after it printed its own output.
type exitCodeError = cli.ExitCodeError

func main() {
	tuneGC()
	if len(os.Args) > 1 && (os.Args[1] == "build" || os.Args[1] == "validate") {
		// Compiling the schema takes a couple of milliseconds: do it while the command line,
		// the input and the engine choice are read.
		go params.Prepare()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// tuneGC: imagebuilder is a short-lived process whose heap stays small, so unless the user
// tuned the collector, it collects only when the heap nears a soft limit instead of every time
// it doubles. This takes a few milliseconds off every run (see scripts/bench-build.sh).
func tuneGC() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(-1)
		debug.SetMemoryLimit(256 << 20)
	}
}

// run executes the command line and returns the exit status. It never panics outward.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	invalid := func(err error) bool { return errors.Is(err, params.ErrInvalid) }
	return cli.Execute(ctx, newRootCmd(stdin, stdout, stderr), args, stderr, invalid)
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "imagebuilder",
		Short: "Build, tag, push and promote container images from declarative build params",
		Long: `imagebuilder builds container images with BuildKit from declarative build params
(SODALITE image-builder's JSON/YAML shape), pushes them to any OCI registry and reports
exact facts (references, digests, platforms).

Exit status: 0 ok, 1 runtime failure, 2 usage error or invalid input.`,
		Version:       buildVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{Err: err} })
	root.AddCommand(
		newBuildCmd(),
		newFamilyCmd(),
		newPromoteCmd(),
		newSweepCmd(),
		newManifestCmd(),
		newValidateCmd(),
		newConvertCmd(),
		newSchemaCmd(),
		newRegistryCmd(),
		newBuildersCmd(),
		newServeCmd(),
	)
	return root
}

func buildVersion() string { return cli.Version(version) }

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{Err: fmt.Errorf("%s takes no arguments, got %q (use -f FILE)", cmd.CommandPath(), args)}
	}
	return nil
}

// readInput reads -f FILE, or the command's standard input for "-". Without -f, a terminal on
// standard input is a usage error rather than a silent wait (an explicit -f - reads it).
func readInput(cmd *cobra.Command, name string) ([]byte, error) {
	if name == "" || name == "-" {
		in := cmd.InOrStdin()
		if !cmd.Flags().Changed("file") && progress.IsTerminal(in) {
			return nil, usageError{Err: fmt.Errorf("no input: standard input is a terminal; give -f FILE or pipe the params in (%s -f params.yaml, or %s < params.yaml; -f - reads the terminal)", cmd.CommandPath(), cmd.CommandPath())}
		}
		data, err := io.ReadAll(in)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return data, nil
	}
	return params.ReadInput(name)
}
