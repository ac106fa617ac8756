package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestBuildersListsPlugins builds the plugin skeleton of examples/builder-plugin (so that it
// keeps compiling) as a plugin program, and checks that `imagebuilder builders` finds it in
// IMAGEBUILDER_PLUGIN_PATH and reports its Info, beside the built-in drivers.
func TestBuildersListsPlugins(t *testing.T) {
	cleanEndpointEnv(t)
	dir := t.TempDir()
	prog := filepath.Join(dir, "imagebuilder-builder-example")
	if out, err := exec.Command("go", "build", "-o", prog, "../../examples/builder-plugin").CombinedOutput(); err != nil {
		t.Fatalf("building the plugin skeleton: %v\n%s", err, out)
	}
	t.Setenv("IMAGEBUILDER_PLUGIN_PATH", dir)
	code, stdout, stderr := ib(t, "", "builders")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got buildersList
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if len(got.Builtin) != 2 || got.Builtin[0].Kind != "buildkit" || got.Builtin[1].Kind != "docker" {
		t.Errorf("builtin %+v", got.Builtin)
	}
	if got.Default == nil || got.Default.Kind != "docker" {
		t.Errorf("default %+v", got.Default)
	}
	if len(got.SearchPath) == 0 || got.SearchPath[0] != dir {
		t.Errorf("search path %v does not start with IMAGEBUILDER_PLUGIN_PATH", got.SearchPath)
	}
	var found *pluginEntry
	for i, p := range got.Plugins {
		if p.Name == "example" {
			found = &got.Plugins[i]
		}
	}
	if found == nil {
		t.Fatalf("the example plugin is not listed: %s", stdout)
	}
	native := runtime.GOOS + "/" + runtime.GOARCH
	if found.Path != prog || found.Endpoint != "plugin:example" || found.Error != "" || found.Info == nil ||
		found.Info.Version != "0.1.0" || found.Info.Kind != "example" || len(found.Info.Platforms) != 1 || found.Info.Platforms[0] != native {
		t.Errorf("example plugin %+v (info %+v)", found, found.Info)
	}
	// yaml too; anything else is a usage error.
	if code, _, stderr := ib(t, "", "builders", "--output", "yaml"); code != 0 {
		t.Errorf("--output yaml: exit %d: %s", code, stderr)
	}
	if code, _, _ := ib(t, "", "builders", "--output", "xml"); code != exitInvalid {
		t.Errorf("--output xml: exit %d, want %d", code, exitInvalid)
	}
}
