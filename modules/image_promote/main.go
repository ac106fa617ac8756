// Command image_promote is the Ansible module that promotes staged images and sweeps stale
// tags: with params, family or file it promotes what a staged build of that document pushed
// (imagebuilder promote -f), with refs the moves it names (imagebuilder promote SRC=DST...),
// and with sweep it deletes a repository's matching tags older than a threshold (imagebuilder
// sweep). The result is the command's facts, plus `changed`. Check mode is the commands'
// --dry-run. Its options are options.schema.json's; its documentation is generated from that
// and docs.yml into the collection's plugins/modules/image_promote.py.
package main

//go:generate go run ../../internal/ansible/gendoc -name image_promote -schema options.schema.json -prose docs.yml -python ../../collection/plugins/modules/image_promote.py

import (
	"cmp"
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagebuilder/imagebuilder/internal/ansible"
	"github.com/imagebuilder/imagebuilder/internal/promote"
	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
	"github.com/imagebuilder/imagebuilder/internal/staged"
	"github.com/imagebuilder/imagebuilder/internal/sweep"
	"github.com/imagebuilder/imagebuilder/schema"
)

// optionsSchema is the JSON Schema of the module's options.
//
//go:embed options.schema.json
var optionsSchema []byte

var optsSchema = &schemacheck.Schema{
	ID:   "https://github.com/imagebuilder/imagebuilder/modules/image_promote/options.schema.json",
	Data: optionsSchema,
}

// options are the module's options, decoded.
type options struct {
	Params          map[string]any               `json:"params,omitempty"`
	Family          map[string]any               `json:"family,omitempty"`
	File            string                       `json:"file,omitempty"`
	Refs            []move                       `json:"refs,omitempty"`
	Sweep           *sweepOptions                `json:"sweep,omitempty"`
	Vars            map[string]string            `json:"vars,omitempty"`
	Dir             string                       `json:"dir,omitempty"`
	Credentials     []registry.ScopedCredentials `json:"credentials,omitempty"`
	CredentialsFile string                       `json:"credentials_file,omitempty"`
}

type move struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type sweepOptions struct {
	Repository string `json:"repository"`
	Match      string `json:"match"`
	OlderThan  string `json:"older_than"`
}

// modes are the options of which exactly one says what the module does.
var modes = []string{"params", "family", "file", "refs", "sweep"}

// docSpecs are the argument specs of the documents params and family hold (from their
// schemas): the module masks their secrets and converts their numbers as image_build and
// image_family do.
var docSpecs = map[string]ansible.Spec{}

func main() {
	os.Exit(ansible.Main(module()))
}

func module() ansible.Module {
	spec, err := ansible.SpecFromSchema(optionsSchema)
	if err != nil {
		// The embedded schemas are tested; this cannot happen in a released binary.
		panic(fmt.Sprintf("deriving the options from the embedded schema: %v", err))
	}
	for name, data := range map[string][]byte{"params": schema.BuildParams, "family": schema.Family} {
		if docSpecs[name], err = ansible.SpecFromSchema(data); err != nil {
			panic(fmt.Sprintf("deriving the %s options from the embedded schema: %v", name, err))
		}
	}
	return ansible.Module{Name: "image_promote", Spec: spec, Run: run}
}

func run(ctx context.Context, req *ansible.Request) *ansible.Response {
	var warnings []string
	for name, spec := range docSpecs {
		if doc, ok := req.Options[name].(map[string]any); ok {
			req.Redactor.Add(spec.Secrets(doc)...)
			for _, w := range spec.Normalize(doc) {
				warnings = append(warnings, name+"."+w)
			}
		}
	}
	resp := promoteOrSweep(ctx, req)
	resp.Warnings = append(warnings, resp.Warnings...)
	return resp
}

func promoteOrSweep(ctx context.Context, req *ansible.Request) *ansible.Response {
	var o options
	err := optsSchema.Check(req.Options, func() ([]schemacheck.FieldError, error) {
		var given []string
		for _, m := range modes {
			if _, ok := req.Options[m]; ok {
				given = append(given, m)
			}
		}
		if len(given) != 1 {
			return []schemacheck.FieldError{{Message: fmt.Sprintf("give exactly one of %s; got %s", strings.Join(modes, ", "), orNone(given))}}, nil
		}
		if req.Options["vars"] != nil {
			if m := given[0]; m == "refs" || m == "sweep" {
				return []schemacheck.FieldError{{Pointer: "/vars", Message: "vars are the stage tag's .Vars, for params, family or file; " + m + " names the tags itself"}}, nil
			}
		}
		return nil, schemacheck.DecodeValid(req.Options, &o)
	})
	if err != nil {
		return ansible.Invalid(err)
	}
	if err := registry.CheckCredentials(o.Credentials); err != nil {
		return invalidf("credentials", err)
	}
	ropts, err := registry.ScopedCredentialOptions(o.Credentials, "option credentials", o.CredentialsFile, req.Redactor)
	if err != nil {
		return ansible.Failf("%v", err)
	}

	var items []promote.Item
	switch {
	case o.Sweep != nil:
		age, err := sweep.ParseAge(o.Sweep.OlderThan)
		if err != nil {
			return invalidf("sweep/older_than", err)
		}
		return runRegistry(req, ropts, func(reg *registry.Client, log func(string)) (any, error) {
			return sweep.Run(ctx, reg, o.Sweep.Repository, sweep.Options{Match: o.Sweep.Match, OlderThan: age, DryRun: req.CheckMode, Log: log})
		})
	case o.Refs != nil:
		for _, m := range o.Refs {
			items = append(items, promote.Item{Src: m.From, Dst: m.To})
		}
	default:
		r, resp := stagedRequest(req, o)
		if resp != nil {
			return resp
		}
		items, ropts = r.Items, append(r.RegistryOptions, ropts...)
	}
	return runRegistry(req, ropts, func(reg *registry.Client, log func(string)) (any, error) {
		return promote.Run(ctx, reg, items, promote.Options{DryRun: req.CheckMode, Log: log})
	})
}

// stagedRequest reads what params, family or file staged.
func stagedRequest(req *ansible.Request, o options) (*staged.Request, *ansible.Response) {
	file := o.File
	if file != "" && o.Dir != "" && !filepath.IsAbs(file) {
		file = filepath.Join(o.Dir, file)
	}
	dir := o.Dir
	if dir == "" && file != "" {
		dir = filepath.Dir(file)
	}
	dir, err := filepath.Abs(cmp.Or(dir, "."))
	if err != nil {
		return nil, ansible.Failf("locating dir %q: %v", o.Dir, err)
	}
	sopts := staged.Options{Dir: dir, Vars: o.Vars, Redactor: req.Redactor}
	var r *staged.Request
	name := "file"
	switch {
	case o.Params != nil:
		name = "params"
		r, err = staged.FromDoc(o.Params, staged.Params, sopts)
	case o.Family != nil:
		name = "family"
		r, err = staged.FromDoc(o.Family, staged.Family, sopts)
	default:
		data, rerr := os.ReadFile(file)
		if rerr != nil {
			return nil, ansible.Failf("reading file: %v", rerr)
		}
		r, err = staged.Load(data, staged.Detect, sopts)
	}
	if err != nil {
		return nil, invalidf(name, err)
	}
	return r, nil
}

// runRegistry opens the registry client with ropts (the file's registry options, the
// credentials option's and the credentials file's), runs run, and returns its facts.
func runRegistry(req *ansible.Request, ropts []registry.Option, run func(*registry.Client, func(string)) (any, error)) *ansible.Response {
	reg, err := registry.New(append(ropts, registry.WithRedactor(req.Redactor))...)
	if err != nil {
		return ansible.Failf("%v", err)
	}
	log := func(string) {}
	if req.Log != nil {
		log = func(line string) { fmt.Fprintln(req.Log, line) }
	}
	res, runErr := run(reg, log)
	resp := &ansible.Response{Failed: runErr != nil, Facts: map[string]any{}}
	switch res := res.(type) {
	case *result.Promotion:
		resp.Changed = res.Changed
		resp.Facts["images"] = res.Images
		resp.Facts["dry_run"] = res.DryRun
		resp.Facts["digests"] = promotedDigests(res)
		if res.Failed != nil {
			resp.Facts["failure"] = res.Failed
		}
		resp.Msg = fmt.Sprintf("promoted %d tags in %d repositories", countPromoted(res), len(res.Images))
	case *result.Sweep:
		resp.Changed = res.Changed
		resp.Facts["repository"] = res.Repository
		resp.Facts["deleted"] = res.Deleted
		resp.Facts["kept"] = res.Kept
		resp.Facts["dry_run"] = res.DryRun
		if res.Failed != nil {
			resp.Facts["failure"] = res.Failed
		}
		resp.Msg = fmt.Sprintf("deleted %d tags of %s, kept %d", len(res.Deleted), res.Repository, len(res.Kept))
	}
	if req.CheckMode {
		resp.Msg = "check mode: " + strings.Replace(strings.Replace(resp.Msg, "promoted", "would promote", 1), "deleted", "would delete", 1)
	}
	if runErr != nil {
		resp.Msg = runErr.Error()
	}
	return resp
}

// promotedDigests maps every final reference to the digest it serves after the promote.
func promotedDigests(p *result.Promotion) map[string]string {
	out := map[string]string{}
	for _, img := range p.Images {
		for _, t := range img.Promoted {
			out[t.To] = t.Digest
		}
	}
	return out
}

func countPromoted(p *result.Promotion) int {
	n := 0
	for _, img := range p.Images {
		for _, t := range img.Promoted {
			if t.Changed {
				n++
			}
		}
	}
	return n
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, " and ")
}

// invalidf is the response to an invalid option: its problems, each at its pointer under
// /name.
func invalidf(name string, err error) *ansible.Response {
	return ansible.Invalid(schemacheck.Nest("/"+name, err))
}
