package conformance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebuilder/imagebuilder/internal/builder"
)

// singlePlatform: one platform; the Dockerfile outside the context; build args; labels; the
// context's .dockerignore; the base's files.
func singlePlatform(t *testing.T, s *suite) {
	platform := s.env.Platforms[0]
	req, rec := s.request(t, s.env.Registry, map[string]string{
		"hello.txt":     "hello from the context",
		"ignored.txt":   "must not reach the image",
		"sub/data.txt":  "nested",
		".dockerignore": "ignored.txt\n",
	}, s.env.Base)
	dfDir := t.TempDir()
	req.Dockerfile = filepath.Join(dfDir, "build.Dockerfile")
	writeFile(t, req.Dockerfile, `ARG BASE
FROM ${BASE}
ARG GREETING=unset
RUN uname -m > /machine && echo "$GREETING" > /greeting && echo `+nonce()+` > /nonce
COPY hello.txt /hello.txt
COPY . /ctx/
`)
	req.Platforms = []string{platform}
	req.BuildArgs = map[string]string{"BASE": s.env.Base, "GREETING": "hi there"}
	req.Labels = map[string]string{"org.opencontainers.image.revision": "abc123", "com.example.conformance": "yes"}
	_, ref := s.build(t, req, rec)

	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !desc.MediaType.IsImage() {
		t.Fatalf("a single-platform build pushed %s, want an image manifest", desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.OS + "/" + cfg.Architecture; got != platform {
		t.Errorf("the image's platform is %s, want %s", got, platform)
	}
	for k, v := range req.Labels {
		if cfg.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cfg.Config.Labels[k], v)
		}
	}
	expectFiles(t, platform, img, map[string]string{
		"/machine":               machines[platform],
		"/greeting":              "hi there",
		"/hello.txt":             "hello from the context",
		"/ctx/sub/data.txt":      "nested",
		"/ctx/ignored.txt":       "", // .dockerignore
		"/etc/imagebuilder-base": "busybox",
	})
}

// multiPlatform: two platforms in one request give one index, by digest, with exactly those
// platforms, each built on its own platform from the base's matching image.
func multiPlatform(t *testing.T, s *suite) {
	req, rec := s.request(t, s.env.Registry, map[string]string{
		"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN uname -m > /machine && echo " + nonce() + " > /nonce\nCOPY hello.txt /hello.txt\n",
		"hello.txt":  "multi",
	}, s.env.Base)
	req.Platforms = s.env.Platforms
	req.BuildArgs = map[string]string{"BASE": s.env.Base}
	_, ref := s.build(t, req, rec)

	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !desc.MediaType.IsIndex() {
		t.Fatalf("a multi-platform build pushed %s, want an index", desc.MediaType)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			// Attestations and the like carry no platform (or unknown/unknown); images do.
			t.Errorf("index entry %s (%s) has no platform", m.Digest, m.MediaType)
			continue
		}
		p := platformString(m.Platform)
		if p == "unknown/unknown" {
			continue
		}
		got = append(got, p)
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		expectFiles(t, p, img, map[string]string{"/machine": machines[p], "/hello.txt": "multi", "/etc/imagebuilder-base": "busybox"})
	}
	want := slices.Clone(req.Platforms)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("the index holds %v, want exactly %v", got, want)
	}
}

func platformString(p *v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// targetStage: Target builds that stage (and what it depends on), not the last one.
func targetStage(t *testing.T, s *suite) {
	req, rec := s.request(t, s.env.Registry, map[string]string{"Dockerfile": `ARG BASE
FROM ${BASE} AS first
RUN echo first > /stage && echo ` + nonce() + `
FROM ${BASE} AS wanted
COPY --from=first /stage /from-first
RUN echo wanted > /stage
FROM ${BASE} AS last
RUN echo last > /stage && echo last > /last
`}, s.env.Base)
	req.Platforms = s.env.Platforms[:1]
	req.BuildArgs = map[string]string{"BASE": s.env.Base}
	req.Target = "wanted"
	_, ref := s.build(t, req, rec)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	expectFiles(t, "target wanted", img, map[string]string{"/stage": "wanted", "/from-first": "first", "/last": ""})
}

// secrets: a RUN step reads a build secret through --mount=type=secret; the secret reaches
// neither the image's filesystem nor its configuration.
func secrets(t *testing.T, s *suite) {
	const secret = "conformance-secret-Vb7q2"
	req, rec := s.request(t, s.env.Registry, map[string]string{"Dockerfile": `ARG BASE
FROM ${BASE}
RUN --mount=type=secret,id=token sha256sum /run/secrets/token | cut -d" " -f1 > /token.sha256 && echo ` + nonce() + `
`}, s.env.Base)
	req.Platforms = s.env.Platforms[:1]
	req.BuildArgs = map[string]string{"BASE": s.env.Base}
	req.Secrets = map[string][]byte{"token": []byte(secret)}
	_, ref := s.build(t, req, rec)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	expectFiles(t, "secret", img, map[string]string{"/token.sha256": sha256Hex(secret), "/run/secrets/token": ""})
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), secret) {
		t.Error("the image configuration holds the secret")
	}
}

// failingRun: a RUN that fails is a *builder.Error at step build that names the repository and
// the step, with the step's output.
func failingRun(t *testing.T, s *suite) {
	req, _ := s.request(t, s.env.Registry, map[string]string{
		"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN echo the-marker-output-line && echo " + nonce() + " && false\n",
	}, s.env.Base)
	req.Platforms = s.env.Platforms[:1]
	req.BuildArgs = map[string]string{"BASE": s.env.Base}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, err := s.b.Build(ctx, req)
	if err == nil {
		t.Fatal("Build succeeded; want the failure of RUN ... false")
	}
	t.Logf("error: %v", err)
	var be *builder.Error
	if !errors.As(err, &be) {
		t.Fatalf("the error is a %T, want a *builder.Error: %v", err, err)
	}
	if be.Step != builder.StepBuild {
		t.Errorf("Step = %q, want build", be.Step)
	}
	if !strings.Contains(be.Vertex, "the-marker-output-line") {
		t.Errorf("Vertex = %q, want the failing RUN step", be.Vertex)
	}
	if !strings.Contains(be.Output, "the-marker-output-line") {
		t.Errorf("Output = %q, want the step's output", be.Output)
	}
	for _, want := range []string{req.Repository, req.Platforms[0]} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s", want)
		}
	}
}

// credentials: a base image from a registry that needs credentials, pushed to that registry:
// the Credentials callback is asked for that registry (and nothing else), and its answer is
// used for the pull and the push.
func credentials(t *testing.T, s *suite) {
	auth := remote.WithAuth(&authn.Basic{Username: s.env.AuthUser, Password: s.env.AuthPassword})
	// The base by digest: BuildKit shares the resolution of a reference between concurrent
	// builds, so another test pulling AuthBase by tag with a wrong password at the same time
	// could fail this one.
	tagged, err := name.ParseReference(s.env.AuthBase)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(tagged, auth)
	if err != nil {
		t.Fatalf("resolving %s: %v", s.env.AuthBase, err)
	}
	base := tagged.Context().Digest(desc.Digest.String()).String()
	req, rec := s.request(t, s.env.AuthRegistry, map[string]string{
		"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN echo " + nonce() + " > /nonce\n",
	}, base)
	req.Platforms = s.env.Platforms[:1]
	req.BuildArgs = map[string]string{"BASE": base}
	_, ref := s.build(t, req, rec, auth)
	if !slices.Contains(rec.hosts(), s.env.AuthRegistry) {
		t.Errorf("the credentials of %s were never asked for (asked: %v)", s.env.AuthRegistry, rec.hosts())
	}
	t.Logf("credentials asked for %v; pushed %s", rec.hosts(), ref)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
