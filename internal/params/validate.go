package params

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/distribution/reference"

	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
	"github.com/imagebuilder/imagebuilder/schema"
)

// ErrInvalid is wrapped by every error about the input itself (syntax, schema, rules), as
// opposed to failures while running. Front ends map it to exit status 2. It is the one
// sentinel of package schemacheck, shared by every document kind (build params, family files).
var ErrInvalid = schemacheck.ErrInvalid

// FieldError is one problem with the input, located by the JSON pointer of the offending value.
type FieldError = schemacheck.FieldError

// ValidationError holds every problem found in the input, not only the first.
type ValidationError = schemacheck.ValidationError

// Format is the syntax a document was written in.
type Format = schemacheck.Format

// Formats.
const (
	JSON = schemacheck.JSON
	YAML = schemacheck.YAML
)

// Decode parses a JSON or YAML document (detected from its first character) into generic data
// (maps, slices, strings, json.Number, bools, nil). Duplicate keys in YAML are errors.
func Decode(data []byte) (any, Format, error) { return schemacheck.Decode(data) }

// PatternHints explain the patterns of the params' types, in validation messages; other
// documents that reuse these types (family files) use them too.
var PatternHints = map[string]string{
	PatternRepository: "a lowercase repository path such as team/app (letters, digits, and . _ - between them)",
	PatternTag:        "a tag: up to 128 letters, digits, _ . -, not starting with . or -",
	PatternPlatform:   "a platform os/arch[/variant] such as linux/amd64 or linux/arm/v7",
	PatternRegistry:   "a registry host[:port][/namespace] such as docker.io or 127.0.0.1:5000",
	PatternHTTPURL:    "an http:// or https:// URL",
	PatternArgName:    "a variable name (letters, digits, _; not starting with a digit)",
	PatternSecretID:   "a secret id (letters, digits, _ . -)",
	PatternSSH:        "an ssh forward: default, ID, or ID=PATH[,PATH...]",
}

// Rules explain the broken oneOf/dependentRequired rules of the params' types, by $defs name;
// other documents that reuse these types (family files) use them too.
var Rules = map[string]func(obj map[string]any) string{
	"Builder": func(map[string]any) string {
		return "endpoint and endpoints cannot be combined: give one engine (endpoint) or a pool (endpoints)"
	},
	"Source": func(obj map[string]any) string { return sourceRule(hasKey(obj)) },
	"Tar":    func(obj map[string]any) string { return tarRule(hasKey(obj)) },
	"Secret": func(obj map[string]any) string {
		has := hasKey(obj)
		var present []string
		for _, k := range secretSources {
			if has(k) {
				present = append(present, k)
			}
		}
		if len(present) > 1 {
			return strings.Join(present, " and ") + " cannot be combined: set exactly one of env, file or value"
		}
		return "missing env, file or value: set exactly one of them"
	},
	"BuilderTLS": func(obj map[string]any) string {
		if _, ok := obj["cert"]; ok {
			return "cert needs key"
		}
		return "key needs cert"
	},
	"Registry": func(obj map[string]any) string {
		if _, ok := obj["username"]; ok {
			return "username needs password"
		}
		return "password needs username"
	},
}

func hasKey(obj map[string]any) func(string) bool {
	return func(property string) bool { _, ok := obj[property]; return ok }
}

var buildParamsSchema = &schemacheck.Schema{
	ID: SchemaID, Data: schema.BuildParams, Hints: PatternHints, Rules: Rules,
}

func invalid(pointer, format string, args ...any) error {
	return schemacheck.Invalid(pointer, format, args...)
}

// Prepare compiles the schema ahead of the first Validate, which then does not wait for it:
// a front end calls it (in a goroutine) while it does other work.
func Prepare() { buildParamsSchema.Prepare() }

// Validate checks generic data against the build-params schema and the rules the schema cannot
// express. It reports every problem found, each located by JSON pointer.
//
// It first expands, in place, the one shorthand the params allow: an ssh value given as a
// single forward (ssh: default, as buildx --ssh default reads) stands for a list of one.
func Validate(doc any) error {
	expandSSH(doc)
	return buildParamsSchema.Check(doc, func() ([]FieldError, error) {
		// The rules below assume the schema holds.
		p, err := DecodeValid(doc)
		if err != nil {
			return nil, err
		}
		return p.check(), nil
	})
}

// ExpandSSH turns an ssh value that is a string, in obj, into a list of that one string: the
// shorthand ssh: default.
func ExpandSSH(obj any) {
	if m, ok := obj.(map[string]any); ok {
		if s, ok := m["ssh"].(string); ok {
			m["ssh"] = []any{s}
		}
	}
}

// expandSSH turns an ssh value that is a string, at the top level or in an image, into a list of
// that one string.
func expandSSH(doc any) {
	ExpandSSH(doc)
	if top, ok := doc.(map[string]any); ok {
		if target, ok := top["target"].(map[string]any); ok {
			if images, ok := target["images"].([]any); ok {
				for _, img := range images {
					ExpandSSH(img)
				}
			}
		}
	}
}

// Load parses, validates and decodes a build-params document (JSON or YAML). Defaults are not
// filled in; see WithDefaults.
func Load(data []byte) (*BuildParams, error) {
	doc, _, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if err := Validate(doc); err != nil {
		return nil, err
	}
	return DecodeValid(doc)
}

// LoadFile is Load on a file, or on standard input when name is "-".
func LoadFile(name string) (*BuildParams, error) {
	data, err := ReadInput(name)
	if err != nil {
		return nil, err
	}
	return Load(data)
}

// ReadInput reads a file, or standard input when name is "-" or empty.
func ReadInput(name string) ([]byte, error) {
	if name == "" || name == "-" {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", name, err)
	}
	return data, nil
}

// FromMap validates generic data (for example Ansible module options) and decodes it.
func FromMap(doc map[string]any) (*BuildParams, error) {
	// Round-trip through JSON so numbers are json.Number, as the validator expects.
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding options: %w", err)
	}
	return Load(data)
}

// DecodeValid decodes generic data that Validate accepted into the params types.
func DecodeValid(doc any) (*BuildParams, error) {
	var p BuildParams
	if err := schemacheck.DecodeValid(doc, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// CheckRelPath reports a path that must stay inside its root and does not: absolute, or
// leaving it with "..". "" when v is fine (or empty).
func CheckRelPath(v string) string {
	if v == "" {
		return ""
	}
	if path.IsAbs(v) || strings.HasPrefix(v, `\`) {
		return fmt.Sprintf("%q must be a relative path", v)
	} else if c := path.Clean(v); c == ".." || strings.HasPrefix(c, "../") {
		return fmt.Sprintf("%q leaves its root directory", v)
	}
	return ""
}

// CheckRegistry applies the rules the schema cannot express to a registry at pointer ptr: its
// repositories are regular expressions and its stage_tag a template.
func CheckRegistry(ptr string, r Registry) []FieldError {
	var errs []FieldError
	for i, re := range r.Repositories {
		if _, err := regexp.Compile("^(?:" + re + ")$"); err != nil {
			errs = append(errs, FieldError{Pointer: fmt.Sprintf("%s/repositories/%d", ptr, i), Message: fmt.Sprintf("%q is not a regular expression: %v", re, err)})
		}
	}
	if r.StageTag != "" {
		if _, err := template.New("stage_tag").Parse(r.StageTag); err != nil {
			errs = append(errs, FieldError{Pointer: ptr + "/stage_tag", Message: fmt.Sprintf("not a template: %v", err)})
		}
	}
	return errs
}

// CheckSource applies the rules the schema cannot express to a source at pointer ptr: its
// relative paths must stay inside their root.
func CheckSource(ptr string, s Source) []FieldError {
	var errs []FieldError
	relPath := func(field, v string) {
		if msg := CheckRelPath(v); msg != "" {
			errs = append(errs, FieldError{Pointer: ptr + field, Message: msg})
		}
	}
	if g := s.GitRepo; g != nil {
		relPath("/git_repo/dockerfile", g.Dockerfile)
		relPath("/git_repo/workdir", g.Workdir)
	}
	if b := s.BuildContext; b != nil {
		relPath("/build_context/subdir", b.Subdir)
	}
	if t := s.Tar; t != nil {
		relPath("/tar/dockerfile", t.Dockerfile)
		relPath("/tar/workdir", t.Workdir)
	}
	if l := s.Local; l != nil {
		relPath("/local/dockerfile", l.Dockerfile)
		relPath("/local/workdir", l.Workdir)
	}
	return errs
}

// CheckBases checks the references of a bases map at pointer ptr.
func CheckBases(ptr string, bases map[string]string) []FieldError {
	var errs []FieldError
	for _, k := range slices.Sorted(maps.Keys(bases)) {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, FieldError{Pointer: ptr, Message: "keys must name a stage, a stage index or an image; got an empty key"})
			continue
		}
		if _, err := reference.ParseNormalizedNamed(bases[k]); err != nil {
			errs = append(errs, FieldError{Pointer: ptr + "/" + schemacheck.Escape(k),
				Message: fmt.Sprintf("%q is not a valid image reference: %v", bases[k], err)})
		}
	}
	return errs
}

// CheckLabels checks the keys of a labels map at pointer ptr.
func CheckLabels(ptr string, labels map[string]string) []FieldError {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if strings.TrimSpace(k) == "" {
			return []FieldError{{Pointer: ptr, Message: "label keys must not be empty"}}
		}
	}
	return nil
}

// check applies the rules the schema cannot express: references must parse as a whole, relative
// paths must stay inside their root, and no two images may push the same reference.
func (p *BuildParams) check() []FieldError {
	var errs []FieldError
	add := func(ptr, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: ptr, Message: fmt.Sprintf(format, args...)})
	}
	errs = append(errs, CheckSource("/source", p.Source)...)
	errs = append(errs, CheckRegistry("/target/registry", p.Target.Registry)...)
	refs := map[string]string{}
	for i, img := range p.Target.Images {
		ptr := fmt.Sprintf("/target/images/%d", i)
		for j, tag := range img.AllTags() {
			ref := p.Target.RefTag(img, tag)
			field := ptr
			if j > 0 {
				field = ptr + "/tags"
			}
			if _, err := reference.ParseNormalizedNamed(ref); err != nil {
				add(field, "%q is not a valid image reference: %v", ref, err)
				continue
			}
			if other, dup := refs[ref]; dup {
				add(field, "%q is also pushed by %s", ref, other)
				continue
			}
			refs[ref] = ptr
		}
		if img.Base != "" {
			if _, err := reference.ParseNormalizedNamed(img.Base); err != nil {
				add(ptr+"/base", "%q is not a valid image reference: %v", img.Base, err)
			}
		}
		errs = append(errs, CheckLabels(ptr+"/labels", img.Labels)...)
		errs = append(errs, CheckBases(ptr+"/bases", img.Bases)...)
	}
	return errs
}

// Mask returns a copy of build params as decoded data, fit to be stored and shown: secret
// (writeOnly) values masked, every other string through red (see schemacheck.Schema.Mask).
func Mask(doc any, red *redact.Redactor) any { return buildParamsSchema.Mask(doc, red) }
