package main

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/builder/plugin"
)

// serverProgram runs imagebuilder's daemons (cmd/imagebuilder-server). Its dependencies — the
// HTTP API, the databases and the queue, the registry's storage — would add to the start of
// every build, so the daemons live in a program of their own, which `imagebuilder serve` and
// `imagebuilder registry serve` run with their arguments.
const serverProgram = "imagebuilder-server"

// findServer finds imagebuilder-server where builder plugins are found:
// IMAGEBUILDER_PLUGIN_PATH, the directory of imagebuilder, then PATH.
func findServer() (string, error) {
	p, err := plugin.FindProgram(serverProgram)
	if err != nil {
		return "", fmt.Errorf("%s not found: %w; it runs the daemons: make build puts it beside imagebuilder, and the release archives hold it", serverProgram, err)
	}
	return p, nil
}

// newDaemonCmd is a command whose work imagebuilder-server does: its arguments (flags and
// --help included) go to `imagebuilder-server PATH... ARGS`, its exit status is the command's.
// A signal to imagebuilder (SIGINT, SIGTERM: the command's context ends) goes on to the daemon
// as SIGTERM, which stops it gracefully.
func newDaemonCmd(use, short string, path ...string) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			server, err := findServer()
			if err != nil {
				return err
			}
			c := exec.CommandContext(cmd.Context(), server, append(path, args...)...)
			c.Stdin, c.Stdout, c.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
			err = c.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() > 0 {
				return exitCodeError{Code: ee.ExitCode()} // the daemon said why
			}
			if err != nil && cmd.Context().Err() == nil {
				return fmt.Errorf("running %s: %w", server, err)
			}
			return nil
		},
		// Completion is the daemon's: imagebuilder-server __complete PATH... ARGS.
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			server, err := findServer()
			if err != nil {
				return nil, cobra.ShellCompDirectiveError
			}
			argv := append(append(append([]string{cobra.ShellCompRequestCmd}, path...), args...), toComplete)
			out, err := exec.CommandContext(cmd.Context(), server, argv...).Output()
			if err != nil {
				return nil, cobra.ShellCompDirectiveError
			}
			return parseCompletion(out)
		},
	}
}

// parseCompletion reads cobra's __complete output: one completion a line, then ":DIRECTIVE".
func parseCompletion(out []byte) ([]cobra.Completion, cobra.ShellCompDirective) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	last := len(lines) - 1
	d, err := strconv.Atoi(strings.TrimPrefix(lines[last], ":"))
	if !strings.HasPrefix(lines[last], ":") || err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var comps []cobra.Completion
	for _, l := range lines[:last] {
		if l = strings.TrimSpace(l); l != "" {
			comps = append(comps, l)
		}
	}
	return comps, cobra.ShellCompDirective(d)
}

// newServeCmd is `imagebuilder serve`, run by imagebuilder-server.
func newServeCmd() *cobra.Command {
	return newDaemonCmd("serve [--listen ADDR] [--database sqlite:///PATH|postgres://…] [--workers N] [--workers-only] [--no-auth]",
		"Run the build service: SODALITE's REST API and ours, a durable queue, API keys and OAuth2, a web page",
		"serve")
}

// newRegistryCmd is `imagebuilder registry serve`, run by imagebuilder-server.
func newRegistryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry serve --root DIR [--listen ADDR] [--upstream [PREFIX=]URL...]",
		Short: "Run an embedded OCI registry for a buildset",
	}
	cmd.AddCommand(newDaemonCmd("serve --root DIR [--listen ADDR] [--upstream [PREFIX=]URL...] [--htpasswd FILE] [--tls-cert FILE --tls-key FILE]",
		"Serve an OCI registry from DIR; pulls of what it does not hold fall through to upstreams",
		"registry", "serve"))
	return cmd
}
