package tosca

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/invopop/jsonschema"

	"github.com/imagebuilder/imagebuilder/internal/schemawalk"
)

// Schema is a JSON Schema document whose object schemas live under $defs (as
// github.com/invopop/jsonschema writes them), read through internal/schemawalk.
type Schema struct {
	doc *schemawalk.Doc
}

// ParseSchema reads a JSON Schema document.
func ParseSchema(data []byte) (*Schema, error) {
	doc, err := schemawalk.Parse(data)
	if err != nil {
		return nil, err
	}
	if len(doc.Defs()) == 0 {
		return nil, fmt.Errorf("reading the schema: no $defs")
	}
	return &Schema{doc: doc}, nil
}

// Defs lists the names of the schema's definitions, sorted.
func (s *Schema) Defs() []string { return s.doc.Defs() }

// Mirror checks TOSCA definitions against a JSON Schema: each TOSCA data type named by
// TypeName(def) must have the properties of the schema's object def, with the same types,
// required flags, defaults and descriptions.
type Mirror struct {
	Schema *Schema
	// TypeName is the TOSCA data type that mirrors the schema definition def.
	TypeName func(def string) string
}

// DataTypes checks the data types that mirror the given schema definitions and returns every
// disagreement, one message each.
func (m Mirror) DataTypes(types map[string]DataType, defs ...string) []string {
	var out []string
	for _, def := range defs {
		name := m.TypeName(def)
		dt, ok := types[name]
		if !ok {
			out = append(out, fmt.Sprintf("%s: missing (it mirrors #/$defs/%s)", name, def))
			continue
		}
		if js := m.Schema.doc.Def(def); js != nil && js.Description != "" && norm(dt.Description) != norm(js.Description) {
			out = append(out, fmt.Sprintf("%s: description is %q, the schema says %q", name, norm(dt.Description), js.Description))
		}
		out = append(out, m.Properties(name, dt.Properties, def)...)
	}
	return out
}

// Properties checks that props (a data type's or node type's properties, or a template's
// inputs; where names them in messages) mirror the properties of the schema object def, and
// returns every disagreement, one message each.
//
// Defaults must agree where the schema has one. A TOSCA default the schema does not have is a
// disagreement too, except an empty value (an empty map, list or string, or zero): TOSCA needs a
// value for an optional input or property that an operation reads (opera refuses "an unset
// value"), and an empty one there means "not set" (the playbook leaves it out).
func (m Mirror) Properties(where string, props map[string]Property, def string) []string {
	obj := m.Schema.doc.Def(def)
	if obj == nil {
		return []string{fmt.Sprintf("%s: the schema has no #/$defs/%s", where, def)}
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	schemaProps, err := m.Schema.doc.Properties(obj, nil)
	if err != nil {
		return []string{fmt.Sprintf("%s.%v", where, err)}
	}
	names := make([]string, len(schemaProps))
	byName := map[string]*schemawalk.Property{}
	for i, sp := range schemaProps {
		names[i], byName[sp.Name] = sp.Name, sp
	}
	sort.Strings(names)
	for _, name := range sortedKeys(props) {
		if byName[name] == nil {
			add("%s.%s: not in the schema (#/$defs/%s has %s)", where, name, def, strings.Join(names, ", "))
		}
	}
	for _, name := range names {
		sp := byName[name]
		js := sp.Schema
		at := where + "." + name
		p, ok := props[name]
		if !ok {
			add("%s: missing (#/$defs/%s/properties/%s)", at, def, name)
			continue
		}
		typ, entry, err := m.toscaType(js, sp.Def)
		if err != nil {
			add("%s: %v", at, err)
			continue
		}
		if p.Type != typ {
			add("%s: type is %q, the schema says %q", at, p.Type, typ)
		}
		switch {
		case entry == "":
		case p.EntrySchema == nil:
			add("%s: entry_schema is missing, the schema says %q", at, entry)
		case p.EntrySchema.Type != entry:
			add("%s: entry_schema type is %q, the schema says %q", at, p.EntrySchema.Type, entry)
		}
		if p.IsRequired() != sp.Required {
			add("%s: required is %t, the schema says %t", at, p.IsRequired(), sp.Required)
		}
		switch {
		case js.Default != nil && !reflect.DeepEqual(p.Default, js.Default):
			add("%s: default is %v, the schema says %v", at, show(p.Default), show(js.Default))
		case js.Default == nil && p.Default != nil && !isEmpty(p.Default):
			add("%s: default is %v, the schema has none", at, show(p.Default))
		}
		if desc := sp.Schema.Description; desc != "" && norm(p.Description) != desc {
			add("%s: description is %q, the schema says %q", at, norm(p.Description), desc)
		}
	}
	return out
}

// toscaType is the TOSCA type (and entry_schema type, for lists and maps) of a JSON Schema
// ($ref resolved; def is the definition it came from, "" for an inline schema).
func (m Mirror) toscaType(js *jsonschema.Schema, def string) (typ, entry string, err error) {
	if def != "" {
		return m.TypeName(def), "", nil
	}
	switch js.Type {
	case "string", "boolean", "integer":
		return js.Type, "", nil
	case "number":
		return "float", "", nil
	case "array":
		if js.Items == nil {
			return "list", "", nil
		}
		e, sub, err := m.resolvedType(js.Items)
		if err != nil {
			return "", "", err
		}
		if nested(e, sub) {
			return "", "", fmt.Errorf("nested lists and maps have no TOSCA entry_schema")
		}
		return "list", e, nil
	case "object":
		if js.Properties != nil && js.Properties.Len() > 0 {
			return "", "", fmt.Errorf("inline object schema: give it a $defs entry and a data type")
		}
		values := schemawalk.ValueSchemas(js)
		if len(values) == 0 {
			return "map", "", nil
		}
		var entry string
		for i, v := range values {
			e, sub, err := m.resolvedType(v)
			if err != nil {
				return "", "", err
			}
			if nested(e, sub) {
				return "", "", fmt.Errorf("nested lists and maps have no TOSCA entry_schema")
			}
			if i > 0 && e != entry {
				return "", "", fmt.Errorf("map values of several types (%s, %s)", entry, e)
			}
			entry = e
		}
		return "map", entry, nil
	}
	return "", "", fmt.Errorf("unsupported schema type %q", js.Type)
}

func (m Mirror) resolvedType(s *jsonschema.Schema) (typ, entry string, err error) {
	r, def, err := m.Schema.doc.Resolve(s)
	if err != nil {
		return "", "", err
	}
	return m.toscaType(r, def)
}

// nested reports whether an entry type is itself a list or a map, which one entry_schema cannot
// describe.
func nested(typ, entry string) bool { return entry != "" || typ == "list" || typ == "map" }

// norm is a TOSCA description as one line (YAML block scalars may keep a final newline).
func norm(s string) string { return strings.Join(strings.Fields(s), " ") }

// isEmpty reports an empty map, list or string, or zero: "not set" for an optional input.
func isEmpty(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	case string:
		return v == ""
	case float64:
		return v == 0
	case int:
		return v == 0
	}
	return false
}

func show(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}
