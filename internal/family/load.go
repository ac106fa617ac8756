package family

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/distribution/reference"

	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
	"github.com/imagebuilder/imagebuilder/schema"
)

var familySchema = &schemacheck.Schema{
	ID: SchemaID, Data: schema.Family, Hints: hints(), Rules: params.Rules,
}

func hints() map[string]string {
	h := maps.Clone(params.PatternHints)
	h[PatternSourceName] = "a source name (letters, digits, _ . -, starting with a letter or digit)"
	return h
}

// Prepare compiles the schema ahead of the first Load, which then does not wait for it.
func Prepare() { familySchema.Prepare() }

// reserved are the names of the template data that are not variables.
var reserved = []string{"Git", "Date"}

// Load parses, validates and decodes a family file (JSON or YAML). Every problem is reported
// at once, each located by JSON pointer; the error wraps params.ErrInvalid.
func Load(data []byte) (*File, error) {
	doc, _, err := schemacheck.Decode(data)
	if err != nil {
		return nil, err
	}
	return FromDoc(doc)
}

// FromDoc validates generic data (for example Ansible module options, round-tripped through
// JSON so numbers are json.Number) and decodes it.
func FromDoc(doc any) (*File, error) {
	expandSSH(doc)
	var f File
	if err := familySchema.Check(doc, func() ([]schemacheck.FieldError, error) {
		if err := schemacheck.DecodeValid(doc, &f); err != nil {
			return nil, err
		}
		return f.check(), nil
	}); err != nil {
		return nil, err
	}
	return &f, nil
}

// FromMap is FromDoc on decoded JSON of another origin (Ansible module options).
func FromMap(m map[string]any) (*File, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding options: %w", err)
	}
	return Load(data)
}

// LoadFile is Load on a file (standard input when name is "-"); it sets Dir to the file's
// directory (the working directory for standard input), made absolute.
func LoadFile(name string) (*File, error) {
	data, err := params.ReadInput(name)
	if err != nil {
		return nil, err
	}
	f, err := Load(data)
	if err != nil {
		return nil, err
	}
	dir := "."
	if name != "" && name != "-" {
		dir = filepath.Dir(name)
	}
	if f.Dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("locating %q: %w", name, err)
	}
	return f, nil
}

func expandSSH(doc any) {
	params.ExpandSSH(doc)
	if top, ok := doc.(map[string]any); ok {
		if images, ok := top["images"].([]any); ok {
			for _, img := range images {
				params.ExpandSSH(img)
			}
		}
	}
}

// check applies the rules the schema cannot express.
func (f *File) check() []schemacheck.FieldError {
	var errs []schemacheck.FieldError
	add := func(ptr, format string, args ...any) {
		errs = append(errs, schemacheck.FieldError{Pointer: ptr, Message: fmt.Sprintf(format, args...)})
	}
	relPath := func(ptr, v string) {
		if msg := params.CheckRelPath(v); msg != "" {
			add(ptr, "%s", msg)
		}
	}
	errs = append(errs, params.CheckRegistry("/registry", f.Registry)...)
	for _, name := range reserved {
		if _, ok := f.Variables[name]; ok {
			add("/variables", "%q is reserved for the tag templates' data (.Git, .Date): rename the variable", name)
		}
	}
	checkTemplate := func(ptr, text string) {
		if _, err := template.New("").Option("missingkey=error").Parse(text); err != nil {
			add(ptr, "not a valid template: %v", templateError(err))
		}
	}
	checkTemplate("/tag", f.Tag)
	for i, t := range f.Tags {
		checkTemplate(fmt.Sprintf("/tags/%d", i), t)
	}
	if f.ImagesDir != "" { // a directory like a local source's path: anywhere
		if _, clash := f.Sources[ImagesDirSource]; clash {
			add("/sources/"+ImagesDirSource, "the name %q is taken by images_dir's images: rename the source", ImagesDirSource)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(f.Sources)) {
		ptr := "/sources/" + schemacheck.Escape(name)
		errs = append(errs, checkSource(ptr, f.Sources[name])...)
	}
	for i, ref := range f.Pull {
		if _, err := reference.ParseNormalizedNamed(ref); err != nil {
			add(fmt.Sprintf("/pull/%d", i), "%q is not a valid image reference: %v", ref, err)
		}
	}
	names := map[string]string{}
	for i, img := range f.Images {
		ptr := fmt.Sprintf("/images/%d", i)
		if other, dup := names[img.Name]; dup {
			add(ptr+"/name", "%q is also the name of %s", img.Name, other)
		} else {
			names[img.Name] = ptr
		}
		repo := f.Registry.Repository(joinRepo(f.Namespace, img.Name))
		if _, err := reference.ParseNormalizedNamed(repo); err != nil {
			add(ptr+"/name", "%q is not a valid repository: %v", repo, err)
		}
		if s := img.Source; s != nil {
			if s.Inline != nil {
				errs = append(errs, checkSource(ptr+"/source", *s.Inline)...)
			} else if _, ok := f.Sources[s.Name]; !ok {
				add(ptr+"/source", "no source named %q%s", s.Name, among(f.Sources))
			}
		} else if f.ImagesDir == "" && len(f.Sources) != 1 {
			add(ptr, "no source: set source (the file has %d sources, so none is the default)", len(f.Sources))
		}
		relPath(ptr+"/context", img.Context)
		relPath(ptr+"/dockerfile", img.Dockerfile)
		checkTemplate(ptr+"/tag", img.Tag)
		for j, t := range img.Tags {
			checkTemplate(fmt.Sprintf("%s/tags/%d", ptr, j), t)
		}
		for j, c := range img.Components {
			cptr := fmt.Sprintf("%s/components/%d", ptr, j)
			if _, ok := f.Sources[c.Source]; !ok {
				add(cptr+"/source", "no source named %q%s", c.Source, among(f.Sources))
			}
			relPath(cptr+"/path", c.Path)
			relPath(cptr+"/dest", c.Dest)
		}
		errs = append(errs, params.CheckLabels(ptr+"/labels", img.Labels)...)
		errs = append(errs, params.CheckBases(ptr+"/bases", img.Bases)...)
	}
	return errs
}

// checkSource checks a family source: its paths stay inside their roots, and it names no
// Dockerfile (each image names its own, inside its context).
func checkSource(ptr string, s params.Source) []schemacheck.FieldError {
	errs := params.CheckSource(ptr, s)
	unused := func(field string) {
		errs = append(errs, schemacheck.FieldError{Pointer: ptr + field,
			Message: "a family source names no Dockerfile: set each image's dockerfile (relative to its context)"})
	}
	switch {
	case s.GitRepo != nil && s.GitRepo.Dockerfile != "":
		unused("/git_repo/dockerfile")
	case s.Tar != nil && s.Tar.Dockerfile != "":
		unused("/tar/dockerfile")
	case s.Local != nil && s.Local.Dockerfile != "":
		unused("/local/dockerfile")
	}
	return errs
}

// among lists the names a reference could have used, for messages.
func among(sources map[string]params.Source) string {
	if len(sources) == 0 {
		return " (the file has no sources)"
	}
	return " (sources: " + strings.Join(slices.Sorted(maps.Keys(sources)), ", ") + ")"
}

// joinRepo is NAMESPACE/NAME, or NAME without a namespace.
func joinRepo(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return strings.TrimSuffix(namespace, "/") + "/" + name
}

// templateError drops the template's empty name from a parse error.
func templateError(err error) string {
	return strings.TrimPrefix(err.Error(), "template: :")
}

// Mask returns a copy of a family file as decoded data, fit to be stored and shown: secret
// (writeOnly) values masked, every other string through red (see schemacheck.Schema.Mask).
func Mask(doc any, red *redact.Redactor) any { return familySchema.Mask(doc, red) }
