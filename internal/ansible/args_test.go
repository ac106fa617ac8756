package ansible

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	for _, tt := range []struct {
		name     string
		in       string
		options  map[string]any
		internal []string
		check    func(t *testing.T, r *Request)
		wantErr  string
	}{
		{
			name: "flat, as ansible-core writes the args file",
			in: `{"source": {"local": {"path": "/src"}}, "_ansible_check_mode": true, "_ansible_diff": false,
				"_ansible_verbosity": 3, "_ansible_module_name": "imagebuilder.images.image_build",
				"_ansible_version": "2.19.14", "_ansible_tmpdir": "/root/.ansible/tmp/x", "_ansible_no_log": false}`,
			options:  map[string]any{"source": map[string]any{"local": map[string]any{"path": "/src"}}},
			internal: []string{"_ansible_check_mode", "_ansible_diff", "_ansible_module_name", "_ansible_no_log", "_ansible_tmpdir", "_ansible_verbosity", "_ansible_version"},
			check: func(t *testing.T, r *Request) {
				if !r.CheckMode || r.Diff || r.NoLog || r.Verbosity != 3 || r.ModuleName != "imagebuilder.images.image_build" ||
					r.AnsibleVersion != "2.19.14" || r.TmpDir != "/root/.ansible/tmp/x" {
					t.Errorf("internal fields: %+v", r)
				}
			},
		},
		{
			name:     "wrapper, as people write it by hand",
			in:       `{"ANSIBLE_MODULE_ARGS": {"target": {}, "_ansible_diff": true}}`,
			options:  map[string]any{"target": map[string]any{}},
			internal: []string{"_ansible_diff"},
			check: func(t *testing.T, r *Request) {
				if !r.Diff {
					t.Error("diff not read from the wrapper")
				}
			},
		},
		{
			name:    "a key named like the wrapper beside others is an option",
			in:      `{"ANSIBLE_MODULE_ARGS": {}, "source": {}}`,
			options: map[string]any{"ANSIBLE_MODULE_ARGS": map[string]any{}, "source": map[string]any{}},
		},
		{
			name: "internal keys are lenient: unknown ones kept, odd types tolerated",
			in: `{"_ansible_future_thing": {"x": [1]}, "_ansible_check_mode": "yes", "_ansible_diff": 1,
				"_ansible_verbosity": "2", "_ansible_tmpdir": null, "_ansible_module_name": 7}`,
			options:  map[string]any{},
			internal: []string{"_ansible_check_mode", "_ansible_diff", "_ansible_future_thing", "_ansible_module_name", "_ansible_tmpdir", "_ansible_verbosity"},
			check: func(t *testing.T, r *Request) {
				if !r.CheckMode || !r.Diff || r.Verbosity != 2 || r.TmpDir != "" || r.ModuleName != "" {
					t.Errorf("lenient reading: %+v", r)
				}
			},
		},
		{
			name:    "numbers stay json.Number",
			in:      `{"tag": 1.10}`,
			options: map[string]any{"tag": json.Number("1.10")},
		},
		{name: "empty", in: "", wantErr: "the argument document is empty"},
		{name: "not JSON", in: "source=x tag=y", wantErr: "not JSON"},
		{name: "array", in: `[{"source": {}}]`, wantErr: "want a JSON object, got an array"},
		{name: "trailing data", in: `{} {}`, wantErr: "unexpected data after the JSON object"},
		{name: "wrapper not an object", in: `{"ANSIBLE_MODULE_ARGS": "x"}`, wantErr: "ANSIBLE_MODULE_ARGS must be a JSON object, got a string"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseArgs([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrArgs) {
					t.Fatalf("error = %v, want %q (wrapping ErrArgs)", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.Options, tt.options) {
				t.Errorf("options = %#v, want %#v", r.Options, tt.options)
			}
			if got := slices.Sorted(maps.Keys(r.Internal)); strings.Join(got, ",") != strings.Join(tt.internal, ",") {
				t.Errorf("internal keys = %v, want %v", got, tt.internal)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestReadArgs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "args")
	if err := os.WriteFile(path, []byte(`{"a": "file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	stdin := strings.NewReader(`{"a": "stdin"}`)
	for _, tt := range []struct {
		argv []string
		want string
	}{
		{[]string{path}, "file"},
		{nil, "stdin"},
	} {
		r, err := ReadArgs(tt.argv, stdin)
		if err != nil {
			t.Fatal(err)
		}
		if r.Options["a"] != tt.want {
			t.Errorf("ReadArgs(%v) read %v", tt.argv, r.Options["a"])
		}
	}
	if _, err := ReadArgs([]string{filepath.Join(t.TempDir(), "missing")}, nil); !errors.Is(err, ErrArgs) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// FuzzParseArgs: any input either fails with ErrArgs or yields options without _ansible_ keys.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{
		`{"source": {"git_repo": {"url": "x"}}, "_ansible_check_mode": true}`,
		`{"ANSIBLE_MODULE_ARGS": {"_ansible_diff": "yes"}}`,
		`[]`, `"x"`, `{"a": 1e999}`, "", `{"_ansible_verbosity": "99999999999999999999"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseArgs(data)
		if err != nil {
			if !errors.Is(err, ErrArgs) {
				t.Fatalf("error does not wrap ErrArgs: %v", err)
			}
			return
		}
		for k := range r.Options {
			if strings.HasPrefix(k, internalPrefix) {
				t.Fatalf("internal key %q among the options", k)
			}
		}
		for k := range r.Internal {
			if !strings.HasPrefix(k, internalPrefix) {
				t.Fatalf("option %q among the internal keys", k)
			}
		}
	})
}
