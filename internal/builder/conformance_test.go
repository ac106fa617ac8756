package builder_test

import (
	"context"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/builder/conformance"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestConformance runs the builder conformance suite against the built-in drivers.
func TestConformance(t *testing.T) {
	for _, d := range []struct {
		name, envVar string
		endpoint     func(addr string) string
	}{
		{"buildkit", testenv.BuildKit, func(a string) string { return a }},
		{"docker", testenv.Docker, func(a string) string { return "docker+" + a }},
	} {
		t.Run(d.name, func(t *testing.T) {
			env, vars := conformance.TestEnv(t, d.envVar)
			conformance.Run(t, func(t *testing.T) builder.Builder {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				b, err := builder.New(ctx, d.endpoint(vars[d.envVar]))
				if err != nil {
					t.Fatalf("opening %s: %v", d.name, err)
				}
				t.Cleanup(func() { b.Close() })
				return conformance.Publishing(b)
			}, env)
		})
	}
}
