package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/schema"
)

// schemas are the JSON Schemas the command prints, by name.
var schemas = map[string][]byte{
	"build-params": schema.BuildParams,
	"family":       schema.Family,
}

func newSchemaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema [build-params|family]",
		Short: "Print the build-params (default) or family-file JSON Schema",
		Example: `  imagebuilder schema > build-params.schema.json
  imagebuilder schema family > family.schema.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{Err: fmt.Errorf("%s takes at most one argument (build-params or family), got %q", cmd.CommandPath(), args)}
			}
			if len(args) == 1 && schemas[args[0]] == nil {
				return usageError{Err: fmt.Errorf("no schema named %q: want build-params or family", args[0])}
			}
			return nil
		},
		ValidArgs: []string{"build-params", "family"},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "build-params"
			if len(args) == 1 {
				name = args[0]
			}
			_, err := cmd.OutOrStdout().Write(schemas[name])
			return err
		},
	}
	return cmd
}
