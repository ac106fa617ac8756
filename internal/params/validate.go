package params

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/schemawalk"
	"github.com/imagebuilder/imagebuilder/schema"
)

// ErrInvalid is wrapped by every error about the input itself (syntax, schema, rules), as
// opposed to failures while running. Front ends map it to exit status 2.
var ErrInvalid = errors.New("invalid build params")

// FieldError is one problem with the input, located by the JSON pointer of the offending value.
type FieldError struct {
	Pointer string `json:"pointer"`
	Message string `json:"message"`
}

func (e FieldError) String() string {
	p := e.Pointer
	if p == "" {
		p = "/"
	}
	return p + ": " + e.Message
}

// ValidationError holds every problem found in the input, not only the first.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		lines[i] = fe.String()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Format is the syntax a document was written in.
type Format string

// Formats.
const (
	JSON Format = "json"
	YAML Format = "yaml"
)

// Decode parses a JSON or YAML document (detected from its first character) into generic data
// (maps, slices, strings, json.Number, bools, nil). Duplicate keys in YAML are errors.
func Decode(data []byte) (any, Format, error) {
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		v, err := decodeJSON(trimmed)
		if err != nil {
			return nil, JSON, invalid("", "not valid JSON: %s", jsonErrorText(trimmed, err))
		}
		return v, JSON, nil
	}
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, YAML, invalid("", "not valid YAML: %s", strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "))
	}
	v, err := decodeJSON(j)
	if err != nil {
		return nil, YAML, invalid("", "not valid YAML: %v", err)
	}
	return v, YAML, nil
}

func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &json.SyntaxError{Offset: dec.InputOffset()}
	}
	return v, nil
}

// jsonErrorText adds the line and column to a JSON syntax error.
func jsonErrorText(data []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := 1, 1
		for _, b := range data[:min(int(se.Offset), len(data))] {
			if b == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		msg := se.Error()
		if msg == "" {
			msg = "unexpected data after the document"
		}
		return fmt.Sprintf("line %d, column %d: %s", line, col, msg)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return err.Error()
}

func invalid(pointer, format string, args ...any) error {
	return &ValidationError{Errors: []FieldError{{Pointer: pointer, Message: fmt.Sprintf(format, args...)}}}
}

var compiled = sync.OnceValues(compileSchema)

// Prepare compiles the schema ahead of the first Validate, which then does not wait for it:
// a front end calls it (in a goroutine) while it does other work.
func Prepare() { _, _ = compiled() }

// compileSchema compiles the embedded build-params schema.
func compileSchema() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.BuildParams))
	if err != nil {
		return nil, fmt.Errorf("reading the embedded schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.UseRegexpEngine(regexpOnce())
	if err := c.AddResource(SchemaID, doc); err != nil {
		return nil, fmt.Errorf("loading the embedded schema: %w", err)
	}
	return c.Compile(SchemaID)
}

// regexpOnce compiles each pattern once: the schema repeats its patterns (a tag, the image's and
// every extra tag's), and the compiler checks each pattern against the meta-schema before
// compiling it again; one regexp per pattern roughly halves the cost of compiling the schema,
// which every run pays before it starts.
func regexpOnce() jsonschema.RegexpEngine {
	var mu sync.Mutex
	seen := map[string]*regexp.Regexp{}
	return func(s string) (jsonschema.Regexp, error) {
		mu.Lock()
		defer mu.Unlock()
		if re, ok := seen[s]; ok {
			return re, nil
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, err
		}
		seen[s] = re
		return re, nil
	}
}

// Validate checks generic data against the build-params schema and the rules the schema cannot
// express. It reports every problem found, each located by JSON pointer.
//
// It first expands, in place, the one shorthand the params allow: an ssh value given as a
// single forward (ssh: default, as buildx --ssh default reads) stands for a list of one.
func Validate(doc any) error {
	sch, err := compiled()
	if err != nil {
		return err
	}
	expandSSH(doc)
	var errs []FieldError
	if err := sch.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return fmt.Errorf("validating: %w", err)
		}
		errs = schemaErrors(ve, doc)
	}
	if len(errs) == 0 {
		// The rules below assume the schema holds.
		p, err := DecodeValid(doc)
		if err != nil {
			return err
		}
		errs = p.check()
	}
	if len(errs) > 0 {
		red := docRedactor(doc)
		for i := range errs {
			errs[i].Message = red.String(errs[i].Message)
		}
		return &ValidationError{Errors: errs}
	}
	return nil
}

// expandSSH turns an ssh value that is a string, at the top level or in an image, into a list of
// that one string.
func expandSSH(doc any) {
	expand := func(obj any) {
		if m, ok := obj.(map[string]any); ok {
			if s, ok := m["ssh"].(string); ok {
				m["ssh"] = []any{s}
			}
		}
	}
	expand(doc)
	if top, ok := doc.(map[string]any); ok {
		if target, ok := top["target"].(map[string]any); ok {
			if images, ok := target["images"].([]any); ok {
				for _, img := range images {
					expand(img)
				}
			}
		}
	}
}

// docRedactor masks, in messages about doc, the values of its secret (writeOnly) fields and
// the credentials of the URLs it holds: a message may quote the offending value, and neither
// kind may be shown.
func docRedactor(doc any) *redact.Redactor {
	red := redact.New()
	secret := schemaNames().writeOnly
	redact.Strings(doc, func(key, s string) {
		if secret[key] {
			red.Add(s)
		}
		red.AddURL(s)
	})
	return red
}

// Load parses, validates and decodes a build-params document (JSON or YAML). Defaults are not
// filled in; see WithDefaults.
func Load(data []byte) (*BuildParams, error) {
	doc, _, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if err := Validate(doc); err != nil {
		return nil, err
	}
	return DecodeValid(doc)
}

// LoadFile is Load on a file, or on standard input when name is "-".
func LoadFile(name string) (*BuildParams, error) {
	data, err := ReadInput(name)
	if err != nil {
		return nil, err
	}
	return Load(data)
}

// ReadInput reads a file, or standard input when name is "-" or empty.
func ReadInput(name string) ([]byte, error) {
	if name == "" || name == "-" {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", name, err)
	}
	return data, nil
}

// FromMap validates generic data (for example Ansible module options) and decodes it.
func FromMap(doc map[string]any) (*BuildParams, error) {
	// Round-trip through JSON so numbers are json.Number, as the validator expects.
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding options: %w", err)
	}
	return Load(data)
}

// DecodeValid decodes generic data that Validate accepted into the params types.
func DecodeValid(doc any) (*BuildParams, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding document: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p BuildParams
	if err := dec.Decode(&p); err != nil {
		return nil, invalid("", "%v", err)
	}
	return &p, nil
}

var printer = message.NewPrinter(language.English)

// schemaErrors flattens the validator's error tree into one message per problem, replacing the
// oneOf/dependentRequired noise of the source rules by one readable sentence.
func schemaErrors(root *jsonschema.ValidationError, doc any) []FieldError {
	var out []FieldError
	seen := map[string]bool{}
	add := func(loc []string, msg string) {
		fe := FieldError{Pointer: pointer(loc), Message: msg}
		if !seen[fe.String()] {
			seen[fe.String()] = true
			out = append(out, fe)
		}
	}
	var walk func(ve *jsonschema.ValidationError)
	walk = func(ve *jsonschema.ValidationError) {
		switch k := ve.ErrorKind.(type) {
		case *kind.OneOf, *kind.DependentRequired:
			if msg, ok := ruleMessage(ve.InstanceLocation, doc); ok {
				add(ve.InstanceLocation, msg)
				return
			}
		case *kind.Pattern:
			add(ve.InstanceLocation, patternMessage(k))
			return
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				n := len(ve.InstanceLocation)
				if n > 0 && ve.InstanceLocation[n-1] == "build_args" {
					add(ve.InstanceLocation, fmt.Sprintf("key %q is not %s", p, patternHints[PatternArgName]))
				} else if n > 0 && ve.InstanceLocation[n-1] == "secrets" {
					add(ve.InstanceLocation, fmt.Sprintf("key %q is not %s", p, patternHints[PatternSecretID]))
				} else {
					add(ve.InstanceLocation, unknownMessage(ve.InstanceLocation, p))
				}
			}
			return
		}
		if len(ve.Causes) == 0 {
			add(ve.InstanceLocation, ve.ErrorKind.LocalizedString(printer))
			return
		}
		for _, c := range ve.Causes {
			walk(c)
		}
	}
	walk(root)
	// The validator's causes come in no fixed order: sort fully, so the same input always gives
	// the same messages in the same order.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pointer != out[j].Pointer {
			return out[i].Pointer < out[j].Pointer
		}
		return out[i].Message < out[j].Message
	})
	return out
}

// ruleMessage explains a broken source rule, for the objects that have such rules.
func ruleMessage(loc []string, doc any) (string, bool) {
	obj, _ := lookup(doc, loc).(map[string]any)
	if obj == nil {
		return "", false
	}
	has := func(property string) bool { _, ok := obj[property]; return ok }
	if n := len(loc); n >= 2 && loc[n-2] == "secrets" {
		var present []string
		for _, k := range secretSources {
			if has(k) {
				present = append(present, k)
			}
		}
		if len(present) > 1 {
			return strings.Join(present, " and ") + " cannot be combined: set exactly one of env, file or value", true
		}
		return "missing env, file or value: set exactly one of them", true
	}
	switch strings.Join(loc, "/") {
	case "source":
		if msg := sourceRule(has); msg != "" {
			return msg, true
		}
	case "source/tar":
		if msg := tarRule(has); msg != "" {
			return msg, true
		}
	case "builder/tls":
		if _, ok := obj["cert"]; ok {
			return "cert needs key", true
		}
		return "key needs cert", true
	case "target/registry":
		if _, ok := obj["username"]; ok {
			return "username needs password", true
		}
		return "password needs username", true
	}
	return "", false
}

var patternHints = map[string]string{
	PatternRepository: "a lowercase repository path such as team/app (letters, digits, and . _ - between them)",
	PatternTag:        "a tag: up to 128 letters, digits, _ . -, not starting with . or -",
	PatternPlatform:   "a platform os/arch[/variant] such as linux/amd64 or linux/arm/v7",
	PatternRegistry:   "a registry host[:port][/namespace] such as docker.io or 127.0.0.1:5000",
	PatternHTTPURL:    "an http:// or https:// URL",
	PatternArgName:    "a variable name (letters, digits, _; not starting with a digit)",
	PatternSecretID:   "a secret id (letters, digits, _ . -)",
	PatternSSH:        "an ssh forward: default, ID, or ID=PATH[,PATH...]",
}

func patternMessage(k *kind.Pattern) string {
	if hint, ok := patternHints[k.Want]; ok {
		return fmt.Sprintf("%q is not %s", k.Got, hint)
	}
	return k.LocalizedString(printer)
}

func unknownMessage(loc []string, key string) string {
	msg := fmt.Sprintf("unknown property %q", key)
	if s := suggest(loc, key); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return msg
}

// suggest returns the property name of the object at loc closest to key, if it is close:
// only names that object has (no "pull" for a misspelt "url" in source).
func suggest(loc []string, key string) string {
	names := schemaNames()
	// The object's path as the walk names it: a list index or a map key steps into the item.
	path := ""
	for _, tok := range loc {
		if p := names.properties[path]; p != nil && (p.Kind == schemawalk.List || p.Kind == schemawalk.Map) {
			path = p.ItemPath()
		} else {
			path = strings.TrimPrefix(path+"."+tok, ".")
		}
	}
	best, bestD := "", 3
	for _, name := range names.objects[path] {
		if d := distance(key, name); d > 0 && d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

// schemaNames are the property names of each object of the schema (by the walk's path of the
// object, "" for the root), each property by its path, and the names of the secret
// (writeOnly) properties.
var schemaNames = sync.OnceValue(func() (names struct {
	objects    map[string][]string
	properties map[string]*schemawalk.Property
	writeOnly  map[string]bool
}) {
	names.objects = map[string][]string{}
	names.properties = map[string]*schemawalk.Property{}
	names.writeOnly = map[string]bool{}
	doc, err := schemawalk.Parse(schema.BuildParams)
	if err != nil {
		return names // the embedded schema is tested; no hints rather than a panic
	}
	_ = doc.Walk(func(p *schemawalk.Property) bool {
		parent := p.Parent.ItemPath()
		names.objects[parent] = append(names.objects[parent], p.Name)
		names.properties[p.Path] = p
		if p.Schema.WriteOnly {
			names.writeOnly[p.Name] = true
		}
		return true
	})
	return names
})

// distance is the Levenshtein distance with adjacent transpositions counted as one edit.
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func lookup(doc any, loc []string) any {
	for _, tok := range loc {
		switch v := doc.(type) {
		case map[string]any:
			doc = v[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return nil
			}
			doc = v[i]
		default:
			return nil
		}
	}
	return doc
}

// pointer renders a JSON pointer (RFC 6901).
func pointer(loc []string) string {
	var b strings.Builder
	for _, tok := range loc {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(tok))
	}
	return b.String()
}

// check applies the rules the schema cannot express: references must parse as a whole, relative
// paths must stay inside their root, and no two images may push the same reference.
func (p *BuildParams) check() []FieldError {
	var errs []FieldError
	add := func(ptr, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: ptr, Message: fmt.Sprintf(format, args...)})
	}
	relPath := func(ptr, v string) {
		if v == "" {
			return
		}
		if path.IsAbs(v) || strings.HasPrefix(v, `\`) {
			add(ptr, "%q must be a relative path", v)
		} else if c := path.Clean(v); c == ".." || strings.HasPrefix(c, "../") {
			add(ptr, "%q leaves its root directory", v)
		}
	}
	s := p.Source
	if g := s.GitRepo; g != nil {
		relPath("/source/git_repo/dockerfile", g.Dockerfile)
		relPath("/source/git_repo/workdir", g.Workdir)
	}
	if b := s.BuildContext; b != nil {
		relPath("/source/build_context/subdir", b.Subdir)
	}
	if t := s.Tar; t != nil {
		relPath("/source/tar/dockerfile", t.Dockerfile)
		relPath("/source/tar/workdir", t.Workdir)
	}
	if l := s.Local; l != nil {
		relPath("/source/local/dockerfile", l.Dockerfile)
		relPath("/source/local/workdir", l.Workdir)
	}
	refs := map[string]string{}
	for i, img := range p.Target.Images {
		ptr := fmt.Sprintf("/target/images/%d", i)
		for j, tag := range img.AllTags() {
			ref := p.Target.RefTag(img, tag)
			field := ptr
			if j > 0 {
				field = ptr + "/tags"
			}
			if _, err := reference.ParseNormalizedNamed(ref); err != nil {
				add(field, "%q is not a valid image reference: %v", ref, err)
				continue
			}
			if other, dup := refs[ref]; dup {
				add(field, "%q is also pushed by %s", ref, other)
				continue
			}
			refs[ref] = ptr
		}
		if img.Base != "" {
			if _, err := reference.ParseNormalizedNamed(img.Base); err != nil {
				add(ptr+"/base", "%q is not a valid image reference: %v", img.Base, err)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(img.Labels)) {
			if strings.TrimSpace(k) == "" {
				add(ptr+"/labels", "label keys must not be empty")
			}
		}
		for _, k := range slices.Sorted(maps.Keys(img.Bases)) {
			if strings.TrimSpace(k) == "" {
				add(ptr+"/bases", "keys must name a stage, a stage index or an image; got an empty key")
				continue
			}
			if _, err := reference.ParseNormalizedNamed(img.Bases[k]); err != nil {
				add(ptr+"/bases/"+strings.NewReplacer("~", "~0", "/", "~1").Replace(k),
					"%q is not a valid image reference: %v", img.Bases[k], err)
			}
		}
	}
	return errs
}
