package main

import (
	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/schema"
)

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "schema",
		Short:   "Print the build-params JSON Schema",
		Example: `  imagebuilder schema > build-params.schema.json`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(schema.BuildParams)
			return err
		},
	}
}
