// Command imagebuilder-server runs imagebuilder's daemons: the build service (serve, with its
// API keys) and the embedded OCI registry (registry serve). `imagebuilder serve` and
// `imagebuilder registry serve` run this program, found beside imagebuilder or on the plugin
// search path: the daemons' dependencies (the HTTP API, the databases and the queue, the
// registry's storage) stay out of the imagebuilder command that every build starts.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/cli"
)

// version is set at link time (-ldflags "-X main.version=..."); otherwise it comes from the
// module's build info.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit status. It never panics outward.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Execute(ctx, newRootCmd(stdin, stdout, stderr), args, stderr, nil)
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "imagebuilder-server",
		Short: "imagebuilder's daemons: the build service and the embedded registry",
		Long: `imagebuilder-server runs imagebuilder's daemons; imagebuilder serve and imagebuilder
registry serve run it with their arguments.

Exit status: 0 ok, 1 runtime failure, 2 usage error or invalid input.`,
		Version:       buildVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.UsageError{Err: err} })
	root.AddCommand(newServeCmd(), newRegistryCmd())
	return root
}

func buildVersion() string { return cli.Version(version) }
