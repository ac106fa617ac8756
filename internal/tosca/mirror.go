package tosca

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Schema is a JSON Schema document whose object schemas live under $defs (as
// github.com/invopop/jsonschema writes them).
type Schema struct {
	defs map[string]*jsonSchema
}

type jsonSchema struct {
	Ref                  string                 `json:"$ref"`
	Type                 string                 `json:"type"`
	Description          string                 `json:"description"`
	Default              any                    `json:"default"`
	Required             []string               `json:"required"`
	Properties           map[string]*jsonSchema `json:"properties"`
	Items                *jsonSchema            `json:"items"`
	AdditionalProperties json.RawMessage        `json:"additionalProperties"`
	PatternProperties    map[string]*jsonSchema `json:"patternProperties"`
	Defs                 map[string]*jsonSchema `json:"$defs"`
}

// ParseSchema reads a JSON Schema document.
func ParseSchema(data []byte) (*Schema, error) {
	var root jsonSchema
	if err := json.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("reading the schema: %w", err)
	}
	if len(root.Defs) == 0 {
		return nil, fmt.Errorf("reading the schema: no $defs")
	}
	return &Schema{defs: root.Defs}, nil
}

// Defs lists the names of the schema's definitions, sorted.
func (s *Schema) Defs() []string { return sortedKeys(s.defs) }

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
		if js := m.Schema.defs[def]; js != nil && js.Description != "" && norm(dt.Description) != norm(js.Description) {
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
// disagreement too, except an empty map or list: TOSCA needs a value for an optional complex input or
// property, and {} there means "not set" (the playbook leaves it out).
func (m Mirror) Properties(where string, props map[string]Property, def string) []string {
	obj := m.Schema.defs[def]
	if obj == nil {
		return []string{fmt.Sprintf("%s: the schema has no #/$defs/%s", where, def)}
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, name := range sortedKeys(props) {
		if obj.Properties[name] == nil {
			add("%s.%s: not in the schema (#/$defs/%s has %s)", where, name, def, strings.Join(sortedKeys(obj.Properties), ", "))
		}
	}
	for _, name := range sortedKeys(obj.Properties) {
		js := obj.Properties[name]
		at := where + "." + name
		p, ok := props[name]
		if !ok {
			add("%s: missing (#/$defs/%s/properties/%s)", at, def, name)
			continue
		}
		typ, entry, err := m.toscaType(js)
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
		if want := slices.Contains(obj.Required, name); p.IsRequired() != want {
			add("%s: required is %t, the schema says %t", at, p.IsRequired(), want)
		}
		switch {
		case js.Default != nil && !reflect.DeepEqual(p.Default, js.Default):
			add("%s: default is %v, the schema says %v", at, show(p.Default), show(js.Default))
		case js.Default == nil && p.Default != nil && !isEmptyMap(p.Default):
			add("%s: default is %v, the schema has none", at, show(p.Default))
		}
		if js.Description != "" && norm(p.Description) != js.Description {
			add("%s: description is %q, the schema says %q", at, norm(p.Description), js.Description)
		}
	}
	return out
}

// toscaType is the TOSCA type (and entry_schema type, for lists and maps) of a JSON Schema.
func (m Mirror) toscaType(js *jsonSchema) (typ, entry string, err error) {
	if js.Ref != "" {
		def, ok := strings.CutPrefix(js.Ref, "#/$defs/")
		if !ok {
			return "", "", fmt.Errorf("unsupported $ref %q", js.Ref)
		}
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
		e, sub, err := m.toscaType(js.Items)
		if err != nil {
			return "", "", err
		}
		if nested(e, sub) {
			return "", "", fmt.Errorf("nested lists and maps have no TOSCA entry_schema")
		}
		return "list", e, nil
	case "object":
		if len(js.Properties) > 0 {
			return "", "", fmt.Errorf("inline object schema: give it a $defs entry and a data type")
		}
		values := js.valueSchemas()
		if len(values) == 0 {
			return "map", "", nil
		}
		var entry string
		for i, v := range values {
			e, sub, err := m.toscaType(v)
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

// nested reports whether an entry type is itself a list or a map, which one entry_schema cannot
// describe.
func nested(typ, entry string) bool { return entry != "" || typ == "list" || typ == "map" }

// valueSchemas are the schemas of a map's values: additionalProperties (when a schema) and
// every patternProperties schema.
func (js *jsonSchema) valueSchemas() []*jsonSchema {
	var out []*jsonSchema
	var ap jsonSchema
	if len(js.AdditionalProperties) > 0 && js.AdditionalProperties[0] == '{' && json.Unmarshal(js.AdditionalProperties, &ap) == nil {
		out = append(out, &ap)
	}
	for _, k := range sortedKeys(js.PatternProperties) {
		out = append(out, js.PatternProperties[k])
	}
	return out
}

// norm is a TOSCA description as one line (YAML block scalars may keep a final newline).
func norm(s string) string { return strings.Join(strings.Fields(s), " ") }

// isEmptyMap reports an empty map or list: "not set" for an optional complex input.
func isEmptyMap(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
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
