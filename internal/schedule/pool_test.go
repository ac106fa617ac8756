package schedule

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestPoolSurvivesDeadEndpoint runs two real builds on a pool of two
// endpoints of the real buildkitd: one through a socket proxy that is
// killed while the first build's RUN step sleeps on it, one direct. The
// killed build comes back with the error a dying endpoint gives, the proxy
// is taken out of the pool, and the build finishes on the other endpoint.
func TestPoolSurvivesDeadEndpoint(t *testing.T) {
	env := testenv.Require(t, testenv.BuildKit, testenv.Registry, testenv.Base)
	proxy := testenv.StartSocketProxy(t, strings.TrimPrefix(env[testenv.BuildKit], "unix://"))
	ctxDir := t.TempDir()
	nonce := time.Now().UnixNano() // keeps the steps out of the cache
	for name, df := range map[string]string{
		"slow":  fmt.Sprintf("ARG BASE\nFROM ${BASE}\nRUN echo %d && sleep 8\n", nonce),
		"quick": fmt.Sprintf("ARG BASE\nFROM ${BASE}\nRUN echo %d > /quick\n", nonce),
	} {
		if err := os.WriteFile(filepath.Join(ctxDir, name+".Dockerfile"), []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var killOnce sync.Once
	do := func(ctx context.Context, task Task, ep string) error {
		b, err := builder.New(ctx, ep)
		if err != nil {
			return err
		}
		defer b.Close()
		_, err = b.Build(ctx, builder.Request{
			ContextDir: ctxDir,
			Dockerfile: filepath.Join(ctxDir, task.ID+".Dockerfile"),
			Platforms:  task.Platforms,
			BuildArgs:  map[string]string{"BASE": env[testenv.Base]},
			Repository: fmt.Sprintf("%s/schedule-test/pool-%s", env[testenv.Registry], task.ID),
			Progress: func(s *client.SolveStatus) {
				for _, v := range s.Vertexes {
					if ep == proxy.Addr && strings.Contains(v.Name, "sleep 8") && v.Started != nil {
						killOnce.Do(func() { go proxy.Kill() })
					}
				}
			},
		})
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var events []Event
	out := Run(ctx, []Task{{ID: "slow", Platforms: []string{"linux/amd64"}}, {ID: "quick", Platforms: []string{"linux/amd64"}}}, Options{
		// Equal free slots: the first task goes to the first endpoint, the proxy.
		Endpoints: []Endpoint{{Name: proxy.Addr}, {Name: env[testenv.BuildKit]}},
		Backoff:   func(int) time.Duration { return 10 * time.Millisecond },
		Event:     func(e Event) { events = append(events, e) },
	}, do)
	for _, e := range events {
		t.Logf("%s %s %s attempt %d %s %v", e.Kind, e.Task, e.Endpoint, e.Attempt, e.State, e.Err)
	}
	slow := out["slow"]
	if slow.State != Done || out["quick"].State != Done {
		t.Fatalf("slow %s (%v), quick %s (%v)", slow.State, slow.Err, out["quick"].State, out["quick"].Err)
	}
	first, last := slow.Attempts[0], slow.Attempts[len(slow.Attempts)-1]
	if first.Endpoint != proxy.Addr || first.Err == nil || !(Transient(first.Err) || Lost(first.Err)) {
		t.Errorf("slow's first attempt: %+v, want a transient or lost error on the proxy", first)
	}
	if last.Endpoint != env[testenv.BuildKit] || last.Err != nil {
		t.Errorf("slow's last attempt: %+v, want success on %s", last, env[testenv.BuildKit])
	}
	lost := false
	for _, e := range events {
		lost = lost || (e.Kind == EventEndpointLost && e.Endpoint == proxy.Addr)
	}
	if !lost {
		t.Error("the proxy was never reported lost")
	}
}
