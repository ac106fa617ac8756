// Package staged reads what a build params or family file staged (target.registry.stage_tag,
// registry.stage_tag): the promote items, stage tag to final tag for every tag of every image,
// and the registry options of the file's registry (its credentials, TLS rule and repository
// scope). `imagebuilder promote -f` and the image_promote module share it.
package staged

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/promote"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
)

// Kind is the kind of document.
type Kind int

const (
	// Detect tells build params (they have a target) from a family file (it has a registry).
	Detect Kind = iota
	// Params is build params.
	Params
	// Family is a family file.
	Family
)

// Options are what reading a file takes from the run.
type Options struct {
	// Dir is what a family file's relative paths (images_dir, local sources) are relative to:
	// the file's directory. Default: the working directory.
	Dir string
	// Vars are the values of --var NAME=VALUE: the stage tag's .Vars, and a family file's
	// variables where it declares them.
	Vars map[string]string
	// Redactor receives the file's secrets (nil: none kept).
	Redactor *redact.Redactor
}

// Request is what a staged build of the file pushed, to promote.
type Request struct {
	Items []promote.Item
	// RegistryOptions are the file's registry's: its credentials, TLS rule and repositories.
	RegistryOptions []registry.Option
}

// Load reads a document (JSON or YAML). Its errors name the bad field by JSON pointer.
func Load(data []byte, kind Kind, opts Options) (*Request, error) {
	doc, _, err := schemacheck.Decode(data)
	if err != nil {
		return nil, err
	}
	return FromDoc(doc, kind, opts)
}

// FromDoc reads a decoded document (numbers as json.Number, or Ansible options: they are
// round-tripped through JSON).
func FromDoc(doc any, kind Kind, opts Options) (*Request, error) {
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a mapping (build params or a family file), got %T", doc)
	}
	detect := kind == Detect
	if detect {
		kind = Family
		if _, isParams := top["target"]; isParams {
			kind = Params
		}
	}
	if kind == Params {
		return fromParams(top, opts)
	}
	f, err := family.FromMap(top)
	if err != nil {
		if _, isFamily := top["registry"]; !isFamily && detect {
			return nil, fmt.Errorf("neither build params (they have a target) nor a family file (it has a registry); as a family file:\n%w", err)
		}
		return nil, err
	}
	return fromFamily(f, opts)
}

func fromParams(doc map[string]any, opts Options) (*Request, error) {
	p, err := params.FromMap(doc)
	if err != nil {
		return nil, err
	}
	if opts.Redactor != nil {
		p.AddSecrets(opts.Redactor)
	}
	items, err := promote.FromParams(*p, opts.Vars)
	if err != nil {
		return nil, err
	}
	ropts, err := pipeline.RegistryOptions(p.Target.Registry, "/target/registry")
	if err != nil {
		return nil, fmt.Errorf("/target/registry/url: %w", err)
	}
	return &Request{Items: items, RegistryOptions: ropts}, nil
}

func fromFamily(f *family.File, opts Options) (*Request, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("locating the family's directory %q: %w", opts.Dir, err)
	}
	f.Dir = dir
	declared, err := f.DeclaredVars(opts.Vars)
	if err != nil {
		return nil, fmt.Errorf("/variables: %w", err)
	}
	fam, err := f.Expand(family.ExpandOptions{Vars: declared, Now: time.Now()})
	if err != nil {
		return nil, err
	}
	if opts.Redactor != nil {
		fam.AddSecrets(opts.Redactor)
	}
	items, err := promote.FromFamily(fam, opts.Vars)
	if err != nil {
		return nil, err
	}
	ropts, err := pipeline.RegistryOptions(fam.Registry, "/registry")
	if err != nil {
		return nil, fmt.Errorf("/registry/url: %w", err)
	}
	return &Request{Items: items, RegistryOptions: ropts}, nil
}
