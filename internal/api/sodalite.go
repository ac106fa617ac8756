package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/imagebuilder/imagebuilder/internal/service"
)

// SODALITE's operation ids (its openapi-spec.yml): their errors are JSON strings.
const (
	opPostBuild = "post_build"
	opGetStatus = "get_status"
)

func isSODALITE(op *huma.Operation) bool {
	return op.OperationID == opPostBuild || op.OperationID == opGetStatus
}

// rawBody is the input of an operation whose body the handler decodes itself (the service
// validates documents with the shared schemas; huma only reads the bytes).
type rawBody struct {
	RawBody []byte `contentType:"application/json"`
}

// BuildingStarted is SODALITE's answer to POST /build/.
type BuildingStarted struct {
	InvocationID string `json:"invocation_id" format:"uuid" doc:"Id of image-building job"`
}

type buildingStartedOutput struct {
	Body BuildingStarted
}

// Status is SODALITE's invocation, as GET /status/{invocation_id} answers it.
type Status struct {
	InvocationID        string          `json:"invocation_id" format:"uuid" doc:"Id of image-building job"`
	State               string          `json:"state" enum:"pending,in_progress,success,failed" doc:"The invocation's state (a canceled invocation reads failed)."`
	TimestampSubmission time.Time       `json:"timestamp_submission" doc:"An ISO8601 timestamp of submission of invocation."`
	TimestampStart      *time.Time      `json:"timestamp_start,omitempty" doc:"An ISO8601 timestamp of start of image-building"`
	TimestampEnd        *time.Time      `json:"timestamp_end,omitempty" doc:"An ISO8601 timestamp of end of image-building"`
	BuildParams         json.RawMessage `json:"build_params,omitempty" doc:"The submitted build params, every secret masked."`
	Response            string          `json:"response,omitempty" doc:"Once ended: on success the result facts (JSON text: references, digests, platforms), on failure the error."`
}

type statusInput struct {
	InvocationID string `path:"invocation_id" doc:"Id of image-building Invocation"`
}

type statusOutput struct {
	Body Status
}

// sodaliteStatus is inv as SODALITE reports it.
func sodaliteStatus(inv *service.Invocation) Status {
	st := Status{
		InvocationID:        inv.ID,
		State:               string(inv.State),
		TimestampSubmission: inv.Submitted,
		TimestampStart:      inv.Started,
		TimestampEnd:        inv.Ended,
		BuildParams:         inv.Document,
	}
	switch inv.State {
	case service.Canceled:
		st.State = string(service.Failed)
		st.Response = inv.Error
	case service.Failed:
		st.Response = inv.Error
	case service.Success:
		st.Response = string(inv.Result)
	}
	return st
}

// stringResponse is a response of SODALITE's whose body is a JSON string.
func stringResponse(desc string) *huma.Response {
	return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{
		"application/json": {Schema: &huma.Schema{Type: huma.TypeString}},
	}}
}

func (s *Server) registerSODALITE(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID:      opPostBuild,
		Method:           http.MethodPost,
		Path:             "/build/",
		Summary:          "Request building image (SODALITE)",
		Description:      "Queues a build of the build params (SODALITE image-builder's API). The params are validated before anything is queued: 400 lists every problem with its JSON pointer.",
		Tags:             []string{"SODALITE"},
		Security:         secured,
		DefaultStatus:    http.StatusAccepted,
		SkipValidateBody: true,
		Responses: map[string]*huma.Response{
			"400":     stringResponse("Bad request: the problems, one per line, each with its JSON pointer"),
			"401":     stringResponse("Unauthorized request"),
			"default": stringResponse("Error"),
		},
	}, func(ctx context.Context, in *rawBody) (*buildingStartedOutput, error) {
		inv, err := s.backend.Submit(ctx, principal(ctx), service.KindBuild, in.RawBody, false)
		if err != nil {
			return nil, s.fail(err, "build params", "")
		}
		return &buildingStartedOutput{Body: BuildingStarted{InvocationID: inv.ID}}, nil
	})
	setRequestSchema(api, http.MethodPost, "/build/", &huma.Schema{Ref: schemaRef(buildParamsName)})

	huma.Register(api, huma.Operation{
		OperationID: opGetStatus,
		Method:      http.MethodGet,
		Path:        "/status/{invocation_id}",
		Summary:     "Check status (SODALITE)",
		Description: "The invocation's state, timestamps, masked build params and, once it ended, its result or error (SODALITE image-builder's API).",
		Tags:        []string{"SODALITE"},
		Security:    secured,
		Responses: map[string]*huma.Response{
			"401":     stringResponse("Unauthorized request"),
			"404":     stringResponse("Invocation not found"),
			"default": stringResponse("Error"),
		},
	}, func(ctx context.Context, in *statusInput) (*statusOutput, error) {
		inv, err := s.backend.Get(ctx, principal(ctx), in.InvocationID)
		if err != nil {
			return nil, s.fail(err, "request", "")
		}
		return &statusOutput{Body: sodaliteStatus(inv)}, nil
	})
}

// setRequestSchema makes the registered operation's JSON request body schema the given one:
// huma reads such a body as raw bytes (rawBody), for the service to validate.
func setRequestSchema(api huma.API, method, path string, schema *huma.Schema) {
	item := api.OpenAPI().Paths[path]
	op := item.Get
	if method == http.MethodPost {
		op = item.Post
	}
	op.RequestBody.Content["application/json"].Schema = schema
}
