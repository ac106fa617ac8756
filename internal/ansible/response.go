package ansible

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
)

// Response is what a module returns: the keys ansible-core reads, and the module's facts.
type Response struct {
	Changed  bool
	Failed   bool
	Msg      string
	Warnings []string
	// Diff is returned when the task runs with --diff and something changed (or would).
	Diff *Diff
	// Exception is a traceback, shown by ansible-playbook at -vvv.
	Exception string
	// Facts are the module's other return values, at the top level of the result. A fact named
	// like one of the keys above is ignored.
	Facts map[string]any
}

// Diff is a before/after pair; ansible-playbook --diff renders mappings as YAML documents.
type Diff struct {
	Before       any
	After        any
	BeforeHeader string
	AfterHeader  string
}

// Failf returns a failed response.
func Failf(format string, args ...any) *Response {
	return &Response{Failed: true, Msg: fmt.Sprintf(format, args...)}
}

// reserved are the keys the Response fields own.
var reserved = map[string]bool{
	"changed": true, "failed": true, "msg": true, "warnings": true, "diff": true, "exception": true,
}

// document is the JSON object written on stdout.
func (r *Response) document() map[string]any {
	doc := map[string]any{}
	for k, v := range r.Facts {
		if !reserved[k] {
			doc[k] = v
		}
	}
	doc["changed"] = r.Changed
	doc["failed"] = r.Failed
	doc["msg"] = r.Msg
	warnings := r.Warnings
	if warnings == nil {
		warnings = []string{}
	}
	doc["warnings"] = warnings
	if r.Diff != nil {
		d := map[string]any{"before": r.Diff.Before, "after": r.Diff.After}
		if r.Diff.BeforeHeader != "" {
			d["before_header"] = r.Diff.BeforeHeader
		}
		if r.Diff.AfterHeader != "" {
			d["after_header"] = r.Diff.AfterHeader
		}
		doc["diff"] = d
	}
	if r.Exception != "" {
		doc["exception"] = r.Exception
	}
	return doc
}

// Encode renders the response as one line of JSON with every secret masked in every string,
// keys included. It never fails: a fact that cannot be encoded turns the response into a
// failure that says so.
func (r *Response) Encode(red *redact.Redactor) []byte {
	data, err := encodeMasked(r.document(), red)
	if err != nil {
		fail := &Response{Failed: true, Msg: red.String(fmt.Sprintf("encoding the module result: %v", err))}
		data, _ = encodeMasked(fail.document(), red)
	}
	return data
}

// encodeMasked encodes v, decodes it into generic data, masks every string in it and encodes
// that again. Masking the encoded text instead could break the JSON (a secret like "true" or
// a quote) and would not see secrets split by escaping.
func encodeMasked(v any, red *redact.Redactor) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	buf.Reset()
	if err := enc.Encode(mask(generic, red)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func mask(v any, red *redact.Redactor) any {
	switch v := v.(type) {
	case string:
		return red.String(v)
	case json.Number:
		if m := red.String(v.String()); m != v.String() {
			return m // a secret that happens to be a number
		}
		return v
	case []any:
		for i := range v {
			v[i] = mask(v[i], red)
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[red.String(k)] = mask(e, red)
		}
		return out
	}
	return v
}

// Write encodes the response on w.
func (r *Response) Write(w io.Writer, red *redact.Redactor) error {
	_, err := w.Write(r.Encode(red))
	return err
}

// Invalid is the response to invalid options: msg (every problem, one a line) and the fact
// validation_errors (each problem's pointer and message). An error that is not a
// schemacheck.ValidationError is the msg alone.
func Invalid(err error) *Response {
	var ve *schemacheck.ValidationError
	if !errors.As(err, &ve) {
		return Failf("invalid options: %v", err)
	}
	resp := Failf("invalid options:\n%s", ve.Error())
	resp.Facts = map[string]any{"validation_errors": ve.Errors}
	return resp
}
