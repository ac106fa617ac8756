package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/cli"
	"github.com/imagebuilder/imagebuilder/internal/promote"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/staged"
	"github.com/imagebuilder/imagebuilder/internal/sweep"
)

func newPromoteCmd() *cobra.Command {
	var (
		file, output, credentials string
		sweepMatch, olderThan     string
		vars                      []string
		dryRun                    bool
	)
	cmd := &cobra.Command{
		Use:   "promote -f FILE [--var NAME=VALUE...] | SRC=DST... [--sweep REGEX --older-than DURATION] [--dry-run] [--output json|yaml] [--credentials FILE]",
		Short: "Move staged images to their final tags, then delete the stage tags",
		Long: `Promote what a staged build pushed (target.registry.stage_tag in build params, registry.stage_tag
in a family file): for each image, each stage tag's manifest is copied under its final tag — one
PUT within a repository, no blob moves, an index and its children intact — and all final tags of
the request move together: if one fails, every final tag is put back where it was. Then the stage
tags are deleted, without deleting the promoted manifests.

-f FILE is build params (it has a target) or a family file; --var gives the stage tag's .Vars as
for the staged build. Instead of a file, SRC=DST arguments name the moves directly
(REGISTRY/REPO:STAGE_TAG=REGISTRY/REPO:TAG); a DST in another repository mounts the blobs, in
another registry copies them; a SRC given by digest (REPO@sha256:...) is not deleted.

A stage tag that does not exist is an error naming it; a final tag that already serves the staged
digest does not move (changed: false for it) and its stage tag is still deleted.

--sweep REGEX --older-than DURATION then sweeps every destination repository as imagebuilder sweep
does (tags matching REGEX, anchored at the start, whose image is older than DURATION), reported
under swept; it runs only when the promote succeeded.

Facts on stdout: per repository {repository, promoted: [{from, to, digest, previous, changed}],
deleted: [stage refs], changed}, and changed. Exit status: 0 ok, 1 failed, 2 usage or invalid file.`,
		Example: `  imagebuilder build -f params.yaml --var change=123        # pushes app:change_123_latest
  imagebuilder promote -f params.yaml --var change=123      # app:latest <- app:change_123_latest
  imagebuilder promote -f family.yaml --var change=123 --dry-run
  imagebuilder promote reg.example.com/team/app:change_1_latest=reg.example.com/team/app:latest`,
		RunE: func(cmd *cobra.Command, args []string) error {
			fileGiven := cmd.Flags().Changed("file")
			switch {
			case fileGiven && len(args) > 0:
				return usageError{Err: fmt.Errorf("give either -f FILE or SRC=DST arguments, not both")}
			case !fileGiven && len(args) == 0:
				return usageError{Err: fmt.Errorf("nothing to promote: give -f FILE (build params or family file) or SRC=DST arguments")}
			case len(args) > 0 && len(vars) > 0:
				return usageError{Err: fmt.Errorf("--var is for -f FILE's stage_tag; SRC=DST arguments name the tags themselves")}
			}
			varMap, err := parseVars(vars)
			if err != nil {
				return err
			}
			sweepOpts, err := sweepFlags(sweepMatch, olderThan, "--sweep", dryRun)
			if err != nil {
				return err
			}
			red := redact.New()
			ropts, err := credentialsFile(credentials, red)
			if err != nil {
				return err
			}
			var items []promote.Item
			if fileGiven {
				var fileOpts []registry.Option
				items, fileOpts, err = promoteFile(cmd, file, varMap, red)
				if err != nil {
					return err
				}
				ropts = append(fileOpts, ropts...)
			} else if items, err = promote.ParseRefs(args); err != nil {
				return usageError{Err: err}
			}
			return runRegistryCommand(cmd, output, red, ropts, func(reg *registry.Client, log func(string)) (any, error) {
				res, err := promote.Run(cmd.Context(), reg, items, promote.Options{DryRun: dryRun, Log: log})
				if err != nil || sweepOpts == nil {
					return res, err
				}
				sweepOpts.Log = log
				for _, img := range res.Images {
					sw, err := sweep.Run(cmd.Context(), reg, img.Repository, *sweepOpts)
					res.Swept = append(res.Swept, sw)
					if err != nil {
						return res, err
					}
					res.Changed = res.Changed || sw.Changed
				}
				return res, nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "-", "build params or family file (JSON or YAML), - for stdin")
	cli.OutputFlag(cmd, &output, "result format: json or yaml")
	f.BoolVar(&dryRun, "dry-run", false, "read where every tag points and report what would move; write nothing")
	f.StringVar(&sweepMatch, "sweep", "", "after the promote, delete the destination repositories' tags matching this regular expression (anchored at the start) and older than --older-than")
	f.StringVar(&olderThan, "older-than", "", "with --sweep: the age above which a matching tag is deleted (36h, 7d)")
	f.StringArrayVar(&vars, "var", nil, "a value for the stage tag's .Vars (and a family file's variables), NAME=VALUE (repeatable)")
	f.StringVar(&credentials, "credentials", "", "registry credentials file: a list of {registry, username, password, repositories} (default $"+envCredentials+")")
	return cmd
}

// promoteFile reads -f FILE, build params or a family file (relative paths relative to its
// directory), into the items a staged build pushed and the file's registry options.
func promoteFile(cmd *cobra.Command, file string, vars map[string]string, red *redact.Redactor) ([]promote.Item, []registry.Option, error) {
	data, err := readInput(cmd, file)
	if err != nil {
		return nil, nil, err
	}
	dir := "."
	if file != "" && file != "-" {
		dir = filepath.Dir(file)
	}
	req, err := staged.Load(data, staged.Detect, staged.Options{Dir: dir, Vars: vars, Redactor: red})
	if err != nil {
		return nil, nil, exitCodeError{Code: exitInvalid, Err: red.Error(fmt.Errorf("%s is invalid:\n%w", inputName(file), err))}
	}
	return req.Items, req.RegistryOptions, nil
}

// runRegistryCommand runs a command that works on registries only (promote, sweep, manifest):
// it opens the registry client with ropts, runs run with a log to stderr, prints the facts run
// returns (masked, in format) and exits 1 when run failed.
func runRegistryCommand(cmd *cobra.Command, format string, red *redact.Redactor, ropts []registry.Option, run func(reg *registry.Client, log func(string)) (any, error)) error {
	reg, err := registry.New(append(ropts, registry.WithRedactor(red))...)
	if err != nil {
		return exitCodeError{Code: exitInvalid, Err: red.Error(err)}
	}
	stderr := red.Writer(cmd.ErrOrStderr())
	defer stderr.Close()
	res, runErr := run(reg, func(line string) { fmt.Fprintln(stderr, line) })
	if err := printResult(cmd.OutOrStdout(), format, red, res); err != nil {
		return err
	}
	if runErr != nil {
		return exitCodeError{Code: exitFailure, Err: red.Error(runErr)}
	}
	return nil
}
