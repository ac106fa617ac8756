package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"

	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// builtPlatforms lists the platforms of the builds an engine ran with the build arg NONCE=nonce,
// from its build history: what that engine itself built.
func builtPlatforms(t *testing.T, addr, nonce string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stream, err := c.ControlClient().ListenBuildHistory(ctx, &controlapi.BuildHistoryRequest{EarlyExit: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec := ev.Record; rec != nil && rec.FrontendAttrs["build-arg:NONCE"] == nonce {
			out = append(out, rec.FrontendAttrs["platform"])
		}
	}
	slices.Sort(out)
	return out
}

// TestNativePlatformBuilds: with two BuildKit engines in the pool, one declared native for
// linux/amd64 and one for linux/arm64, a two-platform image is split: each platform builds (its
// RUN runs) on its own engine only, and one index joins them — for a build-params request and for
// a family alike.
func TestNativePlatformBuilds(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.BuildKit, testenv.Base)
	arm := testenv.StartBuildkitd(t)
	amd := env[testenv.BuildKit]
	pool := []params.PoolEndpoint{
		{Endpoint: amd, Jobs: 2, Platforms: []string{"linux/amd64"}},
		{Endpoint: arm.Addr, Jobs: 2, Platforms: []string{"linux/arm64"}},
	}
	dir := t.TempDir()
	df := "FROM " + env[testenv.Base] + "\nARG NONCE\nRUN echo $NONCE $(uname -m) > /arch\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	both := []string{"linux/amd64", "linux/arm64"}
	check := func(what, nonce string, builds map[string]string) {
		t.Helper()
		if builds["linux/amd64"] != amd || builds["linux/arm64"] != arm.Addr {
			t.Errorf("%s: platform builds on %v", what, builds)
		}
		if got := builtPlatforms(t, amd, nonce); !slices.Equal(got, []string{"linux/amd64"}) {
			t.Errorf("%s: the amd64 engine built %v", what, got)
		}
		if got := builtPlatforms(t, arm.Addr, nonce); !slices.Equal(got, []string{"linux/arm64"}) {
			t.Errorf("%s: the arm64 engine built %v", what, got)
		}
	}

	nonce := fmt.Sprint(time.Now().UnixNano())
	p := params.BuildParams{
		Source:  params.Source{Local: &params.Local{Path: dir}},
		Builder: &params.Builder{Endpoints: pool},
		Target: params.Target{
			Registry: params.Registry{URL: env[testenv.Registry]},
			Images:   []params.Image{{Image: "e2e/native", Tag: testenv.UniqueTag("split"), Platforms: both, BuildArgs: map[string]string{"NONCE": nonce}}},
		},
	}
	var logs []string
	res, err := Run(context.Background(), p, Options{Log: func(l string) { logs = append(logs, l) }})
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(logs, "\n"))
	}
	img := res.Images[0]
	builds := map[string]string{}
	for _, b := range img.PlatformBuilds {
		builds[b.Platform] = b.Endpoint
	}
	check("build params", nonce, builds)
	if !slices.Equal(img.Platforms, both) || len(img.PlatformBuilds) != 2 {
		t.Errorf("result: %+v", img)
	}
	for _, pl := range both {
		ref := img.Repository + "@" + img.Digest
		if got := testenv.FileInImage(t, ref, pl, "/arch"); !strings.HasPrefix(got, nonce+" ") {
			t.Errorf("%s of the index: %q", pl, got)
		}
	}
	if !slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, "linux/arm64 on "+arm.Addr+" (natively)") }) {
		t.Errorf("the progress does not say the arm64 build is native:\n%s", strings.Join(logs, "\n"))
	}

	// The same image as a family member.
	nonce = fmt.Sprint(time.Now().UnixNano())
	doc := fmt.Sprintf("registry: {url: %q}\nnamespace: e2e-native\nsources: {main: {local: {path: %q}}}\nbuilder: {endpoints: [{endpoint: %q, jobs: 2, platforms: [linux/amd64]}, {endpoint: %q, jobs: 2, platforms: [linux/arm64]}]}\nimages:\n  - {name: split, platforms: [linux/amd64, linux/arm64], build_args: {NONCE: %q}}\n", env[testenv.Registry], dir, amd, arm.Addr, nonce)
	rep, err := RunFamily(context.Background(), loadFamily(t, doc, dir), FamilyOptions{Rebuild: true})
	if err != nil {
		t.Fatalf("%v\n%+v", err, rep)
	}
	builds = map[string]string{}
	for _, b := range rep.Images[0].Platforms {
		builds[b.Platform] = b.Endpoint
	}
	check("family", nonce, builds)
}
