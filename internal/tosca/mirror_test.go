package tosca

import (
	"os"
	"slices"
	"strings"
	"testing"
)

const testSchema = `{
  "$ref": "#/$defs/Params",
  "$defs": {
    "Params": {
      "type": "object",
      "description": "Params is a request.",
      "required": ["name", "items"],
      "properties": {
        "name": {"type": "string", "description": "The name."},
        "version": {"type": "string", "default": "HEAD", "description": "A version."},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "description": "The items."},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "args": {"type": "object", "patternProperties": {"^[a-z]+$": {"type": "string"}}, "additionalProperties": false},
        "platforms": {"type": "array", "items": {"type": "string"}},
        "insecure": {"type": "boolean"},
        "ratio": {"type": "number"},
        "extra": {"$ref": "#/$defs/Item"}
      }
    },
    "Item": {
      "type": "object",
      "properties": {"id": {"type": "integer"}},
      "required": ["id"]
    }
  }
}`

const testTOSCA = `
data_types:
  t.Params:
    description: >-
      Params is
      a request.
    properties:
      name:
        type: string
        description: The name.
      version:
        type: string
        required: false
        default: HEAD
        description: A version.
      items:
        type: list
        entry_schema: {type: t.Item}
        description: The items.
      labels:
        type: map
        entry_schema: {type: string}
        required: false
      args:
        type: map
        entry_schema: {type: string}
        required: false
      platforms:
        type: list
        entry_schema: {type: string}
        required: false
      insecure:
        type: boolean
        required: false
      ratio:
        type: float
        required: false
      extra:
        type: t.Item
        required: false
        default: {}
  t.Item:
    properties:
      id:
        type: integer
`

func TestMirror(t *testing.T) {
	tests := []struct {
		name string
		edit func(d *Definitions)
		want []string // substrings of the messages, one per message
	}{
		{name: "agree", edit: func(*Definitions) {}},
		{
			name: "required flips",
			edit: func(d *Definitions) { setProp(d, "t.Params", "platforms", func(p *Property) { p.Required = nil }) },
			want: []string{"t.Params.platforms: required is true, the schema says false"},
		},
		{
			name: "optional required property",
			edit: func(d *Definitions) {
				setProp(d, "t.Params", "name", func(p *Property) { f := false; p.Required = &f })
			},
			want: []string{"t.Params.name: required is false, the schema says true"},
		},
		{
			name: "missing property",
			edit: func(d *Definitions) { delete(d.DataTypes["t.Params"].Properties, "insecure") },
			want: []string{"t.Params.insecure: missing"},
		},
		{
			name: "extra property",
			edit: func(d *Definitions) { d.DataTypes["t.Params"].Properties["cache"] = Property{Type: "string"} },
			want: []string{"t.Params.cache: not in the schema"},
		},
		{
			name: "wrong type",
			edit: func(d *Definitions) { setProp(d, "t.Params", "insecure", func(p *Property) { p.Type = "string" }) },
			want: []string{`t.Params.insecure: type is "string", the schema says "boolean"`},
		},
		{
			name: "wrong reference",
			edit: func(d *Definitions) { setProp(d, "t.Params", "extra", func(p *Property) { p.Type = "t.Other" }) },
			want: []string{`t.Params.extra: type is "t.Other", the schema says "t.Item"`},
		},
		{
			name: "wrong entry schema",
			edit: func(d *Definitions) {
				setProp(d, "t.Params", "items", func(p *Property) { p.EntrySchema = &EntrySchema{Type: "string"} })
			},
			want: []string{`t.Params.items: entry_schema type is "string", the schema says "t.Item"`},
		},
		{
			name: "missing entry schema",
			edit: func(d *Definitions) { setProp(d, "t.Params", "args", func(p *Property) { p.EntrySchema = nil }) },
			want: []string{`t.Params.args: entry_schema is missing, the schema says "string"`},
		},
		{
			name: "wrong default",
			edit: func(d *Definitions) { setProp(d, "t.Params", "version", func(p *Property) { p.Default = "main" }) },
			want: []string{`t.Params.version: default is "main", the schema says "HEAD"`},
		},
		{
			name: "default the schema lacks",
			edit: func(d *Definitions) { setProp(d, "t.Params", "insecure", func(p *Property) { p.Default = true }) },
			want: []string{"t.Params.insecure: default is true, the schema has none"},
		},
		{
			name: "a non-empty default the schema lacks",
			edit: func(d *Definitions) { setProp(d, "t.Params", "name", func(p *Property) { p.Default = "app" }) },
			want: []string{`t.Params.name: default is "app", the schema has none`},
		},
		{
			// An empty value is "not set": opera needs one for an optional input an operation reads.
			name: "empty defaults the schema lacks",
			edit: func(d *Definitions) {
				setProp(d, "t.Params", "name", func(p *Property) { p.Default = "" })
				setProp(d, "t.Params", "platforms", func(p *Property) { p.Default = []any{} })
				setProp(d, "t.Params", "args", func(p *Property) { p.Default = map[string]any{} })
			},
		},
		{
			name: "property description",
			edit: func(d *Definitions) { setProp(d, "t.Params", "name", func(p *Property) { p.Description = "A name." }) },
			want: []string{`t.Params.name: description is "A name.", the schema says "The name."`},
		},
		{
			name: "type description",
			edit: func(d *Definitions) {
				dt := d.DataTypes["t.Params"]
				dt.Description = "Other."
				d.DataTypes["t.Params"] = dt
			},
			want: []string{`t.Params: description is "Other."`},
		},
		{
			name: "missing data type",
			edit: func(d *Definitions) { delete(d.DataTypes, "t.Item") },
			want: []string{"t.Item: missing (it mirrors #/$defs/Item)"},
		},
	}
	s, err := ParseSchema([]byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	m := Mirror{Schema: s, TypeName: func(def string) string { return "t." + def }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse([]byte(testTOSCA))
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(d)
			got := m.DataTypes(d.DataTypes, s.Defs()...)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d disagreements, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("message %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func setProp(d *Definitions, typ, name string, edit func(*Property)) {
	p := d.DataTypes[typ].Properties[name]
	edit(&p)
	d.DataTypes[typ].Properties[name] = p
}

func TestMirrorUnsupportedSchemas(t *testing.T) {
	for name, schema := range map[string]string{
		"inline object": `{"$defs": {"P": {"type": "object", "properties": {"o": {"type": "object", "properties": {"a": {"type": "string"}}}}}}}`,
		"nested list":   `{"$defs": {"P": {"type": "object", "properties": {"o": {"type": "array", "items": {"type": "array"}}}}}}`,
		"mixed map":     `{"$defs": {"P": {"type": "object", "properties": {"o": {"type": "object", "patternProperties": {"a": {"type": "string"}, "b": {"type": "boolean"}}}}}}}`,
		"remote ref":    `{"$defs": {"P": {"type": "object", "properties": {"o": {"$ref": "other.json#/x"}}}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			s, err := ParseSchema([]byte(schema))
			if err != nil {
				t.Fatal(err)
			}
			m := Mirror{Schema: s, TypeName: func(def string) string { return def }}
			got := m.Properties("P", map[string]Property{"o": {Type: "map"}}, "P")
			if len(got) != 1 || !strings.HasPrefix(got[0], "P.o: ") {
				t.Errorf("got %q, want one message about P.o", got)
			}
		})
	}
	if _, err := ParseSchema([]byte(`{"type": "object"}`)); err == nil {
		t.Error("a schema without $defs parsed")
	}
	if got := (Mirror{Schema: mustSchema(t, `{"$defs": {"Other": {"type": "object"}}}`)}).Properties("x", nil, "Nope"); !slices.Equal(got, []string{"x: the schema has no #/$defs/Nope"}) {
		t.Errorf("unknown def: %q", got)
	}
}

func TestLoadRejectsDuplicates(t *testing.T) {
	dir := t.TempDir()
	a := dir + "/a.yaml"
	writeFile(t, a, "data_types:\n  x.T:\n    properties: {}\n")
	if _, err := Load(a, a); err == nil || !strings.Contains(err.Error(), "x.T is defined twice") {
		t.Errorf("Load(a, a) = %v, want a duplicate error", err)
	}
	d, err := Load(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.DataTypes["x.T"]; !ok {
		t.Errorf("Load(a) = %+v, want x.T", d)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSchema(t *testing.T, doc string) *Schema {
	t.Helper()
	s, err := ParseSchema([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
