// Package family defines the family file: one document that lists a family of images built
// from one or more sources, FROM each other (Kolla, CORD, Zuul's docker_images). The Go types
// here are the single source of schema/family.schema.json (go generate); a file is validated
// against it, with errors located by JSON pointer, exactly as build params are (package
// schemacheck does both), and decoded into these types.
//
// Load reads a file; File.Expand applies what the file says globally (registry, namespace,
// tags, platforms, variables, proxy build args, secrets) to every image, discovers the images
// under images_dir, drops disabled images and names inline sources: the result, a Family, is
// what the engine plans and builds. Family.Prepare materializes one image's build inputs (its
// context, with components copied in, and its Dockerfile, rendered and wrapped in the header
// and footer) from the fetched sources.
package family

import (
	"encoding/json"
	"errors"

	"github.com/invopop/jsonschema"

	"github.com/imagebuilder/imagebuilder/internal/params"
)

//go:generate go run ./genschema -o ../../schema/family.schema.json

// File is a family file: the images of a family, where their sources are, and where they go.
type File struct {
	// The registry every image is pushed to, as in build params.
	Registry params.Registry `json:"registry"`
	// Path under the registry for every image: an image is pushed as
	// REGISTRY/NAMESPACE/NAME (REGISTRY/NAME without a namespace).
	Namespace string `json:"namespace,omitempty"`
	// Tag of every image, a Go text/template: .Git.Branch, .Git.Commit, .Git.ShortCommit (of
	// the git checkout holding the family file), .Date (YYYYMMDD, UTC, of the run) and the
	// variables by name ({{ .release }}).
	Tag string `json:"tag,omitempty" jsonschema:"default=latest"`
	// Extra tags of every image, templates like tag (CORD's candidate, say).
	Tags []string `json:"tags,omitempty"`
	// Platforms of every image that does not name its own, as os/arch[/variant]. Default: the
	// builder's native platform.
	Platforms []string `json:"platforms,omitempty"`
	// Variables: the data of every *.tmpl Dockerfile ({{ .greeting }}) and of the tag
	// templates. The command line may override their values (--var NAME=VALUE), not add names.
	Variables map[string]string `json:"variables,omitempty"`
	// Build arguments of every image (an image's own build_args win by name).
	BuildArgs map[string]string `json:"build_args,omitempty"`
	// Dockerfile fragment inserted after every FROM instruction of every image (Kolla's
	// header: proxy settings, a registration step).
	Header string `json:"header,omitempty"`
	// Dockerfile fragment appended to the stage each image builds (Kolla's footer).
	Footer string `json:"footer,omitempty"`
	// Pass the proxy variables of the environment that runs the build (HTTP_PROXY,
	// HTTPS_PROXY, FTP_PROXY, NO_PROXY, in upper and lower case, those that are set) to every
	// image as build args; build_args win by name.
	ProxyFromEnv bool `json:"proxy_from_env,omitempty"`
	// Which build engine or pool of engines to use, as in build params.
	Builder *params.Builder `json:"builder,omitempty"`
	// Build secrets of every image, by id (an image's own secrets win by id).
	Secrets map[string]params.Secret `json:"secrets,omitempty"`
	// SSH forwards of every image, as in build params.
	SSH []string `json:"ssh,omitempty"`
	// Named sources, in the shapes of build params' source (git_repo, dockerfile with
	// build_context, tar, local): the trees the images' contexts and components come from. A
	// source's workdir (subdir) is the base of the contexts in it; its dockerfile is not used
	// (each image names its own). Relative local paths are relative to the family file.
	Sources map[string]params.Source `json:"sources,omitempty"`
	// The images. With images_dir, an entry named like a discovered image overrides its fields.
	Images []ImageSpec `json:"images,omitempty"`
	// Kolla's layout: every directory below this one (relative to the family file) holding a
	// Dockerfile or Dockerfile.tmpl is an image named after the directory, built with that
	// directory as its context.
	ImagesDir string `json:"images_dir,omitempty"`
	// External images to resolve to digests and record (CORD's pull_only_images).
	Pull []string `json:"pull,omitempty"`

	// Dir is the directory relative paths are resolved against (LoadFile sets it to the
	// file's directory; "" means the working directory).
	Dir string `json:"-"`
}

// ImageSpec is one image of the family as the file gives it.
type ImageSpec struct {
	// Repository name under the namespace, lowercase (keystone, xos/core).
	Name string `json:"name"`
	// Where the context comes from: the name of one of sources, or a source object. Default:
	// the only source, when sources has exactly one, or images_dir for its images.
	Source *SourceRef `json:"source,omitempty"`
	// Build context directory, relative to the source (its workdir).
	Context string `json:"context,omitempty" jsonschema:"default=."`
	// Dockerfile, relative to the context. A name ending in .tmpl is rendered with Go
	// text/template over the variables first. Default Dockerfile, else Dockerfile.tmpl.
	Dockerfile string `json:"dockerfile,omitempty" jsonschema:"default=Dockerfile"`
	// Tag of this image instead of the family's, a template like it.
	Tag string `json:"tag,omitempty"`
	// Extra tags of this image, added to the family's; templates like tag.
	Tags []string `json:"tags,omitempty"`
	// Build arguments (ARG values); they win over the family's by name.
	BuildArgs map[string]string `json:"build_args,omitempty"`
	// Stage of a multi-stage Dockerfile to build (default: the last stage).
	Target string `json:"target,omitempty"`
	// Platforms to build instead of the family's.
	Platforms []string `json:"platforms,omitempty"`
	// Labels added to the image configuration.
	Labels map[string]string `json:"labels,omitempty"`
	// Files of other sources copied into the context before the build (CORD's components).
	Components []Component `json:"components,omitempty"`
	// Replaces bases by key, as in build params: a stage name, a stage index, or an image
	// reference exactly as written in a FROM.
	Bases map[string]string `json:"bases,omitempty"`
	// Build the image (default true); false drops it from the family.
	Enabled *bool `json:"enabled,omitempty" jsonschema:"default=true"`
	// Build secrets of this image, by id; they add to (and by id replace) the family's.
	Secrets map[string]params.Secret `json:"secrets,omitempty"`
	// SSH forwards of this image; an id given here replaces the family's entry with that id.
	SSH []string `json:"ssh,omitempty"`
}

// Component is a file or directory of another source copied into an image's context.
type Component struct {
	// Name of the source the files come from.
	Source string `json:"source"`
	// File or directory inside that source (relative to its workdir); it must stay inside.
	Path string `json:"path,omitempty" jsonschema:"default=."`
	// Where it goes, relative to the image's context.
	Dest string `json:"dest"`
}

// SourceRef is an image's source: the name of one of the family's sources, or a source given
// inline.
type SourceRef struct {
	Name   string
	Inline *params.Source
}

// MarshalJSON writes the name, or the inline source.
func (r SourceRef) MarshalJSON() ([]byte, error) {
	if r.Inline != nil {
		return json.Marshal(r.Inline)
	}
	return json.Marshal(r.Name)
}

// UnmarshalJSON reads a name or a source object.
func (r *SourceRef) UnmarshalJSON(data []byte) error {
	var name string
	if err := json.Unmarshal(data, &name); err == nil {
		*r = SourceRef{Name: name}
		return nil
	}
	var s params.Source
	if err := json.Unmarshal(data, &s); err != nil {
		return errors.New("source must be a source name or a source object")
	}
	*r = SourceRef{Inline: &s}
	return nil
}

// JSONSchema: a source name or a source object.
func (SourceRef) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		OneOf: []*jsonschema.Schema{
			{Type: "string", Pattern: PatternSourceName},
			{Ref: "#/$defs/Source"},
		},
		Description: "The name of one of sources, or a source object.",
	}
}

// Patterns of the family file, besides the params' ones.
const (
	// PatternSourceName is the name of a source.
	PatternSourceName = `^[A-Za-z0-9][A-Za-z0-9_.-]*$`
	// PatternNamespace is a repository path prefix (or empty).
	PatternNamespace = params.PatternRepository
)

// Default values, as documented in the schema.
const (
	DefaultTag        = "latest"
	DefaultContext    = "."
	DefaultDockerfile = "Dockerfile"
	// ImagesDirSource is the name of the local source of the images found under images_dir.
	ImagesDirSource = "images_dir"
	// InlinePrefix starts the name given to an image's inline source: "image:" + the image's name.
	InlinePrefix = "image:"
)

// JSONSchemaExtend constrains the globals.
func (File) JSONSchemaExtend(s *jsonschema.Schema) {
	params.Prop(s, "namespace").Pattern = PatternNamespace
	platforms(params.Prop(s, "platforms"))
	params.Prop(s, "tags").Items.MinLength = ptr(1)
	argMap(params.Prop(s, "variables"))
	argMap(params.Prop(s, "build_args"))
	params.SecretsSchema(params.Prop(s, "secrets"))
	params.SSHSchema(params.Prop(s, "ssh"))
	src := params.Prop(s, "sources")
	src.PatternProperties = map[string]*jsonschema.Schema{PatternSourceName: src.AdditionalProperties}
	src.AdditionalProperties = jsonschema.FalseSchema
	params.Prop(s, "pull").Items.MinLength = ptr(1)
	params.Prop(s, "pull").UniqueItems = true
	s.Required = []string{"registry"}
}

// JSONSchemaExtend constrains an image's fields like build params' image.
func (ImageSpec) JSONSchemaExtend(s *jsonschema.Schema) {
	params.Prop(s, "name").Pattern = params.PatternRepository
	params.Prop(s, "name").MaxLength = ptr(255)
	platforms(params.Prop(s, "platforms"))
	params.Prop(s, "tags").Items.MinLength = ptr(1)
	argMap(params.Prop(s, "build_args"))
	params.Prop(s, "bases").AdditionalProperties = &jsonschema.Schema{Type: "string", MinLength: ptr(1)}
	params.SecretsSchema(params.Prop(s, "secrets"))
	params.SSHSchema(params.Prop(s, "ssh"))
}

// JSONSchemaExtend constrains a component's source name.
func (Component) JSONSchemaExtend(s *jsonschema.Schema) {
	params.Prop(s, "source").Pattern = PatternSourceName
	s.Required = []string{"source", "dest"}
}

func platforms(p *jsonschema.Schema) {
	p.Items.Pattern = params.PatternPlatform
	p.UniqueItems = true
}

// argMap keys a map of strings by variable name (patternProperties, not propertyNames: see
// params' build_args).
func argMap(p *jsonschema.Schema) {
	p.PatternProperties = map[string]*jsonschema.Schema{params.PatternArgName: {Type: "string"}}
	p.AdditionalProperties = jsonschema.FalseSchema
}

func ptr(v uint64) *uint64 { return &v }
