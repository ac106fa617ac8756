package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/convert"
	"github.com/imagebuilder/imagebuilder/internal/params"
)

func newConvertCmd() *cobra.Command {
	var (
		file, to, out string
		defaults      bool
	)
	cmd := &cobra.Command{
		Use:   "convert [--to yaml|json] [--defaults] [-f FILE|DIR|-] [--out DIR]",
		Short: "Convert build params between JSON and YAML",
		Long: `Convert build params (or any JSON/YAML document) from JSON to YAML or back. Without --to the
output is the other format than the input's. YAML output has sorted keys, so YAML -> JSON -> YAML
is stable. --defaults fills in the documented defaults (version HEAD, dockerfile Dockerfile,
workdir .) and requires valid build params.

With --out DIR the result is written under DIR with the extension changed; when -f names a
directory, every .json/.yaml/.yml file under it is converted, mirroring the paths.

The YAML form of SODALITE JSON build params is an xOpera inputs file as is (top-level source and
target).`,
		Example: `  imagebuilder convert -f params.json > inputs.yaml
  imagebuilder convert --to json --defaults -f params.yaml
  imagebuilder convert --to yaml -f build-params/ --out yaml-params/`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := convert.Options{Defaults: defaults}
			switch strings.ToLower(to) {
			case "":
			case "json":
				opts.To = params.JSON
			case "yaml", "yml":
				opts.To = params.YAML
			default:
				return usageError{fmt.Errorf("--to must be json or yaml, got %q", to)}
			}
			if file != "-" && file != "" {
				if st, err := os.Stat(file); err == nil && st.IsDir() {
					if out == "" {
						return usageError{fmt.Errorf("converting the directory %q needs --out DIR", file)}
					}
					written, err := convert.Tree(file, out, opts)
					for _, w := range written {
						fmt.Fprintln(cmd.ErrOrStderr(), "wrote", w)
					}
					return err
				}
			}
			data, err := readInput(cmd, file)
			if err != nil {
				return err
			}
			result, format, err := convert.Convert(data, opts)
			if err != nil {
				return fmt.Errorf("converting %s:\n%w", inputName(file), err)
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(result)
				return err
			}
			name := "params"
			if file != "-" && file != "" {
				name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
			}
			dst := filepath.Join(out, name+convert.Extension(format))
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("creating %q: %w", out, err)
			}
			if err := os.WriteFile(dst, result, 0o644); err != nil {
				return fmt.Errorf("writing %q: %w", dst, err)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "wrote", dst)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "-", "input file or directory, - for stdin")
	f.StringVar(&to, "to", "", "output format: json or yaml (default: the other one)")
	f.StringVarP(&out, "out", "o", "", "output directory (default: stdout for a single document)")
	f.BoolVar(&defaults, "defaults", false, "fill in the documented defaults")
	completeValues(cmd, "to", "json", "yaml")
	return cmd
}
