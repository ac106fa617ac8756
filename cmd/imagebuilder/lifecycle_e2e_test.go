package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestBuildStaged: with target.registry.stage_tag, the images are pushed and tagged only under
// their stage tags (one per final tag, from --var); the final tags do not move, and the result
// records both.
func TestBuildStaged(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base, testenv.BuildKit)
	repo := testenv.GitRepoURL(t, map[string]string{"Dockerfile": "FROM " + env[testenv.Base] + "\nRUN echo staged > /staged\n"})
	tag := testenv.UniqueTag("stage")
	p := request(repo, env[testenv.Registry], map[string]any{"image": "e2e/staged", "tag": tag, "tags": []string{tag + "-extra"}})
	p["target"].(map[string]any)["registry"].(map[string]any)["stage_tag"] = "change_{{.Vars.change}}_{{.Tag}}"

	// Without the variable the template names, nothing runs.
	r := ibBinary(t, t.TempDir(), p, "build", "--builder", env[testenv.BuildKit])
	if r.code != 1 || r.res.Failed == nil || r.res.Failed.Step != result.StepCheck || !strings.Contains(r.res.Failed.Error, "/target/registry/stage_tag") {
		t.Fatalf("stage_tag without --var change: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	r = ibBinary(t, t.TempDir(), p, "build", "--builder", env[testenv.BuildKit], "--var", "change=123")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	img := r.res.Images[0]
	want := []string{"change_123_" + tag, "change_123_" + tag + "-extra"}
	if strings.Join(img.StageTags, ",") != strings.Join(want, ",") || strings.Join(img.Tags, ",") != tag+","+tag+"-extra" {
		t.Fatalf("tags %v, stage tags %v", img.Tags, img.StageTags)
	}
	for _, st := range want {
		if d := testenv.RegistryDigest(t, img.Repository+":"+st, nil); d != img.Digest {
			t.Errorf("%s serves %q, want the built %s", st, d, img.Digest)
		}
	}
	for _, final := range img.Tags {
		if d := testenv.RegistryDigest(t, img.Repository+":"+final, nil); d != "" {
			t.Errorf("the final tag %s moved (%s) in a staged upload", final, d)
		}
	}
	if d := r.res.Digests()[img.Repository+":"+want[0]]; d != img.Digest {
		t.Errorf("digests: %v", r.res.Digests())
	}
}

// TestBuildScopedCredentials: a credentials rule ^team/ refuses a push to other/x before anything
// is fetched or built (the engine does not even exist), naming the rule, and lets team/x build.
// The rule works from the params and from a credentials file.
func TestBuildScopedCredentials(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base, testenv.BuildKit)
	repo := testenv.GitRepoURL(t, map[string]string{"Dockerfile": "FROM " + env[testenv.Base] + "\n"})
	tag := testenv.UniqueTag("scope")
	withRule := func(image string) map[string]any {
		p := request(repo, env[testenv.Registry], map[string]any{"image": image, "tag": tag})
		p["target"].(map[string]any)["registry"].(map[string]any)["repositories"] = []string{"^team/"}
		return p
	}
	r := ibBinary(t, t.TempDir(), withRule("other/x"), "build", "--builder", "unix:///nonexistent/buildkitd.sock")
	if r.code != 1 || r.res.Failed == nil || r.res.Failed.Step != result.StepCheck ||
		!strings.Contains(r.res.Failed.Error, "^team/ (/target/registry/repositories)") || r.res.Source != nil {
		t.Fatalf("push to other/x: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := ibBinary(t, t.TempDir(), withRule("team/x"), "build", "--builder", env[testenv.BuildKit]); r.code != 0 {
		t.Fatalf("push to team/x: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// The same rule from a credentials file (with a password that must not show).
	creds := filepath.Join(t.TempDir(), "creds.yaml")
	if err := os.WriteFile(creds, []byte("- registry: "+env[testenv.Registry]+"\n  username: ci\n  password: S3cretPassw0rd\n  repositories: ['team/']\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := request(repo, env[testenv.Registry], map[string]any{"image": "other/x", "tag": tag})
	r = ibBinaryWith(t, binOpts{tmp: t.TempDir(), env: map[string]string{"IMAGEBUILDER_CREDENTIALS": creds}}, p, "build", "--builder", "unix:///nonexistent/buildkitd.sock")
	if r.code != 1 || r.res.Failed == nil || !strings.Contains(r.res.Failed.Error, "credentials file "+creds+", entry 0") {
		t.Fatalf("credentials file rule: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "S3cretPassw0rd") {
		t.Fatal("the credentials file's password was printed")
	}
}
