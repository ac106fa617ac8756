// Package schemawalk is the one walk over a JSON Schema document as
// github.com/invopop/jsonschema writes it (object schemas under $defs, reached through local
// $ref). Everything that reads the build-params schema for another purpose — the README's params
// reference, the validator's spelling hints, the Ansible argument spec and module documentation,
// the TOSCA data-type mirror — reads it through here, so $ref resolution, property order,
// required flags and the shapes of lists and maps are decided once.
package schemawalk

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/invopop/jsonschema"
)

// Kind is the shape of a property's value.
type Kind int

// Kinds.
const (
	Scalar Kind = iota // string, boolean, integer, number (or untyped)
	Object             // an object with properties of its own
	List               // an array; Elem is the schema of its items
	Map                // an object without properties: free keys; Elem is the schema of its values
)

// MapKey stands for the free key of a map in a Property's Path.
const MapKey = "<id>"

// Doc is a parsed schema document.
type Doc struct {
	root *jsonschema.Schema
}

// Parse reads a schema document.
func Parse(data []byte) (*Doc, error) {
	var root jsonschema.Schema
	if err := root.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("reading the schema: %w", err)
	}
	return &Doc{root: &root}, nil
}

// Root is the root schema, $ref resolved; it must be an object schema.
func (d *Doc) Root() (*jsonschema.Schema, error) {
	r, _, err := d.Resolve(d.root)
	if err != nil {
		return nil, err
	}
	if r.Type != "object" {
		return nil, fmt.Errorf("the schema's root is %q, not an object", r.Type)
	}
	return r, nil
}

// Defs lists the names of the document's $defs, sorted.
func (d *Doc) Defs() []string {
	names := make([]string, 0, len(d.root.Definitions))
	for n := range d.root.Definitions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Def is the $defs entry name, or nil.
func (d *Doc) Def(name string) *jsonschema.Schema { return d.root.Definitions[name] }

// Resolve follows $ref (only local #/$defs/NAME references) and returns the schema it leads to
// with the referring schema's description, default and writeOnly winning over the target's,
// and the name of the last definition reached ("" when s has no $ref).
func (d *Doc) Resolve(s *jsonschema.Schema) (*jsonschema.Schema, string, error) {
	def := ""
	for range 32 {
		if s == nil || s.Ref == "" {
			return s, def, nil
		}
		name, ok := strings.CutPrefix(s.Ref, "#/$defs/")
		if !ok {
			return nil, "", fmt.Errorf("$ref %q: only local #/$defs/ references are supported", s.Ref)
		}
		target := d.root.Definitions[name]
		if target == nil {
			return nil, "", fmt.Errorf("$ref %q does not resolve", s.Ref)
		}
		merged := *target
		if s.Description != "" {
			merged.Description = s.Description
		}
		if s.Default != nil {
			merged.Default = s.Default
		}
		merged.WriteOnly = merged.WriteOnly || s.WriteOnly
		s, def = &merged, name
	}
	return nil, "", fmt.Errorf("too many nested $ref")
}

// Property is one property of an object schema, as the walk reaches it.
type Property struct {
	Name     string
	Path     string             // dotted from the root; list items add "[]", map values ".<id>": target.images[].tag, secrets.<id>.env
	Parent   *Property          // nil at the top level
	Schema   *jsonschema.Schema // the property's schema, $ref resolved
	Def      string             // the $defs name the schema came from ("" when inline)
	Required bool               // listed in the parent object's required
	Kind     Kind
	// Elem is the schema of a list's items or of a map's values ($ref resolved; nil when any
	// value goes), and ElemDef the $defs name it came from.
	Elem    *jsonschema.Schema
	ElemDef string
}

// ItemPath is the path of the object whose properties are p's children: p's own path, with
// "[]" for a list's items or ".<id>" for a map's values. A nil p is the root, "".
func (p *Property) ItemPath() string {
	if p == nil {
		return ""
	}
	switch p.Kind {
	case List:
		return p.Path + "[]"
	case Map:
		return p.Path + "." + MapKey
	}
	return p.Path
}

// Properties lists the properties of an object schema in document order; parent is the
// object's own Property (nil at the root), from which the paths are made.
func (d *Doc) Properties(obj *jsonschema.Schema, parent *Property) ([]*Property, error) {
	obj, _, err := d.Resolve(obj)
	if err != nil {
		return nil, err
	}
	if obj == nil || obj.Properties == nil {
		return nil, nil
	}
	prefix := ""
	if parent != nil {
		prefix = parent.ItemPath() + "."
	}
	var out []*Property
	for pair := obj.Properties.Oldest(); pair != nil; pair = pair.Next() {
		p := &Property{Name: pair.Key, Path: prefix + pair.Key, Parent: parent, Required: slices.Contains(obj.Required, pair.Key)}
		if p.Schema, p.Def, err = d.Resolve(pair.Value); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Path, err)
		}
		s := p.Schema
		switch {
		case s.Type == "array":
			p.Kind = List
			if p.Elem, p.ElemDef, err = d.Resolve(s.Items); err != nil {
				return nil, fmt.Errorf("%s[]: %w", p.Path, err)
			}
		case s.Type == "object" && s.Properties == nil:
			p.Kind = Map
			if p.Elem, p.ElemDef, err = d.valueSchema(s); err != nil {
				return nil, fmt.Errorf("%s: %w", p.Path, err)
			}
		case s.Type == "object":
			p.Kind = Object
		}
		out = append(out, p)
	}
	return out, nil
}

// valueSchema is the schema of a map's values ($ref resolved): the first of ValueSchemas, nil
// when any value goes.
func (d *Doc) valueSchema(s *jsonschema.Schema) (*jsonschema.Schema, string, error) {
	values := ValueSchemas(s)
	if len(values) == 0 {
		return nil, "", nil
	}
	return d.Resolve(values[0])
}

// ValueSchemas are the schemas a map's values must match, as written (not resolved):
// additionalProperties when it is a schema (not a boolean), and each patternProperties schema,
// by pattern.
func ValueSchemas(s *jsonschema.Schema) []*jsonschema.Schema {
	var out []*jsonschema.Schema
	if ap := s.AdditionalProperties; ap != nil && !IsFalse(ap) && !reflect.DeepEqual(ap, jsonschema.TrueSchema) {
		out = append(out, ap)
	}
	patterns := make([]string, 0, len(s.PatternProperties))
	for p := range s.PatternProperties {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)
	for _, p := range patterns {
		out = append(out, s.PatternProperties[p])
	}
	return out
}

// IsFalse reports whether s is the boolean schema false.
func IsFalse(s *jsonschema.Schema) bool { return reflect.DeepEqual(s, jsonschema.FalseSchema) }

// Walk visits every property reachable from the root, depth first in document order: the
// properties of objects, and of the objects in lists and maps (their Parent is the list or map).
// visit returning false skips the property's children.
func (d *Doc) Walk(visit func(p *Property) bool) error {
	root, err := d.Root()
	if err != nil {
		return err
	}
	return d.walk(root, nil, visit)
}

func (d *Doc) walk(obj *jsonschema.Schema, parent *Property, visit func(p *Property) bool) error {
	props, err := d.Properties(obj, parent)
	if err != nil {
		return err
	}
	for _, p := range props {
		if !visit(p) {
			continue
		}
		var next *jsonschema.Schema
		switch {
		case p.Kind == Object:
			next = p.Schema
		case (p.Kind == List || p.Kind == Map) && p.Elem != nil && p.Elem.Type == "object" && p.Elem.Properties != nil:
			next = p.Elem
		}
		if next != nil {
			if err := d.walk(next, p, visit); err != nil {
				return err
			}
		}
	}
	return nil
}
