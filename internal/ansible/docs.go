package ansible

import (
	"encoding/json"
	"fmt"
	"sort"

	"sigs.k8s.io/yaml"
)

// Sidecar is a module's sidecar documentation file (MODULE.yml beside the binary), as
// ansible-doc reads it.
type Sidecar struct {
	Documentation map[string]any `json:"DOCUMENTATION"`
	Examples      string         `json:"EXAMPLES"`
	Return        map[string]any `json:"RETURN"`
}

// ParseSidecar parses a sidecar documentation file.
func ParseSidecar(data []byte) (*Sidecar, error) {
	var s Sidecar
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return nil, fmt.Errorf("parsing the documentation: %w", err)
	}
	if s.Documentation == nil {
		return nil, fmt.Errorf("the documentation has no DOCUMENTATION")
	}
	return &s, nil
}

// CheckOptions compares the options documented in DOCUMENTATION with spec, recursively through
// suboptions, and returns every difference: options missing on either side, and differences of
// type, elements, required, default and no_log. Every documented option needs a description.
func (s *Sidecar) CheckOptions(spec Spec) []string {
	opts, _ := s.Documentation["options"].(map[string]any)
	var problems []string
	checkOptions(opts, spec, "", &problems)
	sort.Strings(problems)
	return problems
}

func checkOptions(doc map[string]any, spec Spec, path string, problems *[]string) {
	add := func(format string, args ...any) { *problems = append(*problems, fmt.Sprintf(format, args...)) }
	for name := range spec {
		if _, ok := doc[name]; !ok {
			add("%s%s: in the schema, not documented", path, name)
		}
	}
	for name, raw := range doc {
		p := path + name
		o := spec[name]
		if o == nil {
			add("%s: documented, not in the schema", p)
			continue
		}
		d, ok := raw.(map[string]any)
		if !ok {
			add("%s: the documentation is not a mapping", p)
			continue
		}
		if !nonEmpty(d["description"]) {
			add("%s: no description", p)
		}
		if got := strOr(d["type"], "str"); got != o.Type {
			add("%s: documented type %s, schema type %s", p, got, o.Type)
		}
		if o.Type == "list" {
			if got := strOr(d["elements"], ""); got != o.Elements {
				add("%s: documented elements %q, schema elements %q", p, got, o.Elements)
			}
		} else if _, ok := d["elements"]; ok {
			add("%s: elements documented for a %s", p, o.Type)
		}
		if got := boolOr(d["required"]); got != o.Required {
			add("%s: documented required %v, schema required %v", p, got, o.Required)
		}
		if got := boolOr(d["no_log"]); got != o.NoLog {
			add("%s: documented no_log %v, schema writeOnly %v", p, got, o.NoLog)
		}
		if got, want := canonical(d["default"]), canonical(o.Default); got != want {
			add("%s: documented default %s, schema default %s", p, got, want)
		}
		sub, hasSub := d["suboptions"].(map[string]any)
		switch {
		case o.Options != nil && !hasSub:
			add("%s: suboptions not documented", p)
		case o.Options == nil && hasSub:
			add("%s: suboptions documented, none in the schema", p)
		case o.Options != nil:
			checkOptions(sub, o.Options, p+".", problems)
		}
	}
}

func nonEmpty(v any) bool {
	switch v := v.(type) {
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	}
	return false
}

func strOr(v any, def string) string {
	if s, ok := v.(string); ok {
		return s
	}
	return def
}

func boolOr(v any) bool {
	b, _ := v.(bool)
	return b
}

// canonical renders a default for comparison ("none" when absent).
func canonical(v any) string {
	if v == nil {
		return "none"
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}
