package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestSweep: a repository holding old and new matching tags, matching tags dated only by label
// or not at all, non-matching old tags, and an old matching tag sharing its image with a
// non-matching one. A dry run deletes nothing; the sweep deletes exactly the matching tags older
// than the threshold (by config created, else by label), and the tag sharing the deleted one's
// image still serves it.
func TestSweep(t *testing.T) {
	env := testenv.Require(t, testenv.Registry)
	repo := env[testenv.Registry] + "/e2e/" + testenv.UniqueTag("sweep")
	now := time.Now().UTC()
	old, recent := now.Add(-10*24*time.Hour), now.Add(-time.Hour)
	digests := map[string]string{
		"change_1_latest": testenv.PushDated(t, repo+":change_1_latest", old, nil),
		"change_2_latest": testenv.PushDated(t, repo+":change_2_latest", recent, nil),
		"change_3_label":  testenv.PushDated(t, repo+":change_3_label", time.Time{}, map[string]string{"org.opencontainers.image.created": old.Format(time.RFC3339)}),
		"change_4_nodate": testenv.PushDated(t, repo+":change_4_nodate", time.Time{}, nil),
		"release_1":       testenv.PushDated(t, repo+":release_1", old, nil),
		"x_change_5":      testenv.PushDated(t, repo+":x_change_5", old, nil), // matches only unanchored
	}
	digests["change_6_shared"] = testenv.PushDated(t, repo+":change_6_shared", old.Add(-time.Hour), nil)
	copyRef(t, repo+":change_6_shared", repo+":stable")
	digests["stable"] = digests["change_6_shared"]
	wantDeleted := []string{"change_1_latest", "change_3_label", "change_6_shared"}

	sweep := func(args ...string) (ibRun, result.Sweep) {
		t.Helper()
		r := ibBinary(t, t.TempDir(), nil, append([]string{"sweep", repo, "--match", "change_", "--older-than", "7d"}, args...)...)
		var s result.Sweep
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("exit %d, stdout is not sweep facts: %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
		}
		return r, s
	}
	tagsOf := func(ts []result.SweptTag) string {
		var out []string
		for _, x := range ts {
			out = append(out, x.Tag)
		}
		return strings.Join(out, ",")
	}

	r, s := sweep("--dry-run")
	if r.code != 0 || !s.DryRun || tagsOf(s.Deleted) != strings.Join(wantDeleted, ",") {
		t.Fatalf("dry run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for tag, d := range digests {
		if got := testenv.RegistryDigest(t, repo+":"+tag, nil); got != d {
			t.Errorf("the dry run changed %s: %q, want %s", tag, got, d)
		}
	}

	r, s = sweep()
	if r.code != 0 || !s.Changed || tagsOf(s.Deleted) != strings.Join(wantDeleted, ",") ||
		tagsOf(s.Kept) != "change_2_latest,change_4_nodate,release_1,stable,x_change_5" {
		t.Fatalf("sweep: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, d := range s.Deleted {
		if d.Digest != digests[d.Tag] || d.Created == "" {
			t.Errorf("deleted %+v, want digest %s and a creation time", d, digests[d.Tag])
		}
	}
	for tag, d := range digests {
		want := d
		for _, del := range wantDeleted {
			if tag == del {
				want = ""
			}
		}
		if got := testenv.RegistryDigest(t, repo+":"+tag, nil); got != want {
			t.Errorf("after the sweep %s serves %q, want %q", tag, got, want)
		}
	}

	// Usage errors: a bad age, a missing --match.
	for _, args := range [][]string{{"sweep", repo, "--match", "x", "--older-than", "7 days"}, {"sweep", repo, "--older-than", "7d"}} {
		if r := ibBinary(t, t.TempDir(), nil, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
	}
}

// TestPromoteSweep: promote SRC=DST --sweep REGEX --older-than DURATION promotes, then sweeps the
// destination repository: the old stale stage tag goes, the fresh one and the final tag stay; an
// --older-than without --sweep is a usage error.
func TestPromoteSweep(t *testing.T) {
	env := testenv.Require(t, testenv.Registry)
	repo := env[testenv.Registry] + "/e2e/" + testenv.UniqueTag("promote-sweep")
	now := time.Now().UTC()
	staged := testenv.PushDated(t, repo+":change_9_latest", now, nil)
	old := testenv.PushDated(t, repo+":change_1_latest", now.Add(-30*24*time.Hour), nil)
	fresh := testenv.PushDated(t, repo+":change_8_latest", now.Add(-time.Hour), nil)
	r := ibBinary(t, t.TempDir(), nil, "promote", repo+":change_9_latest="+repo+":latest", "--sweep", "change_", "--older-than", "7d")
	var p result.Promotion
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 || len(p.Swept) != 1 {
		t.Fatalf("exit %d: %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	if len(p.Swept[0].Deleted) != 1 || p.Swept[0].Deleted[0].Tag != "change_1_latest" || p.Swept[0].Deleted[0].Digest != old {
		t.Errorf("swept %+v", p.Swept[0])
	}
	for tag, want := range map[string]string{"latest": staged, "change_9_latest": "", "change_1_latest": "", "change_8_latest": fresh} {
		if got := testenv.RegistryDigest(t, repo+":"+tag, nil); got != want {
			t.Errorf("%s serves %q, want %q", tag, got, want)
		}
	}
	if r := ibBinary(t, t.TempDir(), nil, "promote", repo+":a="+repo+":b", "--older-than", "7d"); r.code != 2 {
		t.Errorf("--older-than without --sweep: exit %d\n%s", r.code, r.stderr)
	}
}
