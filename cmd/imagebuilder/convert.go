package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/cli"
	"github.com/imagebuilder/imagebuilder/internal/convert"
	"github.com/imagebuilder/imagebuilder/internal/params"
)

func newConvertCmd() *cobra.Command {
	var (
		file, to, out               string
		defaults                    bool
		from, repoRoot, repoURL, rg string
	)
	cmd := &cobra.Command{
		Use:   "convert [--to yaml|json] [--defaults] [-f FILE|DIR|-] [--out DIR] | --from cord|zuul FILE [--repo-root DIR|--repo-url TEMPLATE] [--registry URL]",
		Short: "Convert build params between JSON and YAML, or import CORD's and Zuul's image lists as a family file",
		Long: `Convert build params (or any JSON/YAML document) from JSON to YAML or back. Without --to the
output is the other format than the input's. YAML output has sorted keys, so YAML -> JSON -> YAML
is stable. --defaults fills in the documented defaults (version HEAD, dockerfile Dockerfile,
workdir .) and requires valid build params.

With --out DIR the result is written under DIR with the extension changed; when -f names a
directory, every .json/.yaml/.yml file under it is converted, mirroring the paths.

The YAML form of SODALITE JSON build params is an xOpera inputs file as is (top-level source and
target).

With --from, FILE is another system's list of images and the output is a family file (YAML
unless --to json), validated against the family schema (imagebuilder schema family):
  --from cord   CORD's docker_images.yml: buildable_images (name, repo, path, dockerfile,
                components) and pull_only_images; every image is tagged candidate.
  --from zuul   Zuul's docker_images job variable (context, repository, path, dockerfile,
                target, tags, build_args, siblings, arch): the list itself, a mapping holding
                it, or a Zuul configuration whose jobs set it in vars. The project is the
                directory of the family file.
Repositories (CORD's repo names, Zuul's siblings) become named sources: local directories
under --repo-root DIR (default: beside the family file for CORD, the directory above the
project for Zuul), or git URLs from --repo-url TEMPLATE over .Repo.`,
		Example: `  imagebuilder convert -f params.json > inputs.yaml
  imagebuilder convert --to json --defaults -f params.yaml
  imagebuilder convert --to yaml -f build-params/ --out yaml-params/
  imagebuilder convert --from cord docker_images.yml --repo-url 'https://gerrit.opencord.org/{{.Repo}}' > family.yaml
  imagebuilder convert --from zuul zuul.d/jobs.yaml > family.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if from == "" || len(args) == 0 {
				return noArgs(cmd, args)
			}
			if len(args) > 1 || cmd.Flags().Changed("file") {
				return usageError{Err: fmt.Errorf("%s --from takes one FILE (or -f FILE), got %q", cmd.CommandPath(), args)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if from != "" {
				if from = strings.ToLower(from); from != convert.FromCORD && from != convert.FromZuul {
					return usageError{Err: fmt.Errorf("--from must be cord or zuul, got %q", from)}
				}
				if out != "" || defaults {
					return usageError{Err: fmt.Errorf("--from prints a family file: --out and --defaults do not apply")}
				}
				if len(args) == 1 {
					file = args[0]
				}
				format, err := outputFormat(to)
				if err != nil {
					return err
				}
				data, err := readInput(cmd, file)
				if err != nil {
					return err
				}
				result, err := convert.Import(from, data,
					convert.ImportOptions{RepoRoot: repoRoot, RepoURL: repoURL, Registry: rg}, format)
				if err != nil {
					return fmt.Errorf("importing %s:\n%w", inputName(file), err)
				}
				_, err = cmd.OutOrStdout().Write(result)
				return err
			}
			if repoRoot != "" || repoURL != "" || rg != "" {
				return usageError{Err: fmt.Errorf("--repo-root, --repo-url and --registry need --from")}
			}
			format, err := outputFormat(to)
			if err != nil {
				return err
			}
			opts := convert.Options{Defaults: defaults, To: format}
			if file != "-" && file != "" {
				if st, err := os.Stat(file); err == nil && st.IsDir() {
					if out == "" {
						return usageError{Err: fmt.Errorf("converting the directory %q needs --out DIR", file)}
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
	f.StringVar(&from, "from", "", "import another system's image list as a family file: cord or zuul")
	f.StringVar(&repoRoot, "repo-root", "", "with --from: directory holding the repositories, as local sources DIR/NAME")
	f.StringVar(&repoURL, "repo-url", "", "with --from: git URL template of the repositories, over .Repo")
	f.StringVar(&rg, "registry", "", "with --from: registry of the family (default docker.io)")
	cli.CompleteValues(cmd, "to", "json", "yaml")
	cli.CompleteValues(cmd, "from", "cord", "zuul")
	return cmd
}

// outputFormat reads --to: "" (the default), json or yaml.
func outputFormat(to string) (params.Format, error) {
	switch strings.ToLower(to) {
	case "":
		return "", nil
	case "json":
		return params.JSON, nil
	case "yaml", "yml":
		return params.YAML, nil
	}
	return "", usageError{Err: fmt.Errorf("--to must be json or yaml, got %q", to)}
}
