package service

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/seal"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// replicaEnv makes the test binary a replica: a service on the database URL it holds, with
// its workers, until SIGTERM (a graceful stop) or SIGKILL.
const replicaEnv = "IMAGEBUILDER_TEST_SERVICE_REPLICA"

// The replica's settings: short timeouts, so that a killed replica's job is rescued soon.
const (
	replicaJobTimeout  = 20 * time.Second
	replicaRescueAfter = 21 * time.Second
)

func runReplica(url string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s, err := Open(ctx, url, Options{
		Workers:        2,
		Pipeline:       pipeline.Options{Endpoint: os.Getenv(testenv.BuildKit)},
		JobTimeout:     replicaJobTimeout,
		RescueAfter:    replicaRescueAfter,
		PollInterval:   100 * time.Millisecond,
		reconcileEvery: time.Second,
		AllowLocal:     true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 1
	}
	defer s.Close()
	if err := s.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 1
	}
	fmt.Println("replica", s.replica, "ready")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Stop(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 1
	}
	return 0
}

// replica is a replica process.
type replica struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startReplica starts the test binary as a replica on url.
func startReplica(t *testing.T, url, name string) *replica {
	t.Helper()
	log := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), replicaEnv+"="+url, seal.EnvKey+"="+base64.StdEncoding.EncodeToString(testKey))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r := &replica{cmd: cmd, log: log, done: make(chan struct{})}
	go func() { cmd.Wait(); close(r.done) }() //nolint:errcheck // the exit is looked at through done
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
			select {
			case <-r.done:
			case <-time.After(40 * time.Second):
				cmd.Process.Kill() //nolint:errcheck // it may have exited
				<-r.done
			}
		}
		if t.Failed() {
			data, _ := os.ReadFile(log)
			t.Logf("replica %s (pid %d) output:\n%s", name, cmd.Process.Pid, data)
		}
	})
	return r
}

// TestReplicas: two replicas (separate processes) on one PostgreSQL database share the work:
// 10 builds complete exactly once each. Then the replica running a build is killed (SIGKILL):
// the build completes on the other (attempt 2) or fails with a reason; nothing stays
// in_progress.
func TestReplicas(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.BuildKit)
	reg := env[testenv.Registry]
	url := testenv.PostgresDatabase(t)
	ctx := context.Background()
	// This process only queues (Workers 0); it migrates the database before the replicas start.
	opts := testOptions(t, 0)
	opts.reconcileEvery = time.Second
	s := openService(t, url, opts)
	replicas := []*replica{startReplica(t, url, "a"), startReplica(t, url, "b")}

	repo := demoRepo(t)
	tag := testenv.UniqueTag("replicas")
	var ids []string
	for i := range 10 {
		inv, err := s.Submit(ctx, alice, KindBuild, buildDoc(t, repo, reg, map[string]any{"image": "service/replicas", "tag": fmt.Sprintf("%s-%d", tag, i), "target": "ok"}), false)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, inv.ID)
	}
	ran := map[string]int{}
	for _, id := range ids {
		inv := waitEnded(t, s, id, 3*time.Minute)
		if inv.State != Success || inv.Attempt != 1 {
			t.Errorf("invocation %s: %s, attempt %d: %s", id, inv.State, inv.Attempt, inv.Error)
		}
		var replica string
		if err := s.db.QueryRow(s.db.q(`SELECT replica FROM invocations WHERE id = ?`), id).Scan(&replica); err != nil {
			t.Fatal(err)
		}
		ran[replica]++
	}
	// Exactly once: one job per invocation, worked once, completed (River records the
	// completion just after the invocation ends).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		n := countRows(t, s.db.DB, `SELECT COUNT(*) FROM river_job WHERE state = 'completed' AND attempt = 1`)
		if n == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d jobs completed at their first attempt, want 10", n)
			break
		}
	}
	if n := countRows(t, s.db.DB, `SELECT COUNT(*) FROM river_job`); n != 10 {
		t.Errorf("%d jobs, want 10", n)
	}
	t.Logf("builds per replica: %v", ran)

	// The slow build: whichever replica takes it is killed.
	inv, err := s.Submit(ctx, alice, KindBuild, buildDoc(t, repo, reg, map[string]any{"image": "service/replicas", "tag": tag + "-slow", "target": "slow", "build_args": map[string]string{"SLEEP": "5"}}), false)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, inv.ID, time.Minute, func(inv *Invocation) bool { return inv.State == InProgress })
	var runner string
	if err := s.db.QueryRow(s.db.q(`SELECT replica FROM invocations WHERE id = ?`), inv.ID).Scan(&runner); err != nil {
		t.Fatal(err)
	}
	var victim *replica
	for _, r := range replicas {
		if strings.HasSuffix(runner, fmt.Sprintf("-%d", r.cmd.Process.Pid)) {
			victim = r
		}
	}
	if victim == nil {
		t.Fatalf("no replica runs it (replica %q)", runner)
	}
	time.Sleep(time.Second)
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	killed := time.Now()
	end := waitEnded(t, s, inv.ID, 2*time.Minute)
	lines, _ := allLogs(t, s, admin, inv.ID)
	t.Logf("after the kill: %s in %s, attempt %d %s", end.State, time.Since(killed).Round(time.Second), end.Attempt, end.Error)
	switch end.State {
	case Success:
		if end.Attempt != 2 || !strings.Contains(logText(lines), "attempt 2: the previous attempt was lost") {
			t.Errorf("success at attempt %d; log:\n%s", end.Attempt, logText(lines))
		}
	case Failed:
		if end.Error == "" {
			t.Errorf("failed without a reason")
		}
	default:
		t.Errorf("ended %s", end.State)
	}
	if n := countRows(t, s.db.DB, `SELECT COUNT(*) FROM invocations WHERE state IN ('pending', 'in_progress')`); n != 0 {
		t.Errorf("%d invocations did not end", n)
	}
}
