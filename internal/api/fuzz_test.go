package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/imagebuilder/imagebuilder/internal/service"
)

// FuzzDecodeSubmit: any body either decodes to a request of a known kind with an object or a
// text document, or is a 400 whose every location is a JSON pointer into the body ("" for the
// whole); it never panics.
func FuzzDecodeSubmit(f *testing.F) {
	for _, seed := range []string{
		`{"document":{"a":1}}`, `{"kind":"family","document":"a: 1\n","dry_run":true}`, `{"document":[1]}`,
		`{"kind":"x","document":{}}`, `{"document":{},"extra":{}}`, `{"dry_run":"yes","document":{}}`, `{`, `[]`, `null`, ``,
		`{"document":{}} {}`, `{"document":"\u0000"}`, `{"kind":null,"document":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, doc, err := decodeSubmit(body)
		if err != nil {
			var em *huma.ErrorModel
			if !errors.As(err, &em) || em.Status != http.StatusBadRequest || len(em.Errors) == 0 {
				t.Fatalf("%q: error %v is not a 400 problem with details", body, err)
			}
			for _, d := range em.Errors {
				if d.Location != "" && !strings.HasPrefix(d.Location, "/") || d.Value != nil {
					t.Fatalf("%q: detail %+v is not a pointer without a value", body, d)
				}
			}
			return
		}
		if req.Kind != service.KindBuild && req.Kind != service.KindFamily {
			t.Fatalf("%q: kind %q accepted", body, req.Kind)
		}
		if doc == nil {
			t.Fatalf("%q: accepted without a document", body)
		}
	})
}
