package schemawalk

import (
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/schema"
)

const doc = `{
  "$ref": "#/$defs/P",
  "$defs": {
    "P": {"type": "object", "required": ["items"], "properties": {
      "name": {"type": "string", "default": "x", "description": "The name."},
      "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
      "one": {"$ref": "#/$defs/Item", "description": "Said by the property."},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}},
      "args": {"type": "object", "patternProperties": {"^a": {"type": "integer"}}, "additionalProperties": false},
      "secret": {"type": "string", "writeOnly": true},
      "byid": {"type": "object", "patternProperties": {"^[a-z]+$": {"$ref": "#/$defs/Item"}}, "additionalProperties": false}
    }},
    "Item": {"type": "object", "description": "Said by the type.", "properties": {"id": {"type": "integer"}}, "required": ["id"]}
  }
}`

func TestWalk(t *testing.T) {
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	byPath := map[string]*Property{}
	if err := d.Walk(func(p *Property) bool {
		got = append(got, p.Path)
		byPath[p.Path] = p
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if want := "name items items[].id one one.id labels args secret byid byid.<id>.id"; strings.Join(got, " ") != want {
		t.Fatalf("walk order %q, want %q", strings.Join(got, " "), want)
	}
	for path, want := range map[string]Kind{"name": Scalar, "items": List, "one": Object, "labels": Map, "args": Map, "byid": Map} {
		if byPath[path].Kind != want {
			t.Errorf("%s: kind %v, want %v", path, byPath[path].Kind, want)
		}
	}
	if p := byPath["items"]; !p.Required || p.ElemDef != "Item" || p.Elem.Type != "object" {
		t.Errorf("items: %+v", p)
	}
	if p := byPath["items[].id"]; !p.Required || p.Parent != byPath["items"] {
		t.Errorf("items[].id: %+v", p)
	}
	if p := byPath["one"]; p.Def != "Item" || p.Schema.Description != "Said by the property." {
		t.Errorf("one: the property's description must win over the type's: %+v", p.Schema)
	}
	if p := byPath["byid.<id>.id"]; p == nil || p.Parent != byPath["byid"] || byPath["byid"].ElemDef != "Item" {
		t.Errorf("map of objects: %+v", p)
	}
	if byPath["labels"].Elem.Type != "string" || byPath["args"].Elem.Type != "integer" {
		t.Errorf("map values: labels %v, args %v", byPath["labels"].Elem, byPath["args"].Elem)
	}
	if !byPath["secret"].Schema.WriteOnly || byPath["name"].Schema.Default != "x" {
		t.Error("writeOnly or default lost")
	}
	// visit returning false prunes.
	var n int
	_ = d.Walk(func(p *Property) bool { n++; return p.Name != "items" && p.Name != "one" })
	if n != 8 {
		t.Errorf("pruned walk visited %d properties, want 8", n)
	}
}

func TestErrors(t *testing.T) {
	for _, tt := range []struct{ schema, want string }{
		{`[]`, "reading the schema"},
		{`{"type": "string"}`, "not an object"},
		{`{"$ref": "http://example.com/x.json"}`, "only local"},
		{`{"$ref": "#/$defs/Nope"}`, "does not resolve"},
		{`{"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"$ref": "#/$defs/A"}}}`, "too many nested $ref"},
	} {
		d, err := Parse([]byte(tt.schema))
		if err == nil {
			err = d.Walk(func(*Property) bool { return true })
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.schema, err, tt.want)
		}
	}
}

// TestBuildParams: every property of the real schema is reached, with a description.
func TestBuildParams(t *testing.T) {
	d, err := Parse(schema.BuildParams)
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	if err := d.Walk(func(p *Property) bool {
		paths[p.Path] = true
		if p.Schema.Description == "" {
			t.Errorf("%s: no description", p.Path)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"source.git_repo.password", "target.images[].platforms", "target.registry.url", "builder.tls.ca_cert"} {
		if !paths[p] {
			t.Errorf("%s not reached", p)
		}
	}
}
