package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/imagebuilder/imagebuilder/schema"
)

// Component names of the documents' root schemas.
const (
	buildParamsName = "BuildParams"
	familyName      = "Family"
)

func schemaRef(name string) string { return "#/components/schemas/" + name }

// documentSchemas are the JSON Schemas of the documents the service runs, as committed in
// schema/ (the same ones the service validates with). Their $defs become components of the
// OpenAPI document; renames give a definition a clearer name there.
var documentSchemas = []struct {
	data    []byte
	renames map[string]string
}{
	{schema.BuildParams, nil},
	{schema.Family, map[string]string{"File": familyName}},
}

// addDocumentSchemas registers the build-params and family schemas' definitions as components
// (BuildParams and Family are their roots). A definition both schemas hold must be the same in
// both: it is registered once.
func addDocumentSchemas(r huma.Registry) {
	for _, ds := range documentSchemas {
		var doc struct {
			Defs map[string]any `json:"$defs"`
		}
		if err := json.Unmarshal(ds.data, &doc); err != nil {
			panic(fmt.Sprintf("decoding an embedded schema: %v", err))
		}
		rename := func(name string) string {
			if n, ok := ds.renames[name]; ok {
				return n
			}
			return name
		}
		for name, def := range doc.Defs {
			def = rewriteRefs(def, rename)
			name = rename(name)
			if old, ok := r.Map()[name]; ok {
				if !reflect.DeepEqual(old.Extensions, def) {
					panic(fmt.Sprintf("schema definition %s differs between the build-params and family schemas", name))
				}
				continue
			}
			// huma.Schema does not model every JSON Schema keyword the documents use
			// (patternProperties, not, ...): the definition goes out as it is, through
			// Extensions, which huma writes inline.
			r.Map()[name] = &huma.Schema{Extensions: def.(map[string]any)}
		}
	}
}

// rewriteRefs points "#/$defs/NAME" references at the OpenAPI components.
func rewriteRefs(v any, rename func(string) string) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if s, ok := e.(string); ok && k == "$ref" && strings.HasPrefix(s, "#/$defs/") {
				out[k] = schemaRef(rename(strings.TrimPrefix(s, "#/$defs/")))
				continue
			}
			out[k] = rewriteRefs(e, rename)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = rewriteRefs(e, rename)
		}
		return out
	}
	return v
}
