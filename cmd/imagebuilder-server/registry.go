package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/cli"
	"github.com/imagebuilder/imagebuilder/internal/regserve"
)

func newRegistryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry serve --root DIR [--listen ADDR] [--upstream [PREFIX=]URL...]",
		Short: "Run an embedded OCI registry for a buildset",
	}
	cmd.AddCommand(newRegistryServeCmd())
	return cmd
}

func newRegistryServeCmd() *cobra.Command {
	var (
		cfg      regserve.Config
		grace    time.Duration
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "serve --root DIR [--listen ADDR] [--upstream [PREFIX=]URL...] [--htpasswd FILE] [--tls-cert FILE --tls-key FILE]",
		Short: "Serve an OCI registry from DIR; pulls of what it does not hold fall through to upstreams",
		Long: `An OCI registry (distribution's, as a library) storing in --root. Images pushed to it are
served from it; a pull of anything it does not hold falls through to the upstream whose
PREFIX is the longest that starts the repository path (whole components), or to the default
--upstream URL, and what is fetched is cached in --root. The upstream is asked for the
repository path without PREFIX, under the URL's path: with --upstream quay.io/=https://quay.io,
HOST/quay.io/coreos/etcd pulls quay.io's coreos/etcd. Upstream credentials come from the
Docker config. A tag pushed here is always served from here.

When it accepts connections it prints one JSON line on stdout:
{"listen":"127.0.0.1:5000","url":"http://127.0.0.1:5000","root":...,"upstreams":[...],"auth":"none"}
SIGINT or SIGTERM stops it: requests in flight finish (up to --shutdown-timeout), unfinished
uploads are removed. Exit status: 0 stopped by a signal, 1 failure, 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			cfg.LogOutput, cfg.LogLevel = cmd.ErrOrStderr(), logLevel
			if _, err := cfg.Check(); err != nil {
				return cli.UsageError{Err: err}
			}
			return regserve.Run(cmd.Context(), cfg, grace, func(r regserve.Ready) {
				line, _ := json.Marshal(r)
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", line)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", regserve.DefaultListen, "address to listen on, HOST:PORT (port 0: any free port); non-loopback addresses warn without --htpasswd and TLS")
	f.StringVar(&cfg.Root, "root", "", "storage directory (created when missing)")
	f.StringArrayVar(&cfg.Upstreams, "upstream", nil, "pull-through upstream: URL (the default) or PREFIX=URL (repositories under PREFIX/), repeatable")
	f.StringArrayVar(&cfg.UpstreamInsecure, "upstream-insecure", nil, "upstream HOST[:PORT] that may be reached over plain http although not loopback, repeatable")
	f.StringVar(&cfg.Htpasswd, "htpasswd", "", "htpasswd file (bcrypt): every request must authenticate")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM), with --tls-key")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "private key (PEM) of --tls-cert")
	f.StringVar(&logLevel, "log-level", "info", "log level on stderr: debug, info, warn or error")
	f.DurationVar(&grace, "shutdown-timeout", 30*time.Second, "how long requests in flight may take to finish after SIGINT/SIGTERM")
	return cmd
}
