package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/imagebuilder/imagebuilder/internal/cli"
	"github.com/imagebuilder/imagebuilder/internal/manifest"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/registry"
)

func newManifestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest create REF --from REF...",
		Short: "Assemble multi-platform indexes from images built anywhere",
	}
	cmd.AddCommand(newManifestCreateCmd())
	return cmd
}

func newManifestCreateCmd() *cobra.Command {
	var (
		from                              []string
		attestations, output, credentials string
		dryRun                            bool
	)
	cmd := &cobra.Command{
		Use:   "create REF --from REF... [--attestations keep|drop] [--dry-run] [--output json|yaml] [--credentials FILE]",
		Short: "Make an index of per-platform images (built on native machines) and tag it as REF",
		Long: `Assemble an index from per-platform images built anywhere, as ONAP does by hand after building
each architecture on its own machine, and tag it as REF (REGISTRY/REPO:TAG).

Each --from is an image (its platform comes from its config) or an index, which is flattened:
its platform manifests, and its attestation manifests (BuildKit's provenance and SBOMs) with
--attestations keep (the default) or none with drop. Sources in other repositories of REF's
registry have their blobs mounted and their manifests copied into REF's repository; sources in
other registries are copied. A platform given by two sources is an error naming both.

The index is a Docker manifest list when every child is a Docker v2 manifest, an OCI index
otherwise. REF already serving the same index is left alone (changed: false).

Facts on stdout: {ref, digest, media_type, previous, manifests: [{platform, digest, from,
attests}], changed}. Exit status: 0 ok, 1 failed, 2 usage error.`,
		Example: `  imagebuilder manifest create reg.example.com/team/app:1.0 \
      --from reg.example.com/team/app:1.0-amd64 --from reg.example.com/team/app:1.0-arm64
  imagebuilder manifest create reg.example.com/team/app:1.0 --from build/app:amd64 --from build/app:arm64 --attestations drop`,
		Args: cli.OneArg("REF (the index to create)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if attestations != manifest.Keep && attestations != manifest.Drop {
				return usageError{Err: fmt.Errorf("--attestations must be keep or drop, got %q", attestations)}
			}
			if len(from) == 0 {
				return usageError{Err: fmt.Errorf("give the images to assemble with --from REF (repeatable)")}
			}
			if !registry.Explicit(args[0]) {
				return usageError{Err: fmt.Errorf("REF %q names no tag: give REGISTRY/REPO:TAG", args[0])}
			}
			red := redact.New()
			ropts, err := credentialsFile(credentials, red)
			if err != nil {
				return err
			}
			return runRegistryCommand(cmd, output, red, ropts, func(reg *registry.Client, log func(string)) (any, error) {
				return manifest.Create(cmd.Context(), reg, args[0], from, manifest.Options{Attestations: attestations, DryRun: dryRun, Log: log})
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&from, "from", nil, "an image or index to take platforms from (repeatable, in index order)")
	f.StringVar(&attestations, "attestations", manifest.Keep, "attestation manifests of --from indexes: keep or drop")
	f.BoolVar(&dryRun, "dry-run", false, "compute the index and its digest; write nothing")
	cli.OutputFlag(cmd, &output, "result format: json or yaml")
	f.StringVar(&credentials, "credentials", "", "registry credentials file: a list of {registry, username, password, repositories} (default $"+envCredentials+")")
	cli.CompleteValues(cmd, "attestations", manifest.Keep, manifest.Drop)
	return cmd
}
