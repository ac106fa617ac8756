// Package schema holds the JSON Schemas generated from the Go types (see internal/params) and
// committed, so that other tools can use them; the binaries embed them from here.
// A test in internal/params fails when a committed schema differs from what the types generate.
package schema

import _ "embed"

// BuildParams is the build-params schema (build-params.schema.json).
//
//go:embed build-params.schema.json
var BuildParams []byte

// Family is the family-file schema (family.schema.json), generated from internal/family.
//
//go:embed family.schema.json
var Family []byte

// OpenAPI is the build service's OpenAPI 3.1 document (openapi.json), generated from the
// handlers in internal/api; imagebuilder serve serves the same document at /openapi.json. A test
// in internal/api fails when it differs from what the handlers generate. It is generated here,
// after internal/params and internal/family regenerated the schemas it embeds.
//
//go:generate go run ../internal/api/genopenapi -o openapi.json
//go:embed openapi.json
var OpenAPI []byte
