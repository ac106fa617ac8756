package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/progress"
	"github.com/imagebuilder/imagebuilder/internal/redact"
)

func newBuildCmd() *cobra.Command {
	var (
		file, output, progressMode, endpoint string
		dryRun                               bool
	)
	cmd := &cobra.Command{
		Use:   "build [-f FILE|-] [--output json|yaml] [--progress MODE] [--builder ENDPOINT] [--dry-run]",
		Short: "Build the images of a request, push them and print the facts",
		Long: `Validate the build params, fetch the source, inject variant bases, build every image with
BuildKit and push it, then print the result (refs, digests, platforms, what changed) on stdout.
Progress goes to stderr.

Publishing is all-or-nothing: every image is built and pushed by digest first, and the tags move
only when all of them succeeded. A tag that already points at the built digest does not move and
the image reports changed: false.

--builder: "docker" (the daemon at DOCKER_HOST), or a BuildKit address (unix://, tcp://,
docker-container://, kube-pod://). Default: the params' builder.endpoint, else the Docker daemon
when one answers, else BUILDKIT_HOST.

--dry-run checks everything that can be checked without side effects (source reachable, version
exists, Dockerfile parses, injection applies, builder answers, registry accepts the credentials,
where each tag points) and builds and pushes nothing.`,
		Example: `  imagebuilder build -f params.yaml
  imagebuilder build -f params.json --builder unix:///run/buildkit/buildkitd.sock --progress plain
  imagebuilder build -f params.yaml --dry-run --output yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "json" && output != "yaml" {
				return usageError{fmt.Errorf("--output must be json or yaml, got %q", output)}
			}
			data, err := readInput(cmd, file)
			if err != nil {
				return err
			}
			p, err := params.Load(data)
			if err != nil {
				return fmt.Errorf("%s is invalid:\n%w", inputName(file), err)
			}
			// One redactor for the run and for what this command prints: the run masks its
			// progress events, logs and errors with it and adds what it learns (credentials
			// from the Docker config, registry tokens).
			red := redact.New()
			p.AddSecrets(red)
			stderr := cmd.ErrOrStderr()
			var progressOut io.Writer = stderr
			if progressMode == progress.TTY || progressMode == progress.Auto && progress.IsTerminal(stderr) {
				// A terminal display needs the terminal itself; the events it shows are masked
				// by the run.
				progressMode = progress.TTY
			} else {
				rw := red.Writer(stderr)
				defer rw.Close()
				progressOut = rw
			}
			pr, err := progress.New(progressOut, progressMode)
			if err != nil {
				return usageError{err}
			}
			res, runErr := pipeline.Run(cmd.Context(), *p, pipeline.Options{
				Endpoint: endpoint,
				DryRun:   dryRun,
				Progress: pr.Status,
				Log:      pr.Log,
				Redactor: red,
			})
			pr.Close()
			if err := printResult(cmd.OutOrStdout(), output, red, res); err != nil {
				return err
			}
			if runErr != nil {
				return exitCodeError{code: exitFailure, err: red.Error(runErr)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "-", "build params file (JSON or YAML), - for stdin")
	f.StringVarP(&output, "output", "o", "json", "result format: json or yaml")
	f.StringVar(&progressMode, "progress", progress.Auto, "progress on stderr: auto, plain, tty, json or quiet")
	f.StringVar(&endpoint, "builder", "", "build engine endpoint (overrides builder.endpoint)")
	f.BoolVar(&dryRun, "dry-run", false, "check everything, build and push nothing")
	return cmd
}

// printResult writes the result, masked, in the chosen format.
func printResult(w io.Writer, format string, red *redact.Redactor, res any) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the result: %w", err)
	}
	if format == "yaml" {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return fmt.Errorf("encoding the result: %w", err)
		}
	} else {
		data = append(data, '\n')
	}
	_, err = io.WriteString(w, red.String(string(data)))
	return err
}
