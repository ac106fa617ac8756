// Package tosca reads the parts of TOSCA Simple YAML 1.3 definitions that imagebuilder's
// templates use (tosca/), and checks that TOSCA property definitions mirror a JSON Schema, so
// that the TOSCA data types cannot drift from the build-params schema generated from the Go
// types (SODALITE's did: platforms required in its TOSCA types, optional in its API).
package tosca

import (
	"fmt"
	"os"
	"sort"

	"sigs.k8s.io/yaml"
)

// Definitions is a TOSCA service template or definitions file, reduced to what is checked.
type Definitions struct {
	DataTypes        map[string]DataType `json:"data_types,omitempty"`
	NodeTypes        map[string]NodeType `json:"node_types,omitempty"`
	TopologyTemplate *TopologyTemplate   `json:"topology_template,omitempty"`
}

// DataType is a TOSCA data type definition.
type DataType struct {
	DerivedFrom string              `json:"derived_from,omitempty"`
	Description string              `json:"description,omitempty"`
	Properties  map[string]Property `json:"properties,omitempty"`
}

// NodeType is a TOSCA node type definition.
type NodeType struct {
	DerivedFrom string              `json:"derived_from,omitempty"`
	Description string              `json:"description,omitempty"`
	Properties  map[string]Property `json:"properties,omitempty"`
	Attributes  map[string]Property `json:"attributes,omitempty"`
	// Requirements is TOSCA's list of one-entry maps, name -> definition (the extended
	// notation; the short one, a bare capability type, is not read).
	Requirements []map[string]Requirement `json:"requirements,omitempty"`
}

// Requirement is a requirement definition of a node type.
type Requirement struct {
	Capability   string `json:"capability,omitempty"`
	Node         string `json:"node,omitempty"`
	Relationship string `json:"relationship,omitempty"`
	// Occurrences is [min, max]; max may be the string UNBOUNDED.
	Occurrences []any `json:"occurrences,omitempty"`
}

// Requirement returns the node type's requirement definition called name.
func (t NodeType) Requirement(name string) (Requirement, bool) {
	for _, r := range t.Requirements {
		if d, ok := r[name]; ok {
			return d, true
		}
	}
	return Requirement{}, false
}

// TopologyTemplate is a service template's topology.
type TopologyTemplate struct {
	Inputs  map[string]Property `json:"inputs,omitempty"`
	Outputs map[string]Output   `json:"outputs,omitempty"`
}

// Output is a topology output.
type Output struct {
	Description string `json:"description,omitempty"`
	Value       any    `json:"value,omitempty"`
}

// Property is a property, attribute or parameter (input) definition.
type Property struct {
	Type        string       `json:"type"`
	Description string       `json:"description,omitempty"`
	Required    *bool        `json:"required,omitempty"`
	Default     any          `json:"default,omitempty"`
	EntrySchema *EntrySchema `json:"entry_schema,omitempty"`
}

// IsRequired reports whether the property is required; TOSCA's default is true.
func (p Property) IsRequired() bool { return p.Required == nil || *p.Required }

// EntrySchema is the schema of the entries of a list or map.
type EntrySchema struct {
	Type string `json:"type"`
}

// Parse reads one TOSCA YAML document.
func Parse(data []byte) (*Definitions, error) {
	var d Definitions
	if err := yaml.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Load reads TOSCA YAML files and merges their data and node types (a name defined twice is an
// error). The topology template is the last one found.
func Load(files ...string) (*Definitions, error) {
	out := &Definitions{DataTypes: map[string]DataType{}, NodeTypes: map[string]NodeType{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		d, err := Parse(data)
		if err != nil {
			return nil, fmt.Errorf("reading %q: %w", f, err)
		}
		for name, t := range d.DataTypes {
			if _, dup := out.DataTypes[name]; dup {
				return nil, fmt.Errorf("reading %q: data type %s is defined twice", f, name)
			}
			out.DataTypes[name] = t
		}
		for name, t := range d.NodeTypes {
			if _, dup := out.NodeTypes[name]; dup {
				return nil, fmt.Errorf("reading %q: node type %s is defined twice", f, name)
			}
			out.NodeTypes[name] = t
		}
		if d.TopologyTemplate != nil {
			out.TopologyTemplate = d.TopologyTemplate
		}
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
