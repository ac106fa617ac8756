package ansible

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// serve runs m on the argument document args and decodes the one JSON object it writes.
func serve(t *testing.T, m Module, args string, log *bytes.Buffer) (doc map[string]any, code int, raw string) {
	t.Helper()
	var out bytes.Buffer
	s := Streams{Stdin: strings.NewReader(args), Stdout: &out}
	if log != nil {
		s.Log = log
	}
	code = m.Serve(context.Background(), s)
	dec := json.NewDecoder(bytes.NewReader(out.Bytes()))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, out.String())
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value:\n%s", out.String())
	}
	if !strings.HasSuffix(out.String(), "}\n") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("stdout is not exactly one line of JSON: %q", out.String())
	}
	for _, k := range []string{"changed", "failed", "msg", "warnings"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("result has no %q: %s", k, out.String())
		}
	}
	return doc, code, out.String()
}

const canary = "canary-Pw-9e1f"

func TestServe(t *testing.T) {
	spec := Spec{
		"password": {Type: "str", NoLog: true},
		"tag":      {Type: "str"},
		"nested":   {Type: "dict", Options: Spec{"token": {Type: "str", NoLog: true}}},
	}
	for _, tt := range []struct {
		name     string
		args     string
		run      func(ctx context.Context, req *Request) *Response
		wantCode int
		check    func(t *testing.T, doc map[string]any, raw string)
	}{
		{
			name: "success with facts",
			args: `{"tag": "v1", "_ansible_check_mode": true}`,
			run: func(_ context.Context, req *Request) *Response {
				return &Response{Changed: req.CheckMode, Msg: "ok", Facts: map[string]any{"tag": req.Options["tag"], "failed": "ignored"}}
			},
			check: func(t *testing.T, doc map[string]any, _ string) {
				if doc["changed"] != true || doc["failed"] != false || doc["tag"] != "v1" || doc["msg"] != "ok" {
					t.Errorf("result: %v", doc)
				}
			},
		},
		{
			name: "secrets masked everywhere, keys included",
			args: `{"password": "` + canary + `", "nested": {"token": "tok-3b7c"}}`,
			run: func(_ context.Context, req *Request) *Response {
				return &Response{
					Failed: true, Msg: "login with " + canary + " failed", Warnings: []string{"token tok-3b7c"},
					Facts: map[string]any{"error": map[string]any{canary: []any{"x" + canary + "x", "tok-3b7c"}}},
					Diff:  &Diff{Before: canary, After: "tok-3b7c"}, Exception: "trace " + canary,
				}
			},
			wantCode: 1,
			check: func(t *testing.T, doc map[string]any, raw string) {
				if strings.Contains(raw, canary) || strings.Contains(raw, "tok-3b7c") {
					t.Errorf("a secret is in the result: %s", raw)
				}
				if !strings.Contains(raw, redact.Mask) {
					t.Errorf("nothing masked: %s", raw)
				}
			},
		},
		{
			name: "a secret that looks like JSON syntax keeps the JSON valid",
			args: `{"password": "true"}`,
			run: func(context.Context, *Request) *Response {
				return &Response{Changed: true, Msg: "true", Facts: map[string]any{"x": true}}
			},
			check: func(t *testing.T, doc map[string]any, _ string) {
				if doc["changed"] != true || doc["x"] != true || doc["msg"] != redact.Mask {
					t.Errorf("result: %v", doc)
				}
			},
		},
		{
			name: "panic becomes a failed result",
			args: `{"password": "` + canary + `"}`,
			run: func(context.Context, *Request) *Response {
				panic("boom with " + canary)
			},
			wantCode: 1,
			check: func(t *testing.T, doc map[string]any, raw string) {
				if doc["failed"] != true || !strings.Contains(doc["msg"].(string), "internal error: boom") {
					t.Errorf("result: %v", doc)
				}
				if !strings.Contains(doc["exception"].(string), "goroutine") || strings.Contains(raw, canary) {
					t.Errorf("exception: %v", doc["exception"])
				}
			},
		},
		{
			name:     "nil response",
			args:     `{}`,
			run:      func(context.Context, *Request) *Response { return nil },
			wantCode: 1,
			check: func(t *testing.T, doc map[string]any, _ string) {
				if doc["failed"] != true || !strings.Contains(doc["msg"].(string), "no result") {
					t.Errorf("result: %v", doc)
				}
			},
		},
		{
			name:     "bad arguments never reach the module",
			args:     `not json`,
			run:      func(context.Context, *Request) *Response { panic("must not run") },
			wantCode: 1,
			check: func(t *testing.T, doc map[string]any, _ string) {
				if doc["failed"] != true || !strings.HasPrefix(doc["msg"].(string), "test: reading module arguments: not JSON") {
					t.Errorf("result: %v", doc)
				}
			},
		},
		{
			name: "conversion warnings come first",
			args: `{"tag": 1.10}`,
			run: func(_ context.Context, req *Request) *Response {
				return &Response{Warnings: []string{"module"}, Facts: map[string]any{"tag": req.Options["tag"]}}
			},
			check: func(t *testing.T, doc map[string]any, _ string) {
				w := doc["warnings"].([]any)
				if doc["tag"] != "1.10" || len(w) != 2 || w[1] != "module" {
					t.Errorf("result: %v", doc)
				}
			},
		},
		{
			name: "facts that cannot be encoded",
			args: `{}`,
			run: func(context.Context, *Request) *Response {
				return &Response{Facts: map[string]any{"f": func() {}}}
			},
			wantCode: 0, // the response did not fail, but the result says so
			check: func(t *testing.T, doc map[string]any, _ string) {
				if doc["failed"] != true || !strings.Contains(doc["msg"].(string), "encoding the module result") {
					t.Errorf("result: %v", doc)
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc, code, raw := serve(t, Module{Name: "test", Spec: spec, Run: tt.run}, tt.args, nil)
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d", code, tt.wantCode)
			}
			tt.check(t, doc, raw)
		})
	}
}

func TestServeLog(t *testing.T) {
	m := Module{Name: "test", Spec: Spec{"password": {Type: "str", NoLog: true}}, Run: func(_ context.Context, req *Request) *Response {
		if req.Log == nil {
			t.Fatal("no log writer")
		}
		_, _ = req.Log.Write([]byte("step 1 with " + canary + "\nstep 2 without newline " + canary))
		return &Response{}
	}}
	var log bytes.Buffer
	serve(t, m, `{"password": "`+canary+`"}`, &log)
	if strings.Contains(log.String(), canary) || !strings.Contains(log.String(), "step 2 without newline "+redact.Mask) {
		t.Errorf("log: %q", log.String())
	}
	m.Run = func(_ context.Context, req *Request) *Response {
		if req.Log != nil {
			t.Error("a log writer without a log")
		}
		return &Response{}
	}
	serve(t, m, `{}`, nil)
}

// TestMainReservesStdout runs Main in a child process whose module prints to stdout directly,
// through os.Stdout and through file descriptor 1: only the JSON result may come out.
func TestMainReservesStdout(t *testing.T) {
	if args := os.Getenv("ANSIBLE_TEST_CHILD_ARGS"); args != "" {
		os.Args = []string{os.Args[0], args}
		os.Exit(Main(Module{Name: "child", Run: func(context.Context, *Request) *Response {
			os.Stdout.WriteString("noise via os.Stdout\n")
			os.NewFile(1, "fd1").WriteString("noise via fd 1\n")
			cmd := exec.Command("echo", "noise from a child process")
			cmd.Stdout = os.Stdout
			_ = cmd.Run()
			return &Response{Changed: true, Msg: "done"}
		}}))
	}
	args := t.TempDir() + "/args"
	if err := os.WriteFile(args, []byte(`{"_ansible_check_mode": false}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainReservesStdout$")
	cmd.Env = append(os.Environ(), "ANSIBLE_TEST_CHILD_ARGS="+args)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if string(out) != `{"changed":true,"failed":false,"msg":"done","warnings":[]}`+"\n" {
		t.Errorf("stdout = %q", out)
	}
}
