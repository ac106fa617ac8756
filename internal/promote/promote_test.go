package promote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/result"
)

// fake is a registry of tags (REPOSITORY:TAG -> digest) that records writes.
type fake struct {
	tags      map[string]string
	writes    []string
	failTag   string // a Tag to this ref fails
	failDel   bool   // every Delete fails
	forbidden string // CheckWrite refuses this repository
}

func (f *fake) CheckWrite(repo string) error {
	if repo == f.forbidden {
		return fmt.Errorf("writing to %s: %w", repo, registry.ErrOutOfScope)
	}
	return nil
}

func (f *fake) lookup(ref string) (registry.Descriptor, error) {
	if d, ok := f.tags[ref]; ok {
		return registry.Descriptor{Digest: d}, nil
	}
	return registry.Descriptor{}, fmt.Errorf("%s: %w", ref, registry.ErrNotFound)
}

func (f *fake) Fetch(_ context.Context, ref string) (registry.Descriptor, error) {
	return f.lookup(ref)
}

func (f *fake) Resolve(_ context.Context, ref string) (registry.Descriptor, error) {
	return f.lookup(ref)
}

func (f *fake) Tag(_ context.Context, src string, dst ...string) error {
	for _, d := range dst {
		f.writes = append(f.writes, "tag "+d+" "+src)
		if d == f.failTag {
			return errors.New("injected failure")
		}
		_, digest, _ := strings.Cut(src, "@")
		f.tags[d] = digest
	}
	return nil
}

func (f *fake) Delete(_ context.Context, ref string) error {
	f.writes = append(f.writes, "delete "+ref)
	if f.failDel {
		return errors.New("deletes disabled")
	}
	delete(f.tags, ref)
	return nil
}

const r = "reg.example.com/team/app"

func staged() *fake {
	return &fake{tags: map[string]string{
		r + ":c1_latest": "sha256:new", r + ":c1_1.0": "sha256:new",
		r + ":latest": "sha256:old", r + ":1.0": "sha256:new",
	}}
}

var items = []Item{{Src: r + ":c1_latest", Dst: r + ":latest"}, {Src: r + ":c1_1.0", Dst: r + ":1.0"}}

func TestRun(t *testing.T) {
	f := staged()
	res, err := Run(context.Background(), f, items, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 1.0 already served the staged digest: not written; both stage tags deleted.
	want := []string{"tag " + r + ":latest " + r + "@sha256:new", "delete " + r + ":c1_latest", "delete " + r + ":c1_1.0"}
	if strings.Join(f.writes, "\n") != strings.Join(want, "\n") {
		t.Errorf("writes:\n%s\nwant:\n%s", strings.Join(f.writes, "\n"), strings.Join(want, "\n"))
	}
	img := res.Images[0]
	if !res.Changed || len(res.Images) != 1 || !img.Promoted[0].Changed || img.Promoted[0].Previous != "sha256:old" ||
		img.Promoted[1].Changed || img.Promoted[1].Previous != "sha256:new" || len(img.Deleted) != 2 {
		t.Errorf("facts: %+v", res)
	}
}

func TestRunDryRun(t *testing.T) {
	f := staged()
	res, err := Run(context.Background(), f, items, Options{DryRun: true})
	if err != nil || len(f.writes) != 0 || !res.Changed || len(res.Images[0].Deleted) != 2 {
		t.Fatalf("dry run: %+v, %v, writes %v", res, err, f.writes)
	}
}

func TestRunFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("out of scope before any request", func(t *testing.T) {
		f := staged()
		f.forbidden = r
		res, err := Run(ctx, f, items, Options{})
		if !errors.Is(err, registry.ErrOutOfScope) || res.Failed.Step != result.StepCheck || len(f.writes) != 0 {
			t.Fatalf("%+v, %v, writes %v", res, err, f.writes)
		}
	})
	t.Run("missing stage tag", func(t *testing.T) {
		f := staged()
		delete(f.tags, r+":c1_1.0")
		_, err := Run(ctx, f, items, Options{})
		if err == nil || !strings.Contains(err.Error(), r+":c1_1.0 does not exist") || len(f.writes) != 0 {
			t.Fatalf("%v, writes %v", err, f.writes)
		}
	})
	t.Run("a failed move rolls back", func(t *testing.T) {
		f := staged()
		f.tags[r+":1.0"] = "sha256:older"
		f.failTag = r + ":1.0"
		res, err := Run(ctx, f, items, Options{})
		if err == nil || res.Failed.Step != result.StepTag || res.Changed || f.tags[r+":latest"] != "sha256:old" || f.tags[r+":c1_latest"] != "sha256:new" {
			t.Fatalf("%+v, %v, tags %v", res, err, f.tags)
		}
	})
	t.Run("a failed delete keeps the promote", func(t *testing.T) {
		f := staged()
		f.failDel = true
		res, err := Run(ctx, f, items, Options{})
		if err == nil || res.Failed.Step != result.StepDelete || !res.Changed || f.tags[r+":latest"] != "sha256:new" {
			t.Fatalf("%+v, %v", res, err)
		}
	})
}

func TestCheck(t *testing.T) {
	for name, tt := range map[string]struct {
		items []Item
		want  string
	}{
		"final tag twice":      {[]Item{{r + ":a", r + ":x"}, {r + ":b", r + ":x"}}, "final tag given twice"},
		"final by digest":      {[]Item{{r + ":a", r + "@sha256:" + strings.Repeat("a", 64)}}, "must name a tag"},
		"final without tag":    {[]Item{{r + ":a", r}}, "must name a tag"},
		"source without tag":   {[]Item{{"127.0.0.1:5000/app", r + ":x"}}, "names no tag or digest"},
		"source is a final":    {[]Item{{r + ":a", r + ":b"}, {r + ":b", r + ":c"}}, "both a staged reference and a final tag"},
		"unparsable reference": {[]Item{{"Bad Ref:a", r + ":x"}}, "parsing the staged reference"},
	} {
		if _, err := check(tt.items); err == nil || !strings.Contains(err.err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", name, err, tt.want)
		}
	}
	if its, err := check([]Item{{r + "@sha256:" + strings.Repeat("a", 64), r + ":x"}}); err != nil || its[0].stage {
		t.Errorf("a digest source: %v (stage %v), want accepted and not deleted", err, its[0].stage)
	}
}

func TestFromFiles(t *testing.T) {
	p, err := params.Load([]byte(`{"source": {"git_repo": {"url": "https://example.com/r.git"}},
		"target": {"registry": {"url": "reg.example.com", "stage_tag": "c{{.Vars.change}}_{{.Tag}}"},
		"images": [{"image": "team/app", "tag": "latest", "tags": ["1.0"]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := FromParams(*p, map[string]string{"change": "1"})
	if err != nil || fmt.Sprint(got) != fmt.Sprint(items) {
		t.Errorf("FromParams = %v, %v; want %v", got, err, items)
	}
	if _, err := FromParams(*p, nil); err == nil || !strings.Contains(err.Error(), "/target/registry/stage_tag") {
		t.Errorf("FromParams without the variable: %v", err)
	}
	p.Target.Registry.StageTag = ""
	if _, err := FromParams(*p, nil); !errors.Is(err, ErrNothingStaged) {
		t.Errorf("FromParams without stage_tag: %v", err)
	}

	f, err := family.Load([]byte("registry: {url: reg.example.com, stage_tag: 'c{{.Vars.change}}_{{.Tag}}'}\nnamespace: team\n" +
		"variables: {change: '0'}\ntag: latest\ntags: ['1.0']\nsources: {s: {local: {path: .}}}\nimages: [{name: app, source: s}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.Dir = t.TempDir()
	fam, err := f.Expand(family.ExpandOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err = FromFamily(fam, map[string]string{"change": "1"})
	if err != nil || fmt.Sprint(got) != fmt.Sprint(items) {
		t.Errorf("FromFamily = %v, %v; want %v", got, err, items)
	}
}

func TestParseRefs(t *testing.T) {
	got, err := ParseRefs([]string{r + ":c1_latest=" + r + ":latest"})
	if err != nil || len(got) != 1 || got[0] != items[0] {
		t.Errorf("ParseRefs = %v, %v", got, err)
	}
	for _, bad := range []string{r + ":a", "=" + r + ":b", r + ":a="} {
		if _, err := ParseRefs([]string{bad}); err == nil {
			t.Errorf("ParseRefs(%q) accepted", bad)
		}
	}
}
