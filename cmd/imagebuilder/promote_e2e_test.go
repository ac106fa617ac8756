package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// promoteRun runs imagebuilder with params on stdin and decodes its promote facts.
func promoteRun(t *testing.T, params any, args ...string) (ibRun, result.Promotion) {
	t.Helper()
	r := ibBinary(t, t.TempDir(), params, args...)
	var p result.Promotion
	if r.stdout != "" {
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			t.Fatalf("stdout is not promote facts: %v\n%s", err, r.stdout)
		}
	}
	return r, p
}

// withRegistry returns a copy of build params whose target registry is url.
func withRegistry(t *testing.T, p map[string]any, url string) map[string]any {
	t.Helper()
	data, _ := json.Marshal(p)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	out["target"].(map[string]any)["registry"].(map[string]any)["url"] = url
	return out
}

// blobWrites are the requests that upload a blob: starting an upload session (a POST without a
// mount, or a mount the registry refused), sending its data (PATCH) or closing it (PUT).
func blobWrites(reqs []testenv.Request) []string {
	var out []string
	for _, r := range reqs {
		if !strings.Contains(r.Path, "/blobs/") {
			continue
		}
		mounted := r.Method == http.MethodPost && strings.Contains(r.Query, "mount=") && r.Status == http.StatusCreated
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !mounted {
			out = append(out, r.String())
		}
	}
	return out
}

// TestPromote: a staged build (one single-platform image with two tags, one two-platform image)
// is promoted through a recording proxy in front of the real registry.
//   - A promote whose last final tag's PUT fails leaves every final tag where it was (an existing
//     one back at its old digest, a new one gone) and the stage tags in place.
//   - A promote by explicit refs copies the index into another repository by mounting blobs.
//   - The promote proper: each final tag serves exactly the staged digest (the index with both
//     platforms), the stage tags are gone, no blob was uploaded, and each tag cost at most 3
//     requests (GET stage, HEAD final, PUT final); the deletions' requests are counted too.
//   - Promoting again is an error naming the missing stage tag.
func TestPromote(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base, testenv.BuildKit)
	reg := env[testenv.Registry]
	tag := testenv.UniqueTag("promote")
	repo := testenv.GitRepoURL(t, map[string]string{
		"Dockerfile": "FROM " + env[testenv.Base] + "\nCOPY stamp /stamp\n",
		"stamp":      tag + "\n",
	})
	p := request(repo, reg,
		map[string]any{"image": "e2e/promote-a", "tag": tag, "tags": []string{tag + "-extra"}},
		map[string]any{"image": "e2e/promote-b", "tag": tag, "platforms": []string{"linux/amd64", "linux/arm64"}},
	)
	p["target"].(map[string]any)["registry"].(map[string]any)["stage_tag"] = "change_{{.Vars.change}}_{{.Tag}}"
	b := ibBinary(t, t.TempDir(), p, "build", "--builder", env[testenv.BuildKit], "--var", "change=7")
	if b.code != 0 {
		t.Fatalf("staged build: exit %d\n%s\n%s", b.code, b.stdout, b.stderr)
	}
	a, bi := b.res.Images[0], b.res.Images[1]
	stageA := []string{a.Repository + ":change_7_" + tag, a.Repository + ":change_7_" + tag + "-extra"}
	stageB := bi.Repository + ":change_7_" + tag
	finalA := []string{a.Repository + ":" + tag, a.Repository + ":" + tag + "-extra"}
	finalB := bi.Repository + ":" + tag

	// An older image already under the first final tag: a failed promote must put it back.
	old := testenv.RegistryDigest(t, env[testenv.Base], nil)
	copyRef(t, env[testenv.Base], finalA[0])

	proxy := testenv.StartRegistryProxy(t, reg)
	viaProxy := func(ref string) string { return strings.Replace(ref, reg, proxy.Host, 1) }
	pp := withRegistry(t, p, proxy.Host)

	// 1. The last move fails: everything goes back.
	proxy.Fail(http.MethodPut, "/v2/e2e/promote-b/manifests/"+tag, http.StatusInternalServerError)
	r, facts := promoteRun(t, pp, "promote", "-f", "-", "--var", "change=7")
	proxy.Reset()
	if r.code != 1 || facts.Failed == nil || facts.Failed.Step != result.StepTag || !strings.Contains(facts.Failed.Error, viaProxy(finalB)) || facts.Changed {
		t.Fatalf("failing promote: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if d := testenv.RegistryDigest(t, finalA[0], nil); d != old {
		t.Errorf("after the failed promote %s serves %s, want its old %s", finalA[0], d, old)
	}
	for _, ref := range []string{finalA[1], finalB} {
		if d := testenv.RegistryDigest(t, ref, nil); d != "" {
			t.Errorf("after the failed promote %s exists (%s)", ref, d)
		}
	}
	for ref, want := range map[string]string{stageA[0]: a.Digest, stageA[1]: a.Digest, stageB: bi.Digest} {
		if d := testenv.RegistryDigest(t, ref, nil); d != want {
			t.Errorf("after the failed promote the stage tag %s serves %q, want %s", ref, d, want)
		}
	}

	// 2. Explicit refs, across repositories: blobs mounted, children copied, then the index.
	// A source given by digest is not deleted.
	other := viaProxy(reg + "/e2e/promote-copy:" + tag)
	r, facts = promoteRun(t, nil, "promote", viaProxy(bi.Repository)+"@"+bi.Digest+"="+other)
	reqs := proxy.Reset()
	if r.code != 0 || len(facts.Images) != 1 || facts.Images[0].Promoted[0].Digest != bi.Digest || len(facts.Images[0].Deleted) != 0 {
		t.Fatalf("cross-repository promote: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if w := blobWrites(reqs); len(w) > 0 {
		t.Errorf("the cross-repository promote uploaded blobs instead of mounting them: %v", w)
	}
	mounts := 0
	for _, q := range reqs {
		if q.Method == http.MethodPost && strings.Contains(q.Query, "mount=") {
			mounts++
		}
	}
	if mounts == 0 {
		t.Errorf("no blob mounted across repositories: %v", reqs)
	}
	if d := testenv.RegistryDigest(t, reg+"/e2e/promote-copy:"+tag, nil); d != bi.Digest {
		t.Errorf("the copy serves %s, want %s", d, bi.Digest)
	}
	if got := indexPlatforms(t, reg+"/e2e/promote-copy:"+tag); strings.Join(got, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("the copied index has platforms %v", got)
	}

	// 3. The promote.
	r, facts = promoteRun(t, pp, "promote", "-f", "-", "--var", "change=7")
	reqs = proxy.Reset()
	if r.code != 0 || !facts.Changed || facts.Failed != nil || len(facts.Images) != 2 {
		t.Fatalf("promote: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for ref, want := range map[string]string{finalA[0]: a.Digest, finalA[1]: a.Digest, finalB: bi.Digest} {
		if d := testenv.RegistryDigest(t, ref, nil); d != want {
			t.Errorf("%s serves %q, want the staged %s", ref, d, want)
		}
	}
	if got := indexPlatforms(t, finalB); strings.Join(got, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("%s has platforms %v", finalB, got)
	}
	for _, ref := range append(stageA, stageB) {
		if d := testenv.RegistryDigest(t, ref, nil); d != "" {
			t.Errorf("the stage tag %s still exists (%s)", ref, d)
		}
	}
	pa := facts.Images[0]
	if pa.Repository != viaProxy(a.Repository) || len(pa.Promoted) != 2 || pa.Promoted[0].From != viaProxy(stageA[0]) ||
		pa.Promoted[0].To != viaProxy(finalA[0]) || pa.Promoted[0].Previous != old || pa.Promoted[1].Previous != "" ||
		strings.Join(pa.Deleted, ",") != viaProxy(stageA[0])+","+viaProxy(stageA[1]) {
		t.Errorf("facts of %s: %+v", a.Repository, pa)
	}
	if w := blobWrites(reqs); len(w) > 0 {
		t.Errorf("the promote uploaded blobs: %v", w)
	}

	// Count per tag: the promote proper is the GET of the stage tag and the HEAD and PUT of the
	// final tag; the rest are the stage tags' deletions and the registry pings.
	stages := map[string]bool{}
	finals := map[string]bool{}
	for _, s := range append(stageA, stageB) {
		stages[manifestPath(s)] = true
	}
	for _, f := range append(finalA, finalB) {
		finals[manifestPath(f)] = true
	}
	perTag := map[string]int{}
	var copying, deleting, pings int
	var other2 []string
	for _, q := range reqs {
		switch {
		case q.Path == "/v2/":
			pings++
		case finals[q.Path]:
			perTag[q.Path]++
			copying++
		case stages[q.Path] && q.Method == http.MethodGet:
			// The final tag it is copied to: same repository, the tag without the stage prefix.
			perTag[strings.Replace(q.Path, "change_7_", "", 1)]++
			copying++
		case strings.Contains(q.Path, "/manifests/"):
			deleting++
		default:
			other2 = append(other2, q.String())
		}
	}
	for path, n := range perTag {
		if n > 3 {
			t.Errorf("%d requests to promote %s, want at most 3", n, path)
		}
	}
	if len(perTag) != 3 || copying != 9 {
		t.Errorf("promote requests per tag: %v", perTag)
	}
	if len(other2) > 0 {
		t.Errorf("unexpected requests: %v", other2)
	}
	// Deleting a tag on Distribution: the first costs 5 requests (refused tag DELETE, HEAD,
	// deletes-enabled probe, placeholder PUT and DELETE), the others 3.
	if deleting > 5+3*2 {
		t.Errorf("%d requests to delete 3 stage tags", deleting)
	}
	t.Logf("promote of 3 tags in 2 repositories: %d requests in all; per tag %v; deleting the 3 stage tags: %d; pings: %d", len(reqs), perTag, deleting, pings)
	for _, q := range reqs {
		t.Logf("  %s", q)
	}

	// 4. Again: the stage tags are gone, which is an error naming them.
	r, facts = promoteRun(t, pp, "promote", "-f", "-", "--var", "change=7")
	if r.code != 1 || facts.Failed == nil || !strings.Contains(facts.Failed.Error, "does not exist") || !strings.Contains(r.stderr, ":change_7_"+tag) {
		t.Fatalf("promote again: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// manifestPath is the manifest URL path of a tag reference.
func manifestPath(ref string) string {
	t, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("/v2/%s/manifests/%s", t.RepositoryStr(), t.TagStr())
}

// copyRef copies the manifest src names (with its blobs) to dst in the same registry.
func copyRef(t *testing.T, src, dst string) {
	t.Helper()
	s, _ := name.ParseReference(src, name.Insecure)
	d, _ := name.NewTag(dst, name.Insecure)
	desc, err := remote.Get(s)
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err == nil {
			err = remote.WriteIndex(d, idx)
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	img, err := desc.Image()
	if err == nil {
		err = remote.Write(d, img)
	}
	if err != nil {
		t.Fatal(err)
	}
}
