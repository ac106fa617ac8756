package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/sys/atomicwriter"
	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/cli"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/progress"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/registry"
)

func newBuildCmd() *cobra.Command {
	var (
		file, output, progressMode, endpoint string
		dockerContext, metadataFile          string
		credentials                          string
		vars                                 []string
		dryRun                               bool
	)
	cmd := &cobra.Command{
		Use:   "build [-f FILE|-] [--output json|yaml] [--progress MODE] [--builder ENDPOINT|--context NAME] [--metadata-file FILE] [--dry-run]",
		Short: "Build the images of a request, push them and print the facts",
		Long: `Validate the build params, fetch the source, inject variant bases, build every image with
BuildKit and push it, then print the result (refs, digests, platforms, what changed, the builder)
on stdout. Progress goes to stderr.

Publishing is all-or-nothing: every image is built and pushed by digest first, and the tags move
only when all of them succeeded. A tag that already points at the built digest does not move and
the image reports changed: false.

Build engine, first match wins:
  1. --builder ENDPOINT, else the params' builder.endpoint:
       ` + strings.Join(builder.EndpointForms, "\n       ") + `
     ("docker" is the Docker daemon of DOCKER_HOST or the Docker context)
  2. --context NAME: the Docker daemon of that Docker context
  3. BUILDKIT_HOST (a BuildKit address), as buildctl reads it
  4. the Docker daemon of DOCKER_HOST, else of the Docker context (DOCKER_CONTEXT, else the
     current one of 'docker context use'), else the default socket
The choice is checked before anything is fetched, printed in the progress, and reported in the
result as builder: {kind, endpoint} (without user or password).

--progress: auto (tty on a terminal, else plain), plain, tty, rawjson (BuildKit's JSON status
lines; json is an alias) or quiet. Without the flag, BUILDKIT_PROGRESS decides, as for buildx.

--metadata-file FILE also writes the result JSON to FILE (as buildx --metadata-file does),
on failure too, with the failure.

--dry-run checks everything that can be checked without side effects (source reachable, version
exists, Dockerfile parses, injection applies, builder answers, registry accepts the credentials,
where each tag points) and builds and pushes nothing.`,
		Example: `  imagebuilder build -f params.yaml
  imagebuilder build -f params.json --builder unix:///run/buildkit/buildkitd.sock --progress plain
  DOCKER_HOST=ssh://builder@build-host imagebuilder build -f params.yaml
  imagebuilder build -f params.yaml --context remote --metadata-file result.json
  imagebuilder build -f params.yaml --dry-run --output yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Everything about how the command was called is checked before any work.
			flagMode := ""
			if cmd.Flags().Changed("progress") {
				flagMode = progressMode
			}
			varMap, err := parseVars(vars)
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			mode, err := progress.ResolveMode(flagMode, os.Getenv(progress.EnvMode), progress.IsTerminal(stderr))
			if err != nil {
				return usageError{Err: err}
			}
			var bopts []builder.Option
			if dockerContext != "" {
				ep, err := builder.ParseEndpoint(endpoint)
				if err == nil && (ep.Kind != builder.KindAuto && ep.Kind != builder.KindDocker || ep.Address != "") {
					return usageError{Err: fmt.Errorf("--context %s names a Docker daemon; it combines only with --builder docker, not %s", dockerContext, ep)}
				}
				bopts = append(bopts, builder.WithDockerContext(dockerContext))
				if endpoint == "" {
					endpoint = "docker" // a flag: it beats the params' builder.endpoint
				}
			}
			if endpoint != "" {
				if _, err := builder.Select(endpoint, bopts...); err != nil {
					return usageError{Err: fmt.Errorf("--builder: %w%s", err, cli.ContextHint(endpoint))}
				}
			}
			data, err := readInput(cmd, file)
			if err != nil {
				return err
			}
			p, err := params.Load(data)
			if err != nil {
				return fmt.Errorf("%s is invalid:\n%w", inputName(file), err)
			}
			if endpoint == "" {
				// The params' endpoint, else the environment: refused before the source is fetched.
				var pe string
				if p.Builder != nil {
					pe = p.Builder.Endpoint
				}
				if _, err := builder.Select(pe, bopts...); err != nil {
					if pe != "" {
						return exitCodeError{Code: exitInvalid, Err: fmt.Errorf("%s is invalid:\n/builder/endpoint: %w%s", inputName(file), err, cli.ContextHint(pe))}
					}
					return usageError{Err: err}
				}
			}
			// One redactor for the run and for what this command prints: the run masks its
			// progress events, logs and errors with it and adds what it learns (credentials
			// from the Docker config, registry tokens). A terminal display needs the terminal
			// itself; the events it shows are masked by the run.
			red := redact.New()
			p.AddSecrets(red)
			ropts, err := credentialsFile(credentials, red)
			if err != nil {
				return err
			}
			pr, stopProgress, err := startProgress(stderr, mode, red)
			if err != nil {
				return err
			}
			res, runErr := pipeline.Run(cmd.Context(), *p, pipeline.Options{
				Endpoint:        endpoint,
				BuilderOptions:  bopts,
				DryRun:          dryRun,
				Progress:        pr.Status,
				Log:             pr.Log,
				Redactor:        red,
				Vars:            varMap,
				RegistryOptions: ropts,
			})
			stopProgress()
			if err := printResult(cmd.OutOrStdout(), output, red, res); err != nil {
				return err
			}
			if metadataFile != "" {
				if err := writeMetadata(metadataFile, red, res); err != nil {
					return errors.Join(err, runErr)
				}
			}
			if runErr != nil {
				return exitCodeError{Code: exitFailure, Err: red.Error(runErr)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "-", "build params file (JSON or YAML), - for stdin")
	cli.OutputFlag(cmd, &output, "result format: json or yaml")
	f.StringVar(&progressMode, "progress", progress.Auto, "progress on stderr: "+strings.Join(progress.Modes, ", ")+" (default: $BUILDKIT_PROGRESS, else auto)")
	cli.BuilderFlag(cmd, &endpoint, "overrides builder.endpoint")
	f.StringVar(&dockerContext, "context", "", "build on the Docker daemon of this Docker context (see docker context ls)")
	f.StringVar(&metadataFile, "metadata-file", "", "also write the result JSON to this file (on failure too)")
	f.BoolVar(&dryRun, "dry-run", false, "check everything, build and push nothing")
	f.StringArrayVar(&vars, "var", nil, "a value for target.registry.stage_tag's .Vars, NAME=VALUE (repeatable)")
	f.StringVar(&credentials, "credentials", "", "registry credentials file: a list of {registry, username, password, repositories} (default $"+envCredentials+")")
	cli.CompleteValues(cmd, "progress", progress.Modes...)
	_ = cmd.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		names, err := builder.DockerContexts(nil)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// startProgress starts the progress display on stderr. Everything but a terminal display goes
// through the redactor (a terminal display needs the terminal itself; the run masks the events
// it shows). stop shows what is left and closes it.
func startProgress(stderr io.Writer, mode string, red *redact.Redactor) (pr *progress.Printer, stop func(), err error) {
	out, rw := stderr, io.WriteCloser(nil)
	if mode != progress.TTY {
		rw = red.Writer(stderr)
		out = rw
	}
	if pr, err = progress.New(out, mode); err != nil {
		if rw != nil {
			rw.Close()
		}
		return nil, nil, usageError{Err: err}
	}
	return pr, func() {
		pr.Close()
		if rw != nil {
			rw.Close()
		}
	}, nil
}

// envCredentials names the credentials file when --credentials does not.
const envCredentials = registry.CredentialsEnv

// credentialsFile reads --credentials FILE (else $IMAGEBUILDER_CREDENTIALS) into registry
// options, its passwords added to red.
func credentialsFile(name string, red *redact.Redactor) ([]registry.Option, error) {
	opts, err := registry.CredentialsFileOptions(name, red)
	if err != nil {
		return nil, exitCodeError{Code: exitInvalid, Err: err}
	}
	return opts, nil
}

// parseVars reads --var NAME=VALUE flags.
func parseVars(vars []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vars {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, usageError{Err: fmt.Errorf("--var %q: want NAME=VALUE", v)}
		}
		out[k] = val
	}
	return out, nil
}

// printResult writes the result, masked, in the chosen format.
func printResult(w io.Writer, format string, red *redact.Redactor, res any) error {
	data, err := cli.Encode(format, red, res)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// writeMetadata writes the result JSON, masked, to file; readers never see half a file.
func writeMetadata(file string, red *redact.Redactor, res any) error {
	data, err := cli.Encode("json", red, res)
	if err != nil {
		return err
	}
	if err := atomicwriter.WriteFile(file, data, 0o644); err != nil {
		return fmt.Errorf("writing the metadata file: %w", err)
	}
	return nil
}
