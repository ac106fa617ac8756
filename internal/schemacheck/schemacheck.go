// Package schemacheck validates documents (build params, family files) against the JSON Schemas
// generated from their Go types and embedded in package schema: it decodes JSON or YAML into
// generic data, compiles a schema once, and turns the validator's error tree into one readable
// message per problem, each located by the JSON pointer of the offending value, with spelling
// hints for unknown keys and the values of secret (writeOnly) fields never quoted.
//
// What is particular to one document kind comes in through a Schema's fields: the hints that
// explain its patterns and the rules that explain its oneOf/dependentRequired constraints (by
// the name of the $defs object they belong to). Everything else is decided here, once.
package schemacheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/schemawalk"
)

// ErrInvalid is wrapped by every error about the input itself (syntax, schema, rules), as
// opposed to failures while running. Front ends map it to exit status 2.
var ErrInvalid = errors.New("invalid input")

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

// Invalid is a ValidationError of one problem.
func Invalid(pointer, format string, args ...any) error {
	return &ValidationError{Errors: []FieldError{{Pointer: pointer, Message: fmt.Sprintf(format, args...)}}}
}

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
			return nil, JSON, Invalid("", "not valid JSON: %s", jsonErrorText(trimmed, err))
		}
		return v, JSON, nil
	}
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, YAML, Invalid("", "not valid YAML: %s", strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "))
	}
	v, err := decodeJSON(j)
	if err != nil {
		return nil, YAML, Invalid("", "not valid YAML: %v", err)
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

// DecodeValid decodes generic data that the schema accepted into v (a pointer to the document's
// Go type), refusing unknown fields.
func DecodeValid(doc, v any) error {
	data, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encoding document: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Invalid("", "%v", err)
	}
	return nil
}

// Schema is one embedded JSON Schema and what explains its errors. Its zero value is not
// usable; declare it as a package variable with ID and Data set: it compiles on first use.
type Schema struct {
	// ID is the schema's $id; Data the schema document.
	ID   string
	Data []byte
	// Hints explain patterns: a value that fails pattern P reads `"VALUE" is not HINTS[P]`, and
	// a key of a map whose keys must match P reads `key "KEY" is not HINTS[P]`.
	Hints map[string]string
	// Rules explain a failed oneOf, dependentRequired or not of a $defs object, by the
	// definition's name: given the object as decoded, a rule returns one sentence, or "" to
	// fall back to the validator's own messages.
	Rules map[string]func(obj map[string]any) string

	once     sync.Once
	compiled *jsonschema.Schema
	err      error
	raw      any             // the schema document as generic data, for hints
	secret   map[string]bool // names of writeOnly properties
}

func (s *Schema) load() {
	s.once.Do(func() {
		s.compiled, s.err = s.compile()
		if s.err != nil {
			return
		}
		_ = json.Unmarshal(s.Data, &s.raw)
		s.secret = map[string]bool{}
		if doc, err := schemawalk.Parse(s.Data); err == nil {
			_ = doc.Walk(func(p *schemawalk.Property) bool {
				if p.Schema.WriteOnly {
					s.secret[p.Name] = true
				}
				return true
			})
		}
	})
}

// Prepare compiles the schema ahead of the first Validate, which then does not wait for it:
// a front end calls it (in a goroutine) while it does other work.
func (s *Schema) Prepare() { s.load() }

func (s *Schema) compile() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(s.Data))
	if err != nil {
		return nil, fmt.Errorf("reading the embedded schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.UseRegexpEngine(regexpOnce())
	if err := c.AddResource(s.ID, doc); err != nil {
		return nil, fmt.Errorf("loading the embedded schema: %w", err)
	}
	return c.Compile(s.ID)
}

// regexpOnce compiles each pattern once: a schema repeats its patterns (a tag, the image's and
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

// Validate checks generic data against the schema. It returns every problem found, sorted by
// pointer and message; an error only when the schema itself cannot be used. The messages are
// not yet redacted: see Redact.
func (s *Schema) Validate(doc any) ([]FieldError, error) {
	s.load()
	if s.err != nil {
		return nil, s.err
	}
	err := s.compiled.Validate(doc)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, fmt.Errorf("validating: %w", err)
	}
	return s.messages(ve, doc), nil
}

// Check is Validate, then the document's own rules (run only when the schema holds, as they
// may assume it), then Redact: the error is a *ValidationError, or nil.
func (s *Schema) Check(doc any, rules func() ([]FieldError, error)) error {
	errs, err := s.Validate(doc)
	if err != nil {
		return err
	}
	if len(errs) == 0 && rules != nil {
		if errs, err = rules(); err != nil {
			return err
		}
	}
	if len(errs) == 0 {
		return nil
	}
	s.Redact(doc, errs)
	return &ValidationError{Errors: errs}
}

// Redact masks, in messages about doc, the values of its secret (writeOnly) fields and the
// credentials of the URLs it holds: a message may quote the offending value, and neither kind
// may be shown.
func (s *Schema) Redact(doc any, errs []FieldError) {
	s.load()
	red := redact.New()
	redact.Strings(doc, func(key, v string) {
		if s.secret[key] {
			red.Add(v)
		}
		red.AddURL(v)
	})
	for i := range errs {
		errs[i].Message = red.String(errs[i].Message)
	}
}

var printer = message.NewPrinter(language.English)

// messages flattens the validator's error tree into one message per problem, replacing the
// oneOf/dependentRequired noise of the rules by one readable sentence.
func (s *Schema) messages(root *jsonschema.ValidationError, doc any) []FieldError {
	var out []FieldError
	seen := map[string]bool{}
	add := func(loc []string, msg string) {
		fe := FieldError{Pointer: Pointer(loc), Message: msg}
		if !seen[fe.String()] {
			seen[fe.String()] = true
			out = append(out, fe)
		}
	}
	var walk func(ve *jsonschema.ValidationError)
	walk = func(ve *jsonschema.ValidationError) {
		switch k := ve.ErrorKind.(type) {
		case *kind.OneOf, *kind.AnyOf, *kind.DependentRequired, *kind.Not:
			if msg := s.ruleMessage(ve, doc); msg != "" {
				add(ve.InstanceLocation, msg)
				return
			}
			if causes := typeMatched(ve); len(causes) > 0 {
				for _, c := range causes {
					walk(c)
				}
				return
			}
		case *kind.Pattern:
			add(ve.InstanceLocation, s.patternMessage(k))
			return
		case *kind.AdditionalProperties:
			obj := s.schemaAt(ve.SchemaURL)
			for _, p := range k.Properties {
				add(ve.InstanceLocation, s.additionalMessage(obj, p))
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

// typeMatched keeps, of the branches of a failed oneOf/anyOf over alternatives of different
// types (a name or an object), those whose type the value has: "got object, want string" says
// nothing when the object form is the one meant. Nil when that does not single any out.
func typeMatched(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) < 2 {
		return nil
	}
	var keep []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		if !typeMismatch(c) {
			keep = append(keep, c)
		}
	}
	if len(keep) == len(ve.Causes) || len(keep) == 0 {
		return nil
	}
	return keep
}

// typeMismatch reports whether a branch failed only on the value's type (through $ref).
func typeMismatch(ve *jsonschema.ValidationError) bool {
	switch ve.ErrorKind.(type) {
	case *kind.Type:
		return len(ve.Causes) == 0
	case *kind.Reference, *kind.Schema:
		return len(ve.Causes) == 1 && typeMismatch(ve.Causes[0])
	}
	return false
}

// ruleMessage explains a failed oneOf/dependentRequired/not of a $defs object by its rule (the
// validator names the object whose keyword failed: #/$defs/NAME).
func (s *Schema) ruleMessage(ve *jsonschema.ValidationError, doc any) string {
	_, frag, _ := strings.Cut(ve.SchemaURL, "#")
	rest, ok := strings.CutPrefix(frag, "/$defs/")
	if !ok {
		return ""
	}
	if strings.Contains(rest, "/") { // a keyword of an inline schema, not of the definition
		return ""
	}
	rule := s.Rules[rest]
	obj, _ := lookup(doc, ve.InstanceLocation).(map[string]any)
	if rule == nil || obj == nil {
		return ""
	}
	return rule(obj)
}

// schemaAt is the raw schema object at the fragment of a schema URL (the validator's SchemaURL
// is the object whose keyword failed).
func (s *Schema) schemaAt(schemaURL string) map[string]any {
	_, frag, _ := strings.Cut(schemaURL, "#")
	var toks []string
	if frag != "" {
		toks = strings.Split(strings.TrimPrefix(frag, "/"), "/")
	}
	cur := s.raw
	for _, t := range toks {
		t = strings.NewReplacer("~1", "/", "~0", "~").Replace(t)
		switch v := cur.(type) {
		case map[string]any:
			cur = v[t]
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(v) {
				return nil
			}
			cur = v[i]
		default:
			return nil
		}
	}
	m, _ := cur.(map[string]any)
	return m
}

func (s *Schema) patternMessage(k *kind.Pattern) string {
	if hint, ok := s.Hints[k.Want]; ok {
		return fmt.Sprintf("%q is not %s", k.Got, hint)
	}
	return k.LocalizedString(printer)
}

// additionalMessage explains a key that obj, the schema of its object, does not allow: a key
// of a map whose keys follow one pattern, or an unknown property, with the closest name the
// object has when it is close.
func (s *Schema) additionalMessage(obj map[string]any, key string) string {
	if pp, ok := obj["patternProperties"].(map[string]any); ok && len(pp) == 1 {
		for pattern := range pp {
			if hint, ok := s.Hints[pattern]; ok {
				return fmt.Sprintf("key %q is not %s", key, hint)
			}
			return fmt.Sprintf("key %q does not match %s", key, pattern)
		}
	}
	msg := fmt.Sprintf("unknown property %q", key)
	props, _ := obj["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	sort.Strings(names)
	best, bestD := "", 3
	for _, name := range names {
		if d := distance(key, name); d > 0 && d < bestD {
			best, bestD = name, d
		}
	}
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return msg
}

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

// Pointer renders a JSON pointer (RFC 6901) from its tokens.
func Pointer(loc []string) string {
	var b strings.Builder
	for _, tok := range loc {
		b.WriteByte('/')
		b.WriteString(Escape(tok))
	}
	return b.String()
}

// Escape escapes one token of a JSON pointer.
func Escape(tok string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(tok) }

// Nest places a document's problems under pointer (the option or key that holds the
// document): a ValidationError's pointers are prefixed with it; any other error becomes one
// problem at pointer.
func Nest(pointer string, err error) *ValidationError {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return &ValidationError{Errors: []FieldError{{Pointer: pointer, Message: err.Error()}}}
	}
	out := &ValidationError{Errors: make([]FieldError, len(ve.Errors))}
	for i, fe := range ve.Errors {
		out.Errors[i] = FieldError{Pointer: pointer + fe.Pointer, Message: fe.Message}
	}
	return out
}

// Mask returns a copy of doc, decoded JSON, fit to be stored and shown: the value of every
// secret (writeOnly) field is redact.Mask, and every other string went through red (which knows
// the document's secrets: the credentials its URLs carry, say). doc is not changed.
func (s *Schema) Mask(doc any, red *redact.Redactor) any {
	s.load()
	var walk func(v any, key string) any
	walk = func(v any, key string) any {
		switch v := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(v))
			for k, e := range v {
				out[k] = walk(e, k)
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, e := range v {
				out[i] = walk(e, key)
			}
			return out
		case string:
			if s.secret[key] && v != "" {
				return redact.Mask
			}
			return red.String(v)
		}
		return v
	}
	return walk(doc, "")
}
