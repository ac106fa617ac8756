package ansible

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
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
}

// Spec is a set of options by name.
type Spec map[string]*Option

// SpecFromSchema derives a module's options from a JSON Schema document whose root (directly or
// through $ref) is an object. References must be local (#/$defs/...).
func SpecFromSchema(schemaJSON []byte) (Spec, error) {
	var root map[string]any
	if err := json.Unmarshal(schemaJSON, &root); err != nil {
		return nil, fmt.Errorf("reading the schema: %w", err)
	}
	c := &specConv{root: root}
	obj, err := c.resolve(root)
	if err != nil {
		return nil, err
	}
	if t, _ := obj["type"].(string); t != "object" {
		return nil, fmt.Errorf("the schema's root is %q, not an object", t)
	}
	return c.spec(obj, "")
}

type specConv struct {
	root map[string]any
}

// resolve follows $ref (keeping the referring schema's description when it has one).
func (c *specConv) resolve(s map[string]any) (map[string]any, error) {
	for range 32 {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s, nil
		}
		target, err := c.pointer(ref)
		if err != nil {
			return nil, err
		}
		merged := map[string]any{}
		for k, v := range target {
			merged[k] = v
		}
		for k, v := range s {
			if k != "$ref" {
				merged[k] = v
			}
		}
		s = merged
	}
	return nil, fmt.Errorf("too many nested $ref")
}

func (c *specConv) pointer(ref string) (map[string]any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("$ref %q: only local references are supported", ref)
	}
	var cur any = c.root
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
		cur = m[tok]
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %q does not resolve to a schema", ref)
	}
	return m, nil
}

func (c *specConv) spec(obj map[string]any, path string) (Spec, error) {
	props, _ := obj["properties"].(map[string]any)
	required := map[string]bool{}
	if req, ok := obj["required"].([]any); ok {
		for _, r := range req {
			if s, ok := r.(string); ok {
				required[s] = true
			}
		}
	}
	out := Spec{}
	for name, raw := range props {
		ps, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s%s: not a schema", path, name)
		}
		o, err := c.option(ps, path+name)
		if err != nil {
			return nil, err
		}
		o.Required = required[name]
		out[name] = o
	}
	return out, nil
}

func (c *specConv) option(s map[string]any, path string) (*Option, error) {
	s, err := c.resolve(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	o := &Option{Default: s["default"]}
	o.Description, _ = s["description"].(string)
	o.NoLog, _ = s["writeOnly"].(bool)
	t, _ := s["type"].(string)
	switch t {
	case "object":
		o.Type = "dict"
		if _, ok := s["properties"]; ok {
			if o.Options, err = c.spec(s, path+"."); err != nil {
				return nil, err
			}
		} else {
			o.Values = c.valueType(s)
		}
	case "array":
		o.Type = "list"
		items, _ := s["items"].(map[string]any)
		if items == nil {
			o.Elements = "raw"
			break
		}
		el, err := c.option(items, path+"[]")
		if err != nil {
			return nil, err
		}
		o.Elements = el.Type
		o.Options = el.Options
	default:
		o.Type = scalarType(t)
	}
	return o, nil
}

// valueType is the type of a map's values: the additionalProperties schema's, else the one
// type shared by every patternProperties schema.
func (c *specConv) valueType(s map[string]any) string {
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		t, _ := ap["type"].(string)
		return scalarType(t)
	}
	pp, _ := s["patternProperties"].(map[string]any)
	types := map[string]bool{}
	for _, v := range pp {
		m, _ := v.(map[string]any)
		t, _ := m["type"].(string)
		types[scalarType(t)] = true
	}
	if len(types) == 1 {
		for t := range types {
			return t
		}
	}
	return ""
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
			collectScalars(v, out)
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

func collectScalars(v any, out *[]string) {
	switch v := v.(type) {
	case nil:
	case string:
		if v != "" {
			*out = append(*out, v)
		}
	case map[string]any:
		for _, e := range v {
			collectScalars(e, out)
		}
	case []any:
		for _, e := range v {
			collectScalars(e, out)
		}
	default:
		if data, err := json.Marshal(v); err == nil {
			*out = append(*out, string(data))
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
	for _, name := range sortedKeys(options) {
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
			if o.Options != nil {
				o.Options.normalize(m, p+".", warnings)
			} else if o.Values == "str" {
				for _, k := range sortedKeys(m) {
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

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
