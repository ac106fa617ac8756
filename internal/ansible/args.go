package ansible

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// internalPrefix marks the keys ansible-core adds to a module's arguments.
const internalPrefix = "_ansible_"

// wrapperKey is the key of the wrapper object AnsiballZ modules read; binary modules get the flat
// object, but people testing a module by hand often write the wrapper.
const wrapperKey = "ANSIBLE_MODULE_ARGS"

// ErrArgs is wrapped by errors about the argument document itself (not JSON, not an object).
var ErrArgs = errors.New("reading module arguments")

// Request is one invocation of a module: the user's options and what ansible-core said about
// the task.
type Request struct {
	// Options are the task's options, every key not starting with _ansible_. Numbers are
	// json.Number, as the schema validator expects.
	Options map[string]any
	// Internal holds every _ansible_* key as sent. The fields below are read from it leniently:
	// a key that is missing or of an unexpected type leaves the field at its zero value.
	Internal map[string]any

	CheckMode      bool   // _ansible_check_mode: report what would change, change nothing
	Diff           bool   // _ansible_diff: return a diff of what changed
	NoLog          bool   // _ansible_no_log: the task's no_log (ansible-core censors the result itself)
	Verbosity      int    // _ansible_verbosity: the -v count
	ModuleName     string // _ansible_module_name: the name the task used (may be an FQCN)
	AnsibleVersion string // _ansible_version
	TmpDir         string // _ansible_tmpdir: the task's remote temporary directory, which ansible-core removes ("" when pipelining)

	// Log receives the module's log lines and progress, secrets masked; nil when no log is
	// kept (see LogEnv), so a module can skip rendering it.
	Log io.Writer
	// Redactor masks the response and the log. It starts with the options' secrets (no_log
	// options, credentials in URLs); a module passes it on to the work it runs, which adds what
	// it learns, so the response masks that too.
	Redactor *redact.Redactor
}

// ReadArgs reads the argument document of a module: the file named by the first command-line
// argument (how ansible-core runs a binary module), or standard input when there is none.
func ReadArgs(argv []string, stdin io.Reader) (*Request, error) {
	var (
		data []byte
		err  error
	)
	if len(argv) > 0 && argv[0] != "" && argv[0] != "-" {
		data, err = os.ReadFile(argv[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrArgs, err)
		}
	} else {
		data, err = io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("%w: reading standard input: %w", ErrArgs, err)
		}
	}
	return ParseArgs(data)
}

// ParseArgs parses an argument document: a flat JSON object of options and _ansible_* keys, or
// the same object wrapped as {"ANSIBLE_MODULE_ARGS": {...}}.
func ParseArgs(data []byte) (*Request, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%w: the argument document is empty", ErrArgs)
		}
		return nil, fmt.Errorf("%w: not JSON: %w", ErrArgs, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: unexpected data after the JSON object", ErrArgs)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: want a JSON object, got %s", ErrArgs, jsonType(doc))
	}
	if inner, ok := obj[wrapperKey]; ok && len(obj) == 1 {
		if obj, ok = inner.(map[string]any); !ok {
			return nil, fmt.Errorf("%w: %s must be a JSON object, got %s", ErrArgs, wrapperKey, jsonType(inner))
		}
	}
	r := &Request{Options: map[string]any{}, Internal: map[string]any{}}
	for k, v := range obj {
		if strings.HasPrefix(k, internalPrefix) {
			r.Internal[k] = v
		} else {
			r.Options[k] = v
		}
	}
	r.CheckMode = boolish(r.Internal["_ansible_check_mode"])
	r.Diff = boolish(r.Internal["_ansible_diff"])
	r.NoLog = boolish(r.Internal["_ansible_no_log"])
	r.Verbosity = intish(r.Internal["_ansible_verbosity"])
	r.ModuleName, _ = r.Internal["_ansible_module_name"].(string)
	r.AnsibleVersion, _ = r.Internal["_ansible_version"].(string)
	r.TmpDir, _ = r.Internal["_ansible_tmpdir"].(string)
	return r, nil
}

// boolish reads a boolean the way Ansible does: true, 1, "yes", "true", "on", "1", "y", "t".
func boolish(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case json.Number:
		return v.String() == "1"
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "1", "y", "yes", "t", "true", "on":
			return true
		}
	}
	return false
}

func intish(v any) int {
	switch v := v.(type) {
	case json.Number:
		n, _ := strconv.Atoi(v.String())
		return n
	case string:
		n, _ := strconv.Atoi(strings.TrimSpace(v))
		return n
	}
	return 0
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
