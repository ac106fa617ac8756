package service

import (
	"encoding/json"
	"errors"
	"time"
)

// State is where an invocation is in its life. The first four are SODALITE's; canceled is ours
// (SODALITE's /status reports it as failed).
type State string

// States of an invocation.
const (
	Pending    State = "pending"     // queued, not started
	InProgress State = "in_progress" // a worker runs it
	Success    State = "success"     // it ended and did what it was asked
	Failed     State = "failed"      // it ended with a failure (Invocation.Error says why)
	Canceled   State = "canceled"    // a caller canceled it
)

// Ended reports whether the state is final.
func (s State) Ended() bool { return s == Success || s == Failed || s == Canceled }

// Kind is what an invocation runs.
type Kind string

// Kinds of invocation.
const (
	KindBuild  Kind = "build"  // build params (imagebuilder build)
	KindFamily Kind = "family" // a family file (imagebuilder family build)
)

// Invocation is one submitted request and what became of it. Document never holds a secret: it
// is the submitted document with every writeOnly value masked and every URL redacted.
type Invocation struct {
	ID        string          `json:"invocation_id"`
	Kind      Kind            `json:"kind" enum:"build,family"`
	Owner     string          `json:"owner"`
	State     State           `json:"state" enum:"pending,in_progress,success,failed,canceled"`
	Submitted time.Time       `json:"timestamp_submission"`
	Started   *time.Time      `json:"timestamp_start,omitempty"`
	Ended     *time.Time      `json:"timestamp_end,omitempty"`
	Document  json.RawMessage `json:"build_params"`
	DryRun    bool            `json:"dry_run,omitempty"`
	// Result is the run's facts once it ended: result.Result for a build, result.Report for a
	// family (null before).
	Result json.RawMessage `json:"result,omitempty"`
	// Error says why it failed or was canceled (redacted; names the step and the image).
	Error string `json:"error,omitempty"`
	// Attempt counts the runs started (more than 1 when a replica died under a run).
	Attempt int `json:"attempt"`
	// Images are the references the invocation builds, for lists.
	Images []string `json:"images"`
}

// Principal is an authenticated caller. A caller sees only its own invocations unless Admin.
type Principal struct {
	Name  string
	Admin bool
}

// Filter selects invocations for List.
type Filter struct {
	States []State
	Kind   Kind
	Owner  string // admins only; others always see their own
	Limit  int    // 1..100; 0 means 20
	Cursor string // from Page.NextCursor
}

// Page is one page of invocations, newest first.
type Page struct {
	Items      []Invocation `json:"items"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// LogLine is one line of an invocation's log (redacted).
type LogLine struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// Key is an API key's record (the key itself is shown once, at creation, and stored hashed).
type Key struct {
	Name     string     `json:"name"`
	Admin    bool       `json:"admin"`
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used,omitempty"`
	Revoked  *time.Time `json:"revoked,omitempty"`
}

// FieldError is one problem with a submitted document: a JSON pointer and a message that quotes
// no secret.
type FieldError struct {
	Pointer string `json:"location"`
	Message string `json:"message"`
}

// ValidationError is a document refused at submission, before anything is queued.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	msg := "invalid document"
	for _, f := range e.Errors {
		msg += "\n  " + f.Pointer + ": " + f.Message
	}
	return msg
}

// Errors callers map to HTTP statuses.
var (
	ErrNotFound     = errors.New("invocation not found")     // 404 (also another owner's)
	ErrEnded        = errors.New("invocation already ended") // 409 for cancel
	ErrUnauthorized = errors.New("unauthorized")             // 401: unknown or revoked key
	ErrKeyExists    = errors.New("api key name already used")
)
