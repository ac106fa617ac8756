package conformance

import (
	"context"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/registry/registrytest"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestEnv is the environment of scripts/testenv.sh, read through internal/testenv: the test is
// skipped (or fails under IMAGEBUILDER_REQUIRE_INTEGRATION=1) when a variable is missing; more
// names variables the caller needs besides (an endpoint address, say), returned in vars.
func TestEnv(t *testing.T, more ...string) (env Env, vars map[string]string) {
	t.Helper()
	vars = testenv.Require(t, append([]string{testenv.Registry, testenv.Base, testenv.AuthRegistry,
		testenv.AuthUser, testenv.AuthPassword, testenv.AuthBase}, more...)...)
	return Env{
		Registry:     vars[testenv.Registry],
		Base:         vars[testenv.Base],
		AuthRegistry: vars[testenv.AuthRegistry],
		AuthUser:     vars[testenv.AuthUser],
		AuthPassword: vars[testenv.AuthPassword],
		AuthBase:     vars[testenv.AuthBase],
	}, vars
}

// Publishing gives every request without a Publisher one, as the pipeline does: a registry
// client that answers with the request's own Credentials callback. The docker driver needs
// one; other builders push by themselves and ignore it.
func Publishing(b builder.Builder) builder.Builder { return publishing{b} }

type publishing struct{ builder.Builder }

func (p publishing) Build(ctx context.Context, req builder.Request) (*builder.Built, error) {
	if req.Publisher == nil {
		c, err := registry.New(registry.WithKeychain(registrytest.Keychain(req.Credentials)), registry.WithRetry(1, 0))
		if err != nil {
			return nil, err
		}
		req.Publisher = c
	}
	return p.Builder.Build(ctx, req)
}
