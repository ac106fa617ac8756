package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// manifestRun runs imagebuilder manifest create and decodes its facts.
func manifestRun(t *testing.T, args ...string) (ibRun, result.ManifestIndex) {
	t.Helper()
	r := ibBinary(t, t.TempDir(), nil, append([]string{"manifest", "create"}, args...)...)
	var m result.ManifestIndex
	if r.stdout != "" {
		if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
			t.Fatalf("stdout is not manifest facts: %v\n%s", err, r.stdout)
		}
	}
	return r, m
}

// buildctlPush builds dir's Dockerfile for one platform with provenance attestations (mode=min)
// and pushes it as ref: an index holding the image and its attestation manifest.
func buildctlPush(t *testing.T, addr, dir, platform, ref string) {
	t.Helper()
	cmd := exec.Command(testenv.Buildctl(t), "--addr", addr, "build", "--progress", "plain",
		"--frontend", "dockerfile.v0", "--local", "context="+dir, "--local", "dockerfile="+dir,
		"--opt", "platform="+platform, "--opt", "attest:provenance=mode=min",
		"--output", "type=image,name="+ref+",push=true,oci-mediatypes=true")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buildctl build %s: %v\n%s", ref, err, out)
	}
}

func readIndex(t *testing.T, ref string) *v1.IndexManifest {
	t.Helper()
	r, _ := name.ParseReference(ref, name.Insecure)
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("reading index %s: %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// TestManifestCreate: an amd64 image and an arm64 image built separately (real BuildKit, each
// in its own repository) become one index in a third repository, their blobs mounted (no
// upload); a platform given twice is an error naming both sources; attestation-carrying
// indexes (BuildKit's attest:provenance) are flattened with their attestations kept — each
// still naming its own image — or dropped; a dry run computes the digest and writes nothing.
func TestManifestCreate(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base, testenv.BuildKit)
	reg := env[testenv.Registry]
	tag := testenv.UniqueTag("manifest")
	repo := testenv.GitRepoURL(t, map[string]string{
		"Dockerfile": "FROM " + env[testenv.Base] + "\nCOPY stamp /stamp\n",
		"stamp":      tag + "\n",
	})
	build := func(image, platform string) result.Image {
		t.Helper()
		r := ibBinary(t, t.TempDir(), request(repo, reg, map[string]any{"image": image, "tag": tag, "platforms": []string{platform}}), "build", "--builder", env[testenv.BuildKit])
		if r.code != 0 {
			t.Fatalf("build %s: exit %d\n%s\n%s", platform, r.code, r.stdout, r.stderr)
		}
		return r.res.Images[0]
	}
	amd, arm := build("e2e/manifest-amd64", "linux/amd64"), build("e2e/manifest-arm64", "linux/arm64")
	amdRef, armRef := amd.Repository+":"+tag, arm.Repository+":"+tag

	proxy := testenv.StartRegistryProxy(t, reg)
	via := func(ref string) string { return strings.Replace(ref, reg, proxy.Host, 1) }
	dst := reg + "/e2e/manifest-app:" + tag

	// Dry run: the digest, nothing written.
	r, m := manifestRun(t, via(dst), "--from", via(amdRef), "--from", via(armRef), "--dry-run")
	if r.code != 0 || !m.DryRun || !m.Changed || m.Digest == "" || len(m.Manifests) != 2 {
		t.Fatalf("dry run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if d := testenv.RegistryDigest(t, dst, nil); d != "" {
		t.Fatalf("the dry run created %s (%s)", dst, d)
	}
	planned := m.Digest
	proxy.Reset()

	r, m = manifestRun(t, via(dst), "--from", via(amdRef), "--from", via(armRef))
	reqs := proxy.Reset()
	if r.code != 0 || !m.Changed || m.Digest != planned {
		t.Fatalf("manifest create: exit %d (planned %s)\n%s\n%s", r.code, planned, r.stdout, r.stderr)
	}
	if d := testenv.RegistryDigest(t, dst, nil); d != m.Digest {
		t.Errorf("%s serves %s, want the reported %s", dst, d, m.Digest)
	}
	if got := indexPlatforms(t, dst); strings.Join(got, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("%s has platforms %v", dst, got)
	}
	if m.Manifests[0].Platform != "linux/amd64" || m.Manifests[0].From != via(amdRef) || m.Manifests[1].Platform != "linux/arm64" || m.Manifests[1].From != via(armRef) {
		t.Errorf("children: %+v", m.Manifests)
	}
	if w := blobWrites(reqs); len(w) > 0 {
		t.Errorf("blobs uploaded instead of mounted: %v", w)
	}
	// Again: the same index, nothing to do.
	if r, m = manifestRun(t, via(dst), "--from", via(amdRef), "--from", via(armRef)); r.code != 0 || m.Changed || m.Previous != planned {
		t.Errorf("manifest create again: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// A platform given twice.
	amd2 := build("e2e/manifest-amd64-bis", "linux/amd64")
	r, m = manifestRun(t, dst+"-dup", "--from", amdRef, "--from", amd2.Repository+":"+tag)
	if r.code != 1 || m.Failed == nil || !strings.Contains(m.Failed.Error, "linux/amd64") || !strings.Contains(m.Failed.Error, amdRef) || !strings.Contains(m.Failed.Error, amd2.Repository+":"+tag) {
		t.Errorf("duplicate platform: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// Attestation-carrying indexes, built by buildctl.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+env[testenv.Base]+"\nCOPY stamp /stamp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stamp"), []byte(tag+" attested\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	attAmd, attArm := reg+"/e2e/manifest-att:"+tag+"-amd64", reg+"/e2e/manifest-att:"+tag+"-arm64"
	buildctlPush(t, env[testenv.BuildKit], dir, "linux/amd64", attAmd)
	buildctlPush(t, env[testenv.BuildKit], dir, "linux/arm64", attArm)
	src := map[string]*v1.IndexManifest{attAmd: readIndex(t, attAmd), attArm: readIndex(t, attArm)}
	for ref, im := range src {
		if len(im.Manifests) != 2 || im.Manifests[1].Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
			t.Fatalf("%s is not an image and its attestation: %+v", ref, im.Manifests)
		}
	}

	keep := reg + "/e2e/manifest-att-app:" + tag
	r, m = manifestRun(t, keep, "--from", attAmd, "--from", attArm)
	if r.code != 0 || len(m.Manifests) != 4 {
		t.Fatalf("keep: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	im := readIndex(t, keep)
	if len(im.Manifests) != 4 {
		t.Fatalf("%s has %d entries, want 2 images and 2 attestations", keep, len(im.Manifests))
	}
	for i, from := range []string{attAmd, attArm} {
		img, att := im.Manifests[2*i], im.Manifests[2*i+1]
		if img.Digest != src[from].Manifests[0].Digest || att.Digest != src[from].Manifests[1].Digest {
			t.Errorf("entries %d-%d are not %s's image and attestation", 2*i, 2*i+1, from)
		}
		if att.Annotations["vnd.docker.reference.digest"] != img.Digest.String() || m.Manifests[2*i+1].Attests != img.Digest.String() {
			t.Errorf("the attestation of %s names %s, want its image %s", from, att.Annotations["vnd.docker.reference.digest"], img.Digest)
		}
		// Every child is in the index's repository.
		for _, e := range []v1.Descriptor{img, att} {
			if d := testenv.RegistryDigest(t, reg+"/e2e/manifest-att-app@"+e.Digest.String(), nil); d != e.Digest.String() {
				t.Errorf("%s is not in the index's repository", e.Digest)
			}
		}
	}
	if got := indexPlatforms(t, keep); strings.Join(got, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("%s has platforms %v", keep, got)
	}

	drop := reg + "/e2e/manifest-att-app:" + tag + "-noatt"
	r, m = manifestRun(t, drop, "--from", attAmd, "--from", attArm, "--attestations", "drop")
	if r.code != 0 || len(m.Manifests) != 2 || len(readIndex(t, drop).Manifests) != 2 {
		t.Fatalf("drop: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// Usage errors.
	for _, args := range [][]string{{dst}, {dst, "--from", amdRef, "--attestations", "some"}, {reg + "/e2e/manifest-app", "--from", amdRef}} {
		if r := ibBinary(t, t.TempDir(), nil, append([]string{"manifest", "create"}, args...)...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
	}
}
