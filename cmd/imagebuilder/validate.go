package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/params"
)

func newValidateCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate [-f FILE|-]",
		Short: "Check build params against the schema and rules, without running anything",
		Long: `Check build params (JSON or YAML, detected) against the build-params schema and the rules
it cannot express. Every problem is printed on stderr, one per line, located by JSON pointer.

Exit status: 0 valid, 2 invalid, 1 when the file cannot be read.`,
		Example: `  imagebuilder validate -f params.yaml
  cat params.json | imagebuilder validate`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := readInput(cmd, file)
			if err != nil {
				return err
			}
			if _, err := params.Load(data); err != nil {
				return exitCodeError{Code: exitInvalid, Err: fmt.Errorf("%s is invalid:\n%w", inputName(file), err)}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s is valid\n", inputName(file))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "-", "build params file (JSON or YAML), - for stdin")
	return cmd
}

func inputName(file string) string {
	if file == "" || file == "-" {
		return "standard input"
	}
	return fmt.Sprintf("%q", file)
}
