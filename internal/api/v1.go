package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/imagebuilder/imagebuilder/internal/service"
)

// SubmitRequest is the body of POST /v1/invocations.
type SubmitRequest struct {
	Kind     service.Kind    `json:"kind,omitempty"`
	Document json.RawMessage `json:"document"`
	DryRun   bool            `json:"dry_run,omitempty"`
}

const submitRequestName = "SubmitRequest"

// submitRequestSchema describes SubmitRequest: its document is build params, a family file or
// the text of either (JSON or YAML).
func submitRequestSchema() *huma.Schema {
	return &huma.Schema{
		Type:                 huma.TypeObject,
		AdditionalProperties: false,
		Required:             []string{"document"},
		Properties: map[string]*huma.Schema{
			"kind": {Type: huma.TypeString, Enum: []any{string(service.KindBuild), string(service.KindFamily)}, Default: string(service.KindBuild),
				Description: "What the document is: build params (imagebuilder build) or a family file (imagebuilder family build)."},
			"document": {Description: "The build params or family file: a JSON object, or its JSON or YAML text as a string.",
				AnyOf: []*huma.Schema{{Ref: schemaRef(buildParamsName)}, {Ref: schemaRef(familyName)}, {Type: huma.TypeString}}},
			"dry_run": {Type: huma.TypeBoolean, Default: false,
				Description: "Plan only: resolve and report what would be built, build nothing (imagebuilder build --dry-run)."},
		},
	}
}

// decodeSubmit reads a SubmitRequest strictly; problems are located by JSON pointers into the
// body.
func decodeSubmit(body []byte) (*SubmitRequest, []byte, error) {
	invalid := func(pointer, msg string) error {
		return problem(http.StatusBadRequest, "invalid request", &huma.ErrorDetail{Location: pointer, Message: msg})
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req SubmitRequest
	if err := dec.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return nil, nil, invalid("/"+strings.ReplaceAll(te.Field, ".", "/"), "must be a "+te.Type.Kind().String()+", not a JSON "+te.Value)
		case errors.As(err, &te):
			return nil, nil, invalid("", "must be a JSON object, not a JSON "+te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return nil, nil, invalid("/"+name, "unknown property (want kind, document and dry_run)")
		case errors.Is(err, io.EOF):
			return nil, nil, invalid("", "the request has no body")
		}
		return nil, nil, invalid("", "not valid JSON: "+err.Error())
	}
	if dec.More() {
		return nil, nil, invalid("", "not valid JSON: data after the request object")
	}
	switch req.Kind {
	case "":
		req.Kind = service.KindBuild
	case service.KindBuild, service.KindFamily:
	default:
		return nil, nil, invalid("/kind", "must be build or family")
	}
	doc := bytes.TrimSpace(req.Document)
	switch {
	case len(doc) == 0 || string(doc) == "null":
		return nil, nil, invalid("/document", "required: the build params or family file")
	case doc[0] == '"':
		var text string
		if err := json.Unmarshal(doc, &text); err != nil {
			return nil, nil, invalid("/document", "not a valid JSON string")
		}
		return &req, []byte(text), nil
	case doc[0] != '{':
		return nil, nil, invalid("/document", "must be an object (the document) or a string (its JSON or YAML text)")
	}
	return &req, doc, nil
}

type submitOutput struct {
	Body *service.Invocation
}

type listInput struct {
	State  []string `query:"state" minItems:"1" enum:"pending,in_progress,success,failed,canceled" doc:"Only invocations in these states (comma-separated)."`
	Kind   string   `query:"kind" enum:"build,family" doc:"Only invocations of this kind."`
	Owner  string   `query:"owner" doc:"Only this owner's invocations (admins; others always see their own)."`
	Limit  int      `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"Page size."`
	Cursor string   `query:"cursor" doc:"The next_cursor of the previous page."`
}

type listOutput struct {
	Body *service.Page
}

type idInput struct {
	ID string `path:"id" doc:"The invocation id."`
}

type invocationOutput struct {
	Body *service.Invocation
}

type cancelOutput struct {
	Body *service.Invocation
}

// errs lists an operation's error statuses (huma adds 422 and 500).
func errs(codes ...int) []int {
	return append([]int{http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusServiceUnavailable}, codes...)
}

func (s *Server) registerV1(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID:      "submit",
		Method:           http.MethodPost,
		Path:             "/v1/invocations",
		Summary:          "Submit build params or a family file",
		Description:      "Validates the document (every problem with its JSON pointer, 400) and queues it.",
		Tags:             []string{"invocations"},
		Security:         secured,
		DefaultStatus:    http.StatusAccepted,
		SkipValidateBody: true,
		Errors:           errs(http.StatusBadRequest),
	}, func(ctx context.Context, in *rawBody) (*submitOutput, error) {
		req, doc, err := decodeSubmit(in.RawBody)
		if err != nil {
			return nil, err
		}
		what := "build params"
		if req.Kind == service.KindFamily {
			what = "family file"
		}
		inv, err := s.backend.Submit(ctx, principal(ctx), req.Kind, doc, req.DryRun)
		if err != nil {
			return nil, s.fail(err, what, "/document")
		}
		return &submitOutput{Body: inv}, nil
	})
	api.OpenAPI().Components.Schemas.Map()[submitRequestName] = submitRequestSchema()
	setRequestSchema(api, http.MethodPost, "/v1/invocations", &huma.Schema{Ref: schemaRef(submitRequestName)})

	huma.Register(api, huma.Operation{
		OperationID: "list",
		Method:      http.MethodGet,
		Path:        "/v1/invocations",
		Summary:     "List invocations, newest first",
		Description: "A caller sees its own invocations; an admin sees everyone's.",
		Tags:        []string{"invocations"},
		Security:    secured,
		Errors:      errs(http.StatusBadRequest),
	}, func(ctx context.Context, in *listInput) (*listOutput, error) {
		f := service.Filter{Kind: service.Kind(in.Kind), Owner: in.Owner, Limit: in.Limit, Cursor: in.Cursor}
		for _, st := range in.State {
			f.States = append(f.States, service.State(st))
		}
		page, err := s.backend.List(ctx, principal(ctx), f)
		if err != nil {
			return nil, s.fail(err, "request", "")
		}
		return &listOutput{Body: page}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "get",
		Method:      http.MethodGet,
		Path:        "/v1/invocations/{id}",
		Summary:     "Get an invocation",
		Description: "The invocation with its masked document and, once it ended, its full result facts (references, digests, platforms).",
		Tags:        []string{"invocations"},
		Security:    secured,
		Errors:      errs(http.StatusNotFound),
	}, func(ctx context.Context, in *idInput) (*invocationOutput, error) {
		inv, err := s.backend.Get(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(err, "request", "")
		}
		return &invocationOutput{Body: inv}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID:   "cancel",
		Method:        http.MethodPost,
		Path:          "/v1/invocations/{id}/cancel",
		Summary:       "Cancel an invocation",
		Description:   "A queued invocation is canceled at once; a running one when its worker notices (about a second). 409 when it already ended.",
		Tags:          []string{"invocations"},
		Security:      secured,
		DefaultStatus: http.StatusAccepted,
		Errors:        errs(http.StatusNotFound, http.StatusConflict),
	}, func(ctx context.Context, in *idInput) (*cancelOutput, error) {
		inv, err := s.backend.Cancel(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(err, "request", "")
		}
		return &cancelOutput{Body: inv}, nil
	})

	s.registerLogs(api)
}
