// Command image_manifest is the Ansible module that assembles a multi-platform index from
// per-platform images built anywhere (ONAP's native builds per architecture) and tags it: its
// options are the arguments and flags of imagebuilder manifest create (ref, from, attestations)
// plus credentials; the result is the command's facts (the index digest and each child), plus
// `changed`. Check mode is --dry-run. Its documentation is generated from options.schema.json
// and docs.yml into the collection's plugins/modules/image_manifest.py.
package main

//go:generate go run ../../internal/ansible/gendoc -name image_manifest -schema options.schema.json -prose docs.yml -python ../../collection/plugins/modules/image_manifest.py

import (
	"context"
	_ "embed"
	"fmt"
	"os"

	"github.com/imagebuilder/imagebuilder/internal/ansible"
	"github.com/imagebuilder/imagebuilder/internal/manifest"
	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
)

// optionsSchema is the JSON Schema of the module's options.
//
//go:embed options.schema.json
var optionsSchema []byte

var optsSchema = &schemacheck.Schema{
	ID:   "https://github.com/imagebuilder/imagebuilder/modules/image_manifest/options.schema.json",
	Data: optionsSchema,
}

// options are the module's options, decoded.
type options struct {
	Ref             string                       `json:"ref"`
	From            []string                     `json:"from"`
	Attestations    string                       `json:"attestations,omitempty"`
	Credentials     []registry.ScopedCredentials `json:"credentials,omitempty"`
	CredentialsFile string                       `json:"credentials_file,omitempty"`
}

func main() {
	os.Exit(ansible.Main(module()))
}

func module() ansible.Module {
	spec, err := ansible.SpecFromSchema(optionsSchema)
	if err != nil {
		// The embedded schema is tested; this cannot happen in a released binary.
		panic(fmt.Sprintf("deriving the options from the embedded schema: %v", err))
	}
	return ansible.Module{Name: "image_manifest", Spec: spec, Run: run}
}

func run(ctx context.Context, req *ansible.Request) *ansible.Response {
	var o options
	err := optsSchema.Check(req.Options, func() ([]schemacheck.FieldError, error) {
		if err := schemacheck.DecodeValid(req.Options, &o); err != nil {
			return nil, err
		}
		if !registry.Explicit(o.Ref) {
			return []schemacheck.FieldError{{Pointer: "/ref", Message: fmt.Sprintf("%q names no tag: give REGISTRY/REPO:TAG", o.Ref)}}, nil
		}
		if err := registry.CheckCredentials(o.Credentials); err != nil {
			return schemacheck.Nest("/credentials", err).Errors, nil
		}
		return nil, nil
	})
	if err != nil {
		return ansible.Invalid(err)
	}
	ropts, err := registry.ScopedCredentialOptions(o.Credentials, "option credentials", o.CredentialsFile, req.Redactor)
	if err != nil {
		return ansible.Failf("%v", err)
	}
	reg, err := registry.New(append(ropts, registry.WithRedactor(req.Redactor))...)
	if err != nil {
		return ansible.Failf("%v", err)
	}
	mopts := manifest.Options{Attestations: o.Attestations, DryRun: req.CheckMode}
	if mopts.Attestations == "" {
		mopts.Attestations = manifest.Keep
	}
	if req.Log != nil {
		mopts.Log = func(line string) { fmt.Fprintln(req.Log, line) }
	}
	res, runErr := manifest.Create(ctx, reg, o.Ref, o.From, mopts)
	resp := &ansible.Response{
		Changed: res.Changed,
		Failed:  runErr != nil,
		Facts: map[string]any{
			"ref":        res.Ref,
			"digest":     res.Digest,
			"media_type": res.MediaType,
			"manifests":  res.Manifests,
			"dry_run":    res.DryRun,
		},
	}
	if res.Previous != "" {
		resp.Facts["previous"] = res.Previous
	}
	switch {
	case runErr != nil:
		resp.Msg = runErr.Error()
		resp.Facts["failure"] = res.Failed
	case req.CheckMode:
		resp.Msg = fmt.Sprintf("check mode: %s would be %s (%d manifests)", res.Ref, res.Digest, len(res.Manifests))
	default:
		resp.Msg = fmt.Sprintf("%s is %s (%d manifests)", res.Ref, res.Digest, len(res.Manifests))
	}
	return resp
}
