package testenv

import (
	"strings"
	"testing"
)

// fakeTB records Skip and Fatal instead of stopping the goroutine.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

type stop struct{}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.skipped, f.msg = true, args[0].(string)
	panic(stop{})
}
func (f *fakeTB) Fatal(args ...any) {
	f.failed, f.msg = true, args[0].(string)
	panic(stop{})
}

func run(f *fakeTB, vars ...string) (values map[string]string) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stop); !ok {
				panic(r)
			}
		}
	}()
	return Require(f, vars...)
}

func TestRequire(t *testing.T) {
	t.Setenv("IMAGEBUILDER_TEST_X_SET", "value")
	t.Setenv("IMAGEBUILDER_TEST_X_EMPTY", "")

	tests := []struct {
		name        string
		require     string
		vars        []string
		wantValues  map[string]string
		wantSkipped bool
		wantFailed  bool
	}{
		{name: "all set", vars: []string{"IMAGEBUILDER_TEST_X_SET"}, wantValues: map[string]string{"IMAGEBUILDER_TEST_X_SET": "value"}},
		{name: "missing skips", vars: []string{"IMAGEBUILDER_TEST_X_SET", "IMAGEBUILDER_TEST_X_UNSET"}, wantSkipped: true},
		{name: "empty skips", vars: []string{"IMAGEBUILDER_TEST_X_EMPTY"}, wantSkipped: true},
		{name: "missing fails when required", require: "1", vars: []string{"IMAGEBUILDER_TEST_X_UNSET"}, wantFailed: true},
		{name: "missing fails when required=true", require: "true", vars: []string{"IMAGEBUILDER_TEST_X_UNSET"}, wantFailed: true},
		{name: "missing fails when required=TRUE", require: " TRUE ", vars: []string{"IMAGEBUILDER_TEST_X_UNSET"}, wantFailed: true},
		{name: "required but present", require: "true", vars: []string{"IMAGEBUILDER_TEST_X_SET"}, wantValues: map[string]string{"IMAGEBUILDER_TEST_X_SET": "value"}},
		{name: "require=0 skips", require: "0", vars: []string{"IMAGEBUILDER_TEST_X_UNSET"}, wantSkipped: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(RequireIntegration, tt.require)
			f := &fakeTB{}
			got := run(f, tt.vars...)
			if f.skipped != tt.wantSkipped || f.failed != tt.wantFailed {
				t.Fatalf("skipped=%v failed=%v (%q), want skipped=%v failed=%v", f.skipped, f.failed, f.msg, tt.wantSkipped, tt.wantFailed)
			}
			if f.skipped || f.failed {
				for _, v := range tt.vars {
					if v == "IMAGEBUILDER_TEST_X_UNSET" && !strings.Contains(f.msg, v) {
						t.Errorf("message %q does not name %s", f.msg, v)
					}
				}
				return
			}
			if len(got) != len(tt.wantValues) {
				t.Fatalf("values = %v, want %v", got, tt.wantValues)
			}
			for k, v := range tt.wantValues {
				if got[k] != v {
					t.Errorf("values[%s] = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestRequireProgram(t *testing.T) {
	call := func(name string) (path string, f *fakeTB) {
		f = &fakeTB{}
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stop); !ok {
					panic(r)
				}
			}
		}()
		return RequireProgram(f, name, "the test program"), f
	}
	t.Setenv(RequireIntegration, "1")
	if path, f := call("sh"); path == "" || f.skipped || f.failed {
		t.Errorf("sh: path %q, skipped=%v failed=%v (%s)", path, f.skipped, f.failed, f.msg)
	}
	if _, f := call("imagebuilder-no-such-program"); !f.failed || !strings.Contains(f.msg, "the test program") {
		t.Errorf("missing program, required: failed=%v (%q), want a failure naming it", f.failed, f.msg)
	}
	t.Setenv(RequireIntegration, "")
	if _, f := call("imagebuilder-no-such-program"); !f.skipped || f.failed {
		t.Errorf("missing program: skipped=%v failed=%v, want a skip", f.skipped, f.failed)
	}
}
