package main

import (
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/cli"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/sweep"
)

func newSweepCmd() *cobra.Command {
	var (
		match, olderThan, output, credentials string
		dryRun                                bool
	)
	cmd := &cobra.Command{
		Use:   "sweep REPOSITORY --match REGEX --older-than DURATION [--dry-run] [--output json|yaml] [--credentials FILE]",
		Short: "Delete the stale tags of a repository: matching, and older than a threshold",
		Long: `List the tags of REPOSITORY (REGISTRY/REPO) and delete those that match --match and whose image
was created longer ago than --older-than: the creation time is the image config's created (of
the first platform image, for an index), else its org.opencontainers.image.created label; a
matching tag whose image has neither is kept. A tag that does not match is never deleted.

--match is a regular expression anchored at the start of the tag, as Python's re.match (Zuul):
change_ matches change_123_latest; end it with $ to match whole tags. --older-than is a Go
duration (36h, 90m) or days (7d, 1d12h). A tag is deleted without deleting the manifest other
tags name (see "Promote, sweep, manifest" in the README for each registry's deletes).

Facts on stdout: {repository, deleted: [{tag, digest, created}], kept: [{tag, digest, created,
reason}], changed}. Exit status: 0 ok, 1 failed, 2 usage error.`,
		Example: `  imagebuilder sweep registry.example.com/team/app --match 'change_' --older-than 7d --dry-run
  imagebuilder sweep registry.example.com/team/app --match 'change_[0-9]+_' --older-than 36h`,
		Args: cli.OneArg("REPOSITORY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if match == "" {
				return usageError{Err: fmt.Errorf("--match is required: a sweep deletes only tags that match")}
			}
			opts, err := sweepFlags(match, olderThan, "--match", dryRun)
			if err != nil {
				return err
			}
			red := redact.New()
			ropts, err := credentialsFile(credentials, red)
			if err != nil {
				return err
			}
			return runRegistryCommand(cmd, output, red, ropts, func(reg *registry.Client, log func(string)) (any, error) {
				opts.Log = log
				return sweep.Run(cmd.Context(), reg, args[0], *opts)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&match, "match", "", "regular expression the tags to delete match, anchored at the start (required)")
	f.StringVar(&olderThan, "older-than", "", "delete matching tags whose image is older than this: 36h, 90m, 7d, 1d12h (required)")
	f.BoolVar(&dryRun, "dry-run", false, "report what would be deleted; delete nothing")
	cli.OutputFlag(cmd, &output, "result format: json or yaml")
	f.StringVar(&credentials, "credentials", "", "registry credentials file: a list of {registry, username, password, repositories} (default $"+envCredentials+")")
	return cmd
}

// sweepFlags checks a sweep's regular expression (given with flag) and --older-than; nil
// options when neither is given.
func sweepFlags(match, olderThan, flag string, dryRun bool) (*sweep.Options, error) {
	switch {
	case match == "" && olderThan == "":
		return nil, nil
	case match == "":
		return nil, usageError{Err: fmt.Errorf("--older-than needs %s REGEX: a sweep deletes only tags that match", flag)}
	case olderThan == "":
		return nil, usageError{Err: fmt.Errorf("%s needs --older-than: the age above which a matching tag is deleted (7d, 36h)", flag)}
	}
	if _, err := regexp.Compile(match); err != nil {
		return nil, usageError{Err: fmt.Errorf("%s %q is not a regular expression: %w", flag, match, err)}
	}
	age, err := sweep.ParseAge(olderThan)
	if err != nil {
		return nil, usageError{Err: fmt.Errorf("--older-than: %w", err)}
	}
	return &sweep.Options{Match: match, OlderThan: age, DryRun: dryRun}, nil
}
