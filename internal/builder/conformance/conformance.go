// Package conformance is the behaviour every builder.Builder must show, as one table of
// subtests run against a real registry: the built-in buildkit and docker drivers, builder
// plugins (through internal/builder/plugin) and, with [Run], any third party's builder.
//
// Every successful build is checked in the registry: the digest the builder returns is what
// the registry serves, the image holds what the Dockerfile put there, and the repository has
// no tag (a builder pushes by digest only). Every request names the registries it involves
// (Request.Registries, as the pipeline fills it) and records the hosts its Credentials callback
// is asked for: none may lie outside them.
package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/client"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/registry/registrytest"
)

// Env is the test environment the suite builds in (scripts/testenv.sh provides one; see
// internal/testenv for the variables).
type Env struct {
	// Registry is a registry without authentication reached over plain HTTP on loopback
	// (host:port); the suite pushes there.
	Registry string
	// Base is a multi-platform (linux/amd64, linux/arm64) image whose /etc/imagebuilder-base
	// reads "busybox", with a shell and uname.
	Base string
	// AuthRegistry is a registry that requires AuthUser and AuthPassword; AuthBase is Base
	// there.
	AuthRegistry, AuthUser, AuthPassword, AuthBase string
	// Platforms are the two platforms of the multi-platform build (default linux/amd64 and
	// linux/arm64); the builder must run both, natively or emulated.
	Platforms []string
}

// behaviour is one row of the table.
type behaviour struct {
	name string
	run  func(t *testing.T, s *suite)
}

var behaviours = []behaviour{
	{"single platform, build args, labels, dockerignore", singlePlatform},
	{"multi-platform", multiPlatform},
	{"target stage", targetStage},
	{"secrets", secrets},
	{"failing RUN", failingRun},
	{"credentials for the registries involved only", credentials},
}

// Run runs every behaviour as a parallel subtest of t, each on a builder of its own that open
// returns (open closes it, e.g. with t.Cleanup). A behaviour that fails says what a builder
// must do instead.
func Run(t *testing.T, open func(t *testing.T) builder.Builder, env Env) {
	if env.Registry == "" || env.Base == "" || env.AuthRegistry == "" || env.AuthBase == "" {
		t.Fatalf("conformance: incomplete environment %+v", env)
	}
	if len(env.Platforms) == 0 {
		env.Platforms = []string{"linux/amd64", "linux/arm64"}
	}
	for _, bh := range behaviours {
		t.Run(bh.name, func(t *testing.T) {
			t.Parallel()
			bh.run(t, &suite{b: open(t), env: env})
		})
	}
}

// suite is one behaviour's builder and environment.
type suite struct {
	b   builder.Builder
	env Env
}

// machines are what uname -m prints on each platform.
var machines = map[string]string{"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l", "linux/386": "i686", "linux/s390x": "s390x", "linux/ppc64le": "ppc64le", "linux/riscv64": "riscv64"}

// recorder is a Credentials callback that answers for the auth registry and records every
// host it is asked for.
type recorder struct {
	mu    sync.Mutex
	asked []string
	env   Env
}

func (r *recorder) credentials(host string) (string, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.asked, host) {
		r.asked = append(r.asked, host)
	}
	if host == r.env.AuthRegistry {
		return r.env.AuthUser, r.env.AuthPassword, nil
	}
	return "", "", nil
}

// hosts returns the hosts asked so far.
func (r *recorder) hosts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.asked)
}

// request is a request to build the context files (its Dockerfile among them) and push it to
// a fresh repository of registry, with a recording Credentials callback and the registries of
// the base images named.
func (s *suite) request(t *testing.T, registry string, files map[string]string, bases ...string) (builder.Request, *recorder) {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, full, content)
	}
	rec := &recorder{env: s.env}
	req := builder.Request{
		ContextDir:  dir,
		Dockerfile:  filepath.Join(dir, "Dockerfile"),
		Repository:  repository(t, registry),
		Credentials: rec.credentials,
		Progress:    func(*client.SolveStatus) {},
	}
	for _, b := range bases {
		ref, err := name.ParseReference(b)
		if err != nil {
			t.Fatal(err)
		}
		if h := ref.Context().RegistryStr(); !slices.Contains(req.Registries, h) {
			req.Registries = append(req.Registries, h)
		}
	}
	return req, rec
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// repository is a repository no other test uses.
func repository(t *testing.T, registry string) string {
	n := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(n) > 100 {
		n = n[len(n)-100:]
	}
	return fmt.Sprintf("%s/conformance/%s-%d", registry, strings.Trim(n, "-"), time.Now().UnixNano())
}

// build runs req with a timeout and checks what every build must do: succeed, name the
// platforms and an endpoint, put exactly the returned digest in the registry, create no tag,
// and ask credentials for the involved registries only.
func (s *suite) build(t *testing.T, req builder.Request, rec *recorder, opts ...remote.Option) (*builder.Built, name.Digest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := s.b.Build(ctx, req)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Logf("built %s@%s in %s", req.Repository, res.Digest, time.Since(start).Round(time.Millisecond))
	if res.Endpoint == "" {
		t.Error("Built.Endpoint is empty: a builder names the endpoint that built the image")
	}
	if len(req.Platforms) > 0 && !slices.Equal(res.Platforms, req.Platforms) {
		t.Errorf("Built.Platforms = %v, want %v", res.Platforms, req.Platforms)
	}
	ref := registrytest.AssertPushedByDigest(t, req.Repository, res.Digest, opts...)
	assertHosts(t, rec, req)
	return res, ref
}

// assertHosts fails when the Credentials callback was asked for a host the request does not
// involve.
func assertHosts(t *testing.T, rec *recorder, req builder.Request) {
	t.Helper()
	involved := req.RegistryHosts()
	for _, h := range rec.hosts() {
		if !slices.Contains(involved, h) {
			t.Errorf("credentials were asked for %s, which the build does not involve (%v)", h, involved)
		}
	}
}

// expectFiles compares files of img (trimmed) with want; "" means the file must be absent.
func expectFiles(t *testing.T, what string, img v1.Image, want map[string]string) {
	t.Helper()
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	got := registrytest.Files(t, img, paths...)
	for p, w := range want {
		g, ok := got[p]
		g = strings.TrimSpace(g)
		switch {
		case w == "" && ok:
			t.Errorf("%s: %s is in the image, and must not be", what, p)
		case w != "" && !ok:
			t.Errorf("%s: %s is missing from the image", what, p)
		case w != "" && g != w:
			t.Errorf("%s: %s = %q, want %q", what, p, g, w)
		}
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// nonce keeps a build's RUN steps out of the cache, so every run really runs them.
func nonce() string { return fmt.Sprint(time.Now().UnixNano()) }
