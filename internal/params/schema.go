package params

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/invopop/jsonschema"
)

// SchemaID is the $id of the build-params schema.
const SchemaID = "https://github.com/imagebuilder/imagebuilder/schema/build-params.schema.json"

// Patterns the schema enforces. They follow the OCI distribution / Docker reference grammar.
const (
	// PatternRepository is a lowercase repository path (path components separated by "/").
	PatternRepository = `^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`
	// PatternTag is a tag.
	PatternTag = `^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`
	// PatternPlatform is os/arch[/variant].
	PatternPlatform = `^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9.]+)?$`
	// PatternRegistry is host[:port] with an optional namespace path.
	PatternRegistry = `^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*/?$`
	// PatternHTTPURL is an http or https URL.
	PatternHTTPURL = `^https?://[^\s]+$`
	// PatternArgName is a build argument name.
	PatternArgName = `^[A-Za-z_][A-Za-z0-9_]*$`
	// PatternSecretID is a build secret id.
	PatternSecretID = `^[A-Za-z0-9_.-]+$`
	// PatternSSH is an ssh forward: ID or ID=PATH[,PATH...].
	PatternSSH = `^[A-Za-z0-9_.-]+(=[^,]+(,[^,]+)*)?$`
)

// JSONSchemaExtend adds the source rules: exactly one of git_repo, dockerfile, tar, local;
// build_context only with dockerfile.
func (Source) JSONSchemaExtend(s *jsonschema.Schema) {
	for _, k := range sourceKinds {
		s.OneOf = append(s.OneOf, &jsonschema.Schema{Required: []string{k.property}})
	}
	s.DependentRequired = map[string][]string{"build_context": {"dockerfile"}}
}

// JSONSchemaExtend requires exactly one of path or url, and credentials only with url.
func (Tar) JSONSchemaExtend(s *jsonschema.Schema) {
	s.OneOf = []*jsonschema.Schema{{Required: []string{"path"}}, {Required: []string{"url"}}}
	s.DependentRequired = map[string][]string{"username": {"url"}, "password": {"url"}}
	prop(s, "url").Pattern = PatternHTTPURL
	prop(s, "path").MinLength = ptr(1)
}

// JSONSchemaExtend constrains the git URL.
func (GitRepo) JSONSchemaExtend(s *jsonschema.Schema) {
	prop(s, "url").MinLength = ptr(1)
	prop(s, "version").MinLength = ptr(1)
}

// JSONSchemaExtend constrains the git URL.
func (BuildContext) JSONSchemaExtend(s *jsonschema.Schema) {
	prop(s, "url").MinLength = ptr(1)
	prop(s, "version").MinLength = ptr(1)
}

// JSONSchemaExtend constrains the Dockerfile URL.
func (DockerfileURL) JSONSchemaExtend(s *jsonschema.Schema) {
	prop(s, "url").Pattern = PatternHTTPURL
}

// JSONSchemaExtend constrains the local path.
func (Local) JSONSchemaExtend(s *jsonschema.Schema) {
	prop(s, "path").MinLength = ptr(1)
}

// JSONSchemaExtend requires at least one image.
func (Target) JSONSchemaExtend(s *jsonschema.Schema) {
	prop(s, "images").MinItems = ptr(1)
}

// JSONSchemaExtend adds the reference grammar to image fields.
func (Image) JSONSchemaExtend(s *jsonschema.Schema) {
	prop(s, "image").Pattern = PatternRepository
	prop(s, "image").MaxLength = ptr(255)
	prop(s, "tag").Pattern = PatternTag
	prop(s, "base").MinLength = ptr(1)
	prop(s, "bases").AdditionalProperties = &jsonschema.Schema{Type: "string", MinLength: ptr(1)}
	p := prop(s, "platforms")
	p.Items.Pattern = PatternPlatform
	p.UniqueItems = true
	prop(s, "tags").Items.Pattern = PatternTag
	// Not propertyNames: santhosh-tekuri/jsonschema v6.0.3 reports its errors at a wrong location.
	ba := prop(s, "build_args")
	ba.PatternProperties = map[string]*jsonschema.Schema{PatternArgName: {Type: "string"}}
	ba.AdditionalProperties = jsonschema.FalseSchema
	SecretsSchema(prop(s, "secrets"))
	SSHSchema(prop(s, "ssh"))
}

// JSONSchemaExtend constrains the request-wide secrets and ssh forwards like an image's.
func (BuildParams) JSONSchemaExtend(s *jsonschema.Schema) {
	SecretsSchema(prop(s, "secrets"))
	SSHSchema(prop(s, "ssh"))
}

// SecretsSchema keys a secrets map by secret id (patternProperties, not propertyNames: see
// build_args).
func SecretsSchema(p *jsonschema.Schema) {
	p.PatternProperties = map[string]*jsonschema.Schema{PatternSecretID: p.AdditionalProperties}
	p.AdditionalProperties = jsonschema.FalseSchema
}

// SSHSchema constrains a list of ssh forwards.
func SSHSchema(p *jsonschema.Schema) {
	p.Items.Pattern = PatternSSH
}

// JSONSchemaExtend requires exactly one of env, file or value.
func (Secret) JSONSchemaExtend(s *jsonschema.Schema) {
	for _, k := range secretSources {
		s.OneOf = append(s.OneOf, &jsonschema.Schema{Required: []string{k}})
	}
	prop(s, "env").Pattern = PatternArgName
}

// JSONSchemaExtend constrains the registry address; username and password go together.
func (Registry) JSONSchemaExtend(s *jsonschema.Schema) {
	prop(s, "url").Pattern = PatternRegistry
	prop(s, "repositories").MinItems = ptr(1)
	s.DependentRequired = map[string][]string{"username": {"password"}, "password": {"username"}}
}

// JSONSchemaExtend: one endpoint or a pool, not both.
func (Builder) JSONSchemaExtend(s *jsonschema.Schema) {
	prop(s, "endpoints").MinItems = ptr(1)
	s.Not = &jsonschema.Schema{Required: []string{"endpoint", "endpoints"}}
}

// JSONSchemaExtend constrains a pool endpoint's platforms like an image's.
func (PoolEndpoint) JSONSchemaExtend(s *jsonschema.Schema) {
	p := prop(s, "platforms")
	p.Items.Pattern = PatternPlatform
	p.UniqueItems = true
}

// Prop is the schema of an object schema's property; it panics when there is none (a
// programming error, caught by the schema tests).
func Prop(s *jsonschema.Schema, name string) *jsonschema.Schema { return prop(s, name) }

func prop(s *jsonschema.Schema, name string) *jsonschema.Schema {
	p, ok := s.Properties.Get(name)
	if !ok {
		panic(fmt.Sprintf("schema has no property %q", name)) // a programming error, caught by tests
	}
	return p
}

func ptr(v uint64) *uint64 { return &v }

// GenerateSchema reflects the build-params schema from the Go types. srcDir is the directory of
// this package's sources, from which field comments become descriptions.
func GenerateSchema(srcDir string) ([]byte, error) {
	return Reflect(ReflectOptions{
		Root:     reflect.TypeOf(BuildParams{}),
		ID:       SchemaID,
		Title:    "imagebuilder build parameters",
		Comments: map[string]string{"github.com/imagebuilder/imagebuilder/internal/params": srcDir},
		Description: "One build request: source, target images and registry, builder. " +
			"Compatible with SODALITE image-builder's build params.",
	})
}

// ReflectOptions say what Reflect generates.
type ReflectOptions struct {
	Root                   reflect.Type
	ID, Title, Description string
	// Comments maps Go package paths to their source directories, from which field comments
	// become descriptions (every package whose types the schema holds).
	Comments map[string]string
}

// Reflect generates a JSON Schema from Go types the way the build-params schema is made (one
// $defs entry per struct, wrapped comments joined, strings that are given are not empty), for
// every document kind whose types reuse the params' (family files).
func Reflect(o ReflectOptions) ([]byte, error) {
	r := &jsonschema.Reflector{
		BaseSchemaID: "",
		Anonymous:    true,
	}
	for _, pkg := range slices.Sorted(maps.Keys(o.Comments)) {
		if err := r.AddGoComments(pkg, o.Comments[pkg]); err != nil {
			return nil, fmt.Errorf("reading field comments from %q: %w", o.Comments[pkg], err)
		}
	}
	s := r.ReflectFromType(o.Root)
	unwrapDescriptions(s)
	for _, d := range s.Definitions {
		nonEmptyStrings(d)
	}
	s.ID = jsonschema.ID(o.ID)
	s.Title = o.Title
	s.Description = o.Description
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encoding schema: %w", err)
	}
	return buf.Bytes(), nil
}

// unwrapDescriptions joins the line breaks that come from wrapped Go comments.
func unwrapDescriptions(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	s.Description = strings.Join(strings.Fields(s.Description), " ")
	for _, d := range s.Definitions {
		unwrapDescriptions(d)
	}
	if s.Properties != nil {
		for p := s.Properties.Oldest(); p != nil; p = p.Next() {
			unwrapDescriptions(p.Value)
		}
	}
	unwrapDescriptions(s.Items)
	unwrapDescriptions(s.AdditionalProperties)
}

// nonEmptyStrings gives every string property minLength 1: a field that is given is not empty
// (an empty username would otherwise satisfy "username needs password" and then vanish on
// decoding, where "" and absent are the same).
func nonEmptyStrings(s *jsonschema.Schema) {
	if s.Properties == nil {
		return
	}
	for p := s.Properties.Oldest(); p != nil; p = p.Next() {
		if p.Value.Type == "string" && p.Value.MinLength == nil {
			p.Value.MinLength = ptr(1)
		}
	}
}
