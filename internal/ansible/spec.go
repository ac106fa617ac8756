package ansible

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/imagebuilder/imagebuilder/internal/redact"

	"github.com/invopop/jsonschema"

	"github.com/imagebuilder/imagebuilder/internal/schemawalk"
)

// Option describes one module option the way an Ansible argument spec and a module's
// DOCUMENTATION do. A module's options are derived from the JSON Schema of its input, so the
// schema stays the single source of truth; the sidecar documentation is checked against it.
type Option struct {
	Type        string // str, bool, int, float, dict, list or raw
	Elements    string // for lists: the type of the elements
	Required    bool   // the schema lists it in required
	Default     any    // the schema's default, nil when none
	NoLog       bool   // a secret (writeOnly in the schema): masked in everything returned
	Description string // the schema's description
	Options     Spec   // suboptions of a dict, or of the dicts in a list
	Values      string // for dicts without suboptions (maps): the type of the values, "" when any
	// ValueOptions are the options of each value of a map whose values are objects (free keys,
	// fixed value shape: build secrets by id). An argument spec cannot say this; the module's
	// masking and conversions follow it.
	ValueOptions Spec
	// ValueExactlyOne names the value options of which each value must set exactly one.
	ValueExactlyOne []string
	Choices         []any // the schema's enum (of the value, or of a list's elements), nil when any value goes

	// Rules between suboptions, from the object schema's oneOf (each branch only requiring one
	// property: exactly one of them) and dependentRequired.
	MutuallyExclusive [][]string
	RequiredOneOf     [][]string
	RequiredBy        map[string][]string
}

// Spec is a set of options by name.
type Spec map[string]*Option

// SpecFromSchema derives a module's options from a JSON Schema document whose root (directly or
// through $ref) is an object. References must be local (#/$defs/...).
func SpecFromSchema(schemaJSON []byte) (Spec, error) {
	doc, err := schemawalk.Parse(schemaJSON)
	if err != nil {
		return nil, err
	}
	root := Spec{}
	options := map[*schemawalk.Property]*Option{}
	err = doc.Walk(func(p *schemawalk.Property) bool {
		o := optionOf(p)
		options[p] = o
		parent := root
		if p.Parent != nil {
			po := options[p.Parent]
			sub := &po.Options
			if p.Parent.Kind == schemawalk.Map {
				sub = &po.ValueOptions
			}
			if *sub == nil {
				*sub = Spec{}
			}
			parent = *sub
		}
		parent[p.Name] = o
		return true
	})
	if err != nil {
		return nil, err
	}
	return root, nil
}

// SpecFromSchemas is SpecFromSchema of each document, merged: a module whose options are one
// document's (a family file) plus options of its own (how to run it) declares both. An option
// named in two documents is an error naming it.
func SpecFromSchemas(schemas ...[]byte) (Spec, error) {
	out := Spec{}
	for i, data := range schemas {
		spec, err := SpecFromSchema(data)
		if err != nil {
			return nil, err
		}
		for _, name := range spec.Names() {
			if _, clash := out[name]; clash {
				return nil, fmt.Errorf("option %q is declared by schema %d and by an earlier one", name, i+1)
			}
			out[name] = spec[name]
		}
	}
	return out, nil
}

// optionOf is the option of one schema property (without its suboptions).
func optionOf(p *schemawalk.Property) *Option {
	s := p.Schema
	o := &Option{Default: s.Default, Description: s.Description, NoLog: s.WriteOnly, Required: p.Required, Choices: s.Enum}
	switch p.Kind {
	case schemawalk.Object:
		o.Type = "dict"
		o.rules(s)
	case schemawalk.Map:
		o.Type = "dict"
		if p.Elem != nil {
			o.Values = scalarType(p.Elem.Type)
			var values Option
			values.rules(p.Elem)
			if len(values.RequiredOneOf) > 0 {
				o.ValueExactlyOne = values.RequiredOneOf[0]
			}
		}
	case schemawalk.List:
		o.Type, o.Elements = "list", "raw"
		if p.Elem != nil {
			o.Elements = scalarType(p.Elem.Type)
			if o.Elements == "dict" {
				o.rules(p.Elem)
			} else {
				o.Choices = p.Elem.Enum
			}
		}
	default:
		o.Type = scalarType(s.Type)
	}
	return o
}

// anyNoLog reports whether an option of s, at any depth, is no_log.
func (s Spec) anyNoLog() bool {
	for _, o := range s {
		if o.NoLog || o.Options.anyNoLog() || o.ValueOptions.anyNoLog() {
			return true
		}
	}
	return false
}

// Names lists the options' names, sorted.
func (s Spec) Names() []string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Secrets lists the values of every no_log option present in options, at any depth, for
// masking. It reads raw, unvalidated options, so it also finds secrets in a request that fails
// validation; non-string values are listed in their JSON form.
func (s Spec) Secrets(options map[string]any) []string {
	var out []string
	s.secrets(options, &out)
	return out
}

func (s Spec) secrets(options map[string]any, out *[]string) {
	for name, v := range options {
		o := s[name]
		if o == nil || v == nil {
			continue
		}
		if o.NoLog {
			redact.Strings(v, func(_, s string) {
				if s != "" {
					*out = append(*out, s)
				}
			})
			continue
		}
		if o.ValueOptions != nil {
			if m, ok := v.(map[string]any); ok {
				for _, e := range m {
					if em, ok := e.(map[string]any); ok {
						o.ValueOptions.secrets(em, out)
					}
				}
			}
			continue
		}
		if o.Options == nil {
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			o.Options.secrets(v, out)
		case []any:
			for _, el := range v {
				if m, ok := el.(map[string]any); ok {
					o.Options.secrets(m, out)
				}
			}
		}
	}
}

// Normalize applies Ansible's conventions to raw options before they are validated, and returns
// a warning for each conversion (naming the option; the value only when it is not no_log):
//   - an option set to null is unset (as AnsibleModule treats None), at any depth;
//   - a number given where the spec wants a string becomes its literal text (YAML and Jinja
//     turn 1.10 or 42 into numbers; AnsibleModule converts them the same way, and warns).
//
// Everything else is left to the schema, which rejects it with a message naming the field.
func (s Spec) Normalize(options map[string]any) []string {
	var warnings []string
	s.normalize(options, "", &warnings)
	return warnings
}

func (s Spec) normalize(options map[string]any, path string, warnings *[]string) {
	for _, name := range slices.Sorted(maps.Keys(options)) {
		v := options[name]
		if v == nil {
			delete(options, name)
			continue
		}
		o := s[name]
		if o == nil {
			continue
		}
		p := path + name
		switch o.Type {
		case "str":
			options[name] = toStr(v, p, o.NoLog, warnings)
		case "dict":
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			switch {
			case o.Options != nil:
				o.Options.normalize(m, p+".", warnings)
			case o.ValueOptions != nil:
				for _, k := range slices.Sorted(maps.Keys(m)) {
					if em, ok := m[k].(map[string]any); ok {
						o.ValueOptions.normalize(em, p+"."+k+".", warnings)
					}
				}
			case o.Values == "str":
				for _, k := range slices.Sorted(maps.Keys(m)) {
					if m[k] == nil {
						delete(m, k)
						continue
					}
					m[k] = toStr(m[k], p+"."+k, o.NoLog, warnings)
				}
			}
		case "list":
			l, ok := v.([]any)
			if !ok {
				continue
			}
			for i, el := range l {
				ep := fmt.Sprintf("%s[%d]", p, i)
				switch {
				case o.Elements == "str":
					l[i] = toStr(el, ep, o.NoLog, warnings)
				case o.Options != nil:
					if m, ok := el.(map[string]any); ok {
						o.Options.normalize(m, ep+".", warnings)
					}
				}
			}
		}
	}
}

func toStr(v any, path string, noLog bool, warnings *[]string) any {
	n, ok := v.(json.Number)
	if !ok {
		return v
	}
	what := fmt.Sprintf("the string %q", n.String())
	if noLog {
		what = "a string"
	}
	*warnings = append(*warnings, fmt.Sprintf(
		"the value of %s is a number and was converted to %s; quote it if that is not what you meant (YAML reads 1.10 as the number 1.1)",
		path, what))
	return n.String()
}

// rules reads the rules between an object's properties that an argument spec can state: a oneOf
// whose every branch only requires one property (exactly one of them: mutually exclusive and
// one required), and dependentRequired (required_by).
func (o *Option) rules(obj *jsonschema.Schema) {
	if len(obj.OneOf) > 1 {
		var names []string
		for _, branch := range obj.OneOf {
			if len(branch.Required) != 1 || branch.Properties != nil || branch.Type != "" {
				names = nil
				break
			}
			names = append(names, branch.Required[0])
		}
		if names != nil {
			o.MutuallyExclusive = [][]string{names}
			o.RequiredOneOf = [][]string{names}
		}
	}
	if len(obj.DependentRequired) > 0 {
		o.RequiredBy = obj.DependentRequired
	}
}

func scalarType(t string) string {
	switch t {
	case "string":
		return "str"
	case "boolean":
		return "bool"
	case "integer":
		return "int"
	case "number":
		return "float"
	case "object":
		return "dict"
	case "array":
		return "list"
	}
	return "raw"
}
