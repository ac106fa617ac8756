package service

import (
	"context"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestSQLiteRestart: a single-node server stopped with queued jobs — one that queued only
// (Workers 0), one stopped gracefully while it built — runs them after the restart: the build
// that was running when Stop came finishes before Stop returns; the queued ones wait.
func TestSQLiteRestart(t *testing.T) {
	env := testenv.Require(t, testenv.Registry)
	reg := env[testenv.Registry]
	url := engines[engineSQLite](t)
	ctx := context.Background()
	repo := demoRepo(t)
	tag := testenv.UniqueTag("restart")

	// A replica that only queues.
	opts := testOptions(t, 0)
	s, err := Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	queued, err := s.Submit(ctx, alice, KindBuild, buildDoc(t, repo, reg, map[string]any{"image": "service/restart", "tag": tag + "-q", "target": "ok"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// One worker: the slow build runs, the next one waits; Stop lets the slow one finish.
	opts = testOptions(t, 1)
	s, err = Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, s, queued.ID, 2*time.Minute)
	slow, err := s.Submit(ctx, alice, KindBuild, buildDoc(t, repo, reg, map[string]any{"image": "service/restart", "tag": tag + "-slow", "target": "slow", "build_args": map[string]string{"SLEEP": "2"}}), false)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, slow.ID, time.Minute, func(inv *Invocation) bool { return inv.State == InProgress })
	after, err := s.Submit(ctx, alice, KindBuild, buildDoc(t, repo, reg, map[string]any{"image": "service/restart", "tag": tag + "-after", "target": "ok"}), false)
	if err != nil {
		t.Fatal(err)
	}
	stopCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]State{slow.ID: Success, after.ID: Pending} {
		if inv, err := s.Get(ctx, admin, id); err != nil || inv.State != want {
			t.Fatalf("after Stop: %+v %v, want %s", inv, err, want)
		}
	}
	s.Close()

	s = openService(t, url, testOptions(t, 1))
	for _, id := range []string{queued.ID, after.ID} {
		if inv := waitEnded(t, s, id, 2*time.Minute); inv.State != Success || inv.Attempt != 1 {
			t.Errorf("after the restart: %s %s attempt %d", id, inv.State, inv.Attempt)
		}
	}
}
