package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/sys/atomicwriter"
	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/cli"
	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/graph"
	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/progress"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/result"
)

// familyFlags are the flags family build, plan and graph share.
type familyFlags struct {
	file, output, progressMode, endpoint string
	report, reportFormat, logs           string
	credentials                          string
	exclude, vars                        []string
	skipParents, keepGoing, rebuild      bool
	jobs                                 int
}

func newFamilyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "family build|plan|graph -f FILE [NAME|REGEX...]",
		Short: "Build a family of interdependent images in dependency order, only what is stale",
		Long: `A family file lists images that build FROM each other (see the README, "Image families").
imagebuilder reads every Dockerfile, finds the parents (FROM, COPY --from, RUN --mount=from,
after ARG expansion), and builds parents first, each child FROM its parents' fresh digests.
An image whose inputs (rendered Dockerfile, context files, build args, target, platforms,
labels, secret ids, parents' digests) match what the registry serves is skipped.

  family build   build what is stale, then move every tag at once
  family plan    print the decision for each image (build, skip, pull) and why; build nothing
  family graph   print the dependency graph as Graphviz DOT, nodes coloured by the plan

Positional NAME|REGEX select images (an exact name, else a regular expression searched in
the names) with all their ancestors. Exit status: 0 ok, 1 an image or the run failed, 2 usage
error or invalid file.`,
	}
	cmd.AddCommand(newFamilySubCmd("build"), newFamilySubCmd("plan"), newFamilySubCmd("graph"))
	return cmd
}

func newFamilySubCmd(verb string) *cobra.Command {
	var fl familyFlags
	short := map[string]string{
		"build": "Build the stale images of a family and move their tags together",
		"plan":  "Print what family build would do for each image, and why",
		"graph": "Print the family's dependency graph as Graphviz DOT",
	}[verb]
	cmd := &cobra.Command{
		Use:   verb + " -f FILE [NAME|REGEX...] [--exclude NAME|REGEX] [--skip-parents] [--keep-going] [--rebuild] [--jobs N] [--report FILE] [--logs DIR] [--output json|yaml]",
		Short: short,
		Example: `  imagebuilder family build -f family.yaml
  imagebuilder family plan -f family.yaml api --skip-parents
  imagebuilder family build -f family.yaml --keep-going --jobs 4 --report report.json --logs logs/
  imagebuilder family graph -f family.yaml | dot -Tsvg > family.svg`,
		RunE: func(cmd *cobra.Command, args []string) error { return runFamily(cmd, verb, fl, args) },
	}
	f := cmd.Flags()
	f.StringVarP(&fl.file, "file", "f", "-", "family file (JSON or YAML), - for stdin")
	f.StringArrayVar(&fl.exclude, "exclude", nil, "leave out this image (name or regular expression; repeatable)")
	f.BoolVar(&fl.skipParents, "skip-parents", false, "build only the selected images, on their parents as the registry serves them")
	f.BoolVar(&fl.rebuild, "rebuild", false, "build every selected image, even when the registry serves identical inputs")
	f.StringArrayVar(&fl.vars, "var", nil, "set a template variable, NAME=VALUE (repeatable; overrides the file's variables; the others are for registry.stage_tag's .Vars)")
	f.StringVar(&fl.credentials, "credentials", "", "registry credentials file: a list of {registry, username, password, repositories} (default $"+envCredentials+")")
	cli.BuilderFlag(cmd, &fl.endpoint, "overrides builder.endpoint and builder.endpoints")
	if verb != "graph" {
		cli.OutputFlag(cmd, &fl.output, "report format on stdout: json or yaml")
		f.StringVar(&fl.report, "report", "", "also write the report to FILE (JSON, or YAML for .yaml/.yml)")
		f.StringVar(&fl.reportFormat, "report-format", "imagebuilder", "report shape: imagebuilder, or cord (CORD imagebuilder's ib_built, ib_pulled, ... lists)")
		cli.CompleteValues(cmd, "report-format", "imagebuilder", "cord")
	}
	if verb != "graph" {
		// A plan takes its build's command line; these three change nothing in a plan.
		f.BoolVar(&fl.keepGoing, "keep-going", false, "build everything whose ancestry succeeded and publish it (default: all or nothing; no effect on a plan)")
		f.IntVar(&fl.jobs, "jobs", 0, "images built at once (default: the builder pool's capacity; no effect on a plan)")
		f.StringVar(&fl.logs, "logs", "", "write one build log per image to DIR (FAILED_<name>.log for failures; a plan writes none)")
	}
	if verb == "build" {
		f.StringVar(&fl.progressMode, "progress", progress.Auto, "progress on stderr: "+strings.Join(progress.Modes, ", ")+" (default: $BUILDKIT_PROGRESS, else auto)")
		cli.CompleteValues(cmd, "progress", progress.Modes...)
	}
	return cmd
}

func runFamily(cmd *cobra.Command, verb string, fl familyFlags, args []string) error {
	if fl.reportFormat != "" && fl.reportFormat != "imagebuilder" && fl.reportFormat != "cord" {
		return usageError{Err: fmt.Errorf("--report-format must be imagebuilder or cord, got %q", fl.reportFormat)}
	}
	if fl.jobs < 0 {
		return usageError{Err: fmt.Errorf("--jobs must be at least 1, got %d", fl.jobs)}
	}
	vars, err := parseVars(fl.vars)
	if err != nil {
		return err
	}
	if fl.endpoint != "" {
		if _, err := builder.Select(fl.endpoint); err != nil {
			return usageError{Err: fmt.Errorf("--builder: %w%s", err, cli.ContextHint(fl.endpoint))}
		}
	}
	stderr := cmd.ErrOrStderr()
	mode := progress.Quiet
	if verb == "build" {
		flagMode := ""
		if cmd.Flags().Changed("progress") {
			flagMode = fl.progressMode
		}
		if mode, err = progress.ResolveMode(flagMode, os.Getenv(progress.EnvMode), progress.IsTerminal(stderr)); err != nil {
			return usageError{Err: err}
		}
	}
	fam, err := loadFamily(cmd, fl.file, vars)
	if err != nil {
		return err
	}
	if verb != "build" {
		fl.logs = "" // a plan builds nothing, so it has no logs to write
	}
	if fl.logs != "" {
		if err := os.MkdirAll(fl.logs, 0o755); err != nil {
			return fmt.Errorf("creating the logs directory: %w", err)
		}
	}
	red := redact.New()
	ropts, err := credentialsFile(fl.credentials, red)
	if err != nil {
		return err
	}
	pr, stopProgress, err := startProgress(stderr, mode, red)
	if err != nil {
		return err
	}
	var g *graph.Graph
	rep, runErr := pipeline.RunFamily(cmd.Context(), fam, pipeline.FamilyOptions{
		Options: pipeline.Options{
			Endpoint:        fl.endpoint,
			DryRun:          verb != "build",
			Progress:        pr.Status,
			Log:             pr.Log,
			Redactor:        red,
			Vars:            vars,
			RegistryOptions: ropts,
		},
		Select:      args,
		Exclude:     fl.exclude,
		SkipParents: fl.skipParents,
		KeepGoing:   fl.keepGoing,
		Rebuild:     fl.rebuild,
		Jobs:        fl.jobs,
		LogsDir:     fl.logs,
		Graph:       func(gr *graph.Graph) { g = gr },
	})
	stopProgress()
	if verb == "graph" {
		if g == nil {
			return exitCodeError{Code: exitFailure, Err: red.Error(runErr)}
		}
		decisions := map[string]string{}
		for _, img := range rep.Images {
			decisions[img.Name] = img.Decision
		}
		if err := g.DOT(cmd.OutOrStdout(), func(name string) string { return decisions[name] }); err != nil {
			return err
		}
		if runErr != nil {
			return exitCodeError{Code: exitFailure, Err: red.Error(runErr)}
		}
		return nil
	}
	out := any(rep)
	if fl.reportFormat == "cord" {
		out = cordReport(rep)
	}
	if err := printResult(cmd.OutOrStdout(), fl.output, red, out); err != nil {
		return err
	}
	if fl.report != "" {
		format := "json"
		if ext := strings.ToLower(filepath.Ext(fl.report)); ext == ".yaml" || ext == ".yml" {
			format = "yaml"
		}
		if err := writeReport(fl.report, format, red, out); err != nil {
			return errors.Join(err, runErr)
		}
	}
	if runErr != nil {
		return exitCodeError{Code: exitFailure, Err: red.Error(runErr)}
	}
	return nil
}

// loadFamily reads, validates and expands a family file.
func loadFamily(cmd *cobra.Command, file string, vars map[string]string) (*family.Family, error) {
	var f *family.File
	var err error
	if file == "" || file == "-" {
		data, rerr := readInput(cmd, file)
		if rerr != nil {
			return nil, rerr
		}
		if f, err = family.Load(data); err == nil {
			f.Dir, err = os.Getwd()
		}
	} else {
		f, err = family.LoadFile(file)
	}
	if err != nil {
		return nil, exitCodeError{Code: exitInvalid, Err: fmt.Errorf("%s is invalid:\n%w", inputName(file), err)}
	}
	return expandFamily(f, file, vars)
}

// expandFamily expands a loaded family file with the run's --var values.
func expandFamily(f *family.File, file string, vars map[string]string) (*family.Family, error) {
	declared, err := f.DeclaredVars(vars)
	if err != nil {
		return nil, usageError{Err: fmt.Errorf("--var %w", err)}
	}
	fam, err := f.Expand(family.ExpandOptions{Vars: declared, Now: time.Now(), Getenv: os.LookupEnv})
	if err != nil {
		return nil, exitCodeError{Code: exitInvalid, Err: fmt.Errorf("%s: %w", inputName(file), err)}
	}
	return fam, nil
}

// writeReport writes the report, masked, to file in format; readers never see half a file.
func writeReport(file, format string, red *redact.Redactor, rep any) error {
	data, err := cli.Encode(format, red, rep)
	if err != nil {
		return err
	}
	if err := atomicwriter.WriteFile(file, data, 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// cordEntry is one image in CORD imagebuilder's action file.
type cordEntry struct {
	Name   string   `json:"name"`
	Tags   []string `json:"tags"`
	Digest string   `json:"digest,omitempty"`
	Reason string   `json:"reason,omitempty"`
}

// cordReport is the report in the shape of CORD imagebuilder's YAML action file, which its
// Ansible playbooks read: what was built, pulled, already there, and what failed.
func cordReport(rep *result.Report) map[string]any {
	lists := map[string][]cordEntry{"ib_built": {}, "ib_pulled": {}, "ib_preexisting": {}, "ib_failed": {}}
	key := map[string]string{
		result.DecisionBuild: "ib_built", result.DecisionPull: "ib_pulled", result.DecisionSkip: "ib_preexisting",
		result.DecisionFailed: "ib_failed", result.DecisionParentFailed: "ib_failed",
	}
	for _, img := range rep.Images {
		name := img.Repository
		if name == "" {
			name = img.Ref
		}
		lists[key[img.Decision]] = append(lists[key[img.Decision]], cordEntry{Name: name, Tags: img.Tags, Digest: img.Digest, Reason: img.Reason})
	}
	out := map[string]any{"changed": rep.Changed}
	for k, v := range lists {
		out[k] = v
	}
	return out
}
