package plugin

import (
	"context"
	"net/url"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/builder/conformance"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestConformance runs the builder conformance suite through a plugin: the buildkit driver
// served by testdata/imagebuilder-builder-buildkit, so that everything a build needs (the
// request, secrets, credentials, progress, errors) must cross the plugin contract.
func TestConformance(t *testing.T) {
	env, vars := conformance.TestEnv(t, testenv.BuildKit)
	prog := filepath.Join(t.TempDir(), ProgramPrefix+"buildkit")
	if out, err := exec.Command("go", "build", "-o", prog, "./testdata/imagebuilder-builder-buildkit").CombinedOutput(); err != nil {
		t.Fatalf("building the test plugin: %v\n%s", err, out)
	}
	query := url.Values{"addr": {vars[testenv.BuildKit]}}
	conformance.Run(t, func(t *testing.T) builder.Builder {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := open(ctx, "buildkit", prog, query)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}, env)
}
