package main

import (
	"context"
	"net/url"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/builder/conformance"
	"github.com/imagebuilder/imagebuilder/internal/builder/plugin"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestConformance runs the builder conformance suite on this plugin program, built and opened
// as imagebuilder opens it (plugin:buildah from IMAGEBUILDER_PLUGIN_PATH), on a storage
// directory of its own.
func TestConformance(t *testing.T) {
	env, _ := conformance.TestEnv(t)
	testenv.Buildah(t)
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, plugin.ProgramPrefix+"buildah"), ".").CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	t.Setenv(plugin.EnvPath, dir)
	query := url.Values{"root": {filepath.Join(dir, "storage")}}
	conformance.Run(t, func(t *testing.T) builder.Builder {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := plugin.Open(ctx, "buildah", query)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}, env)
}
