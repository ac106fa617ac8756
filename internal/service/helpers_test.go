package service

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

func TestMain(m *testing.M) {
	// The test binary doubles as a replica of `imagebuilder serve` (see replica_test.go).
	if url := os.Getenv(replicaEnv); url != "" {
		os.Exit(runReplica(url))
	}
	os.Exit(m.Run())
}

// testKey seals every test service's documents.
var testKey = func() []byte {
	k := make([]byte, 32)
	rand.Read(k) //nolint:errcheck // never fails
	return k
}()

// engines are the databases every service test runs on: a fresh SQLite file, a fresh
// PostgreSQL database.
var engines = map[string]func(t *testing.T) string{
	engineSQLite:   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "serve.db") },
	enginePostgres: func(t *testing.T) string { return testenv.PostgresDatabase(t) },
}

// forEngine runs fn on each engine, in parallel.
func forEngine(t *testing.T, fn func(t *testing.T, url string)) {
	for name, mk := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, mk(t))
		})
	}
}

// testOptions are a test service's options: BuildKit of the test environment, quick polls.
func testOptions(t *testing.T, workers int) Options {
	env := testenv.Require(t, testenv.BuildKit, testenv.Registry, testenv.Base)
	return Options{
		Workers:        workers,
		SecretKey:      testKey,
		PollInterval:   100 * time.Millisecond,
		reconcileEvery: 500 * time.Millisecond,
		Pipeline:       pipeline.Options{Endpoint: env[testenv.BuildKit], TempDir: t.TempDir()},
		AllowLocal:     true, // the test repositories are file:// URLs
	}
}

// openService opens and starts a service; it stops and closes when the test ends.
func openService(t *testing.T, url string, opts Options) *Service {
	t.Helper()
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stopping: %v", err)
		}
		s.Close()
	})
	return s
}

var (
	alice = Principal{Name: "alice"}
	bob   = Principal{Name: "bob"}
	admin = Principal{Name: "root", Admin: true}
)

// nonce is a string no other test run uses (to defeat BuildKit's cache).
func nonce() string {
	b := make([]byte, 6)
	rand.Read(b) //nolint:errcheck // never fails
	return hex.EncodeToString(b)
}

// buildDoc is build params for a git repository and images of the test registry.
func buildDoc(t *testing.T, repo, registry string, images ...map[string]any) []byte {
	t.Helper()
	data, err := json.Marshal(map[string]any{
		"source": map[string]any{"git_repo": map[string]any{"url": repo, "version": "main"}},
		"target": map[string]any{"images": images, "registry": map[string]any{"url": registry}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// demoRepo is a repository whose Dockerfile has stages: ok (a file), slow (sleeps), broken
// (fails), and secret (prints the build secret tok).
func demoRepo(t *testing.T) string {
	env := testenv.Require(t, testenv.Base)
	n := nonce()
	return testenv.GitRepoURL(t, map[string]string{
		"Dockerfile": fmt.Sprintf(`FROM %[1]s AS ok
RUN echo %[2]s > /built
FROM %[1]s AS slow
ARG SLEEP=60
RUN echo %[2]s sleeping $SLEEP && sleep $SLEEP
FROM %[1]s AS broken
RUN echo %[2]s failing on purpose && false
FROM %[1]s AS secret
RUN --mount=type=secret,id=tok echo %[2]s && echo "the secret is $(cat /run/secrets/tok)"
`, env[testenv.Base], n),
	})
}

// waitEnded waits for an invocation to end.
func waitEnded(t *testing.T, s *Service, id string, within time.Duration) *Invocation {
	t.Helper()
	return waitFor(t, s, id, within, func(inv *Invocation) bool { return inv.State.Ended() })
}

// waitFor polls an invocation until ok says so.
func waitFor(t *testing.T, s *Service, id string, within time.Duration, ok func(*Invocation) bool) *Invocation {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		inv, err := s.Get(context.Background(), admin, id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(inv) {
			return inv
		}
		if time.Now().After(deadline) {
			lines, _, _ := s.Logs(context.Background(), admin, id, 0, 0)
			t.Fatalf("invocation %s still %s after %s (attempt %d)\nlog:\n%s", id, inv.State, within, inv.Attempt, logText(lines))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func logText(lines []LogLine) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%d %s\n", l.Seq, l.Text)
	}
	return b.String()
}

// allLogs reads an invocation's whole log through Logs' pages.
func allLogs(t *testing.T, s *Service, p Principal, id string) ([]LogLine, bool) {
	t.Helper()
	var out []LogLine
	var after int64
	for {
		lines, ended, err := s.Logs(context.Background(), p, id, after, 7) // small pages: paging is tested too
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, lines...)
		if len(lines) == 0 || ended {
			return out, ended
		}
		after = lines[len(lines)-1].Seq
	}
}

// scanDatabase fails when any of needles is in any column of any row of any table of the
// service's database, or (SQLite) in the bytes of its files.
func scanDatabase(t *testing.T, s *Service, needles ...string) {
	t.Helper()
	ctx := context.Background()
	var tables []string
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if s.db.url.engine == enginePostgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) < 5 {
		t.Fatalf("only tables %v", tables)
	}
	cells := 0
	for _, table := range tables {
		rows, err := s.db.QueryContext(ctx, `SELECT * FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				cells++
				text := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					text = string(b)
				}
				for _, n := range needles {
					if strings.Contains(text, n) {
						t.Errorf("a secret is in %s.%s: %.200s", table, cols[i], text)
					}
				}
			}
		}
		rows.Close()
	}
	t.Logf("scanned %d tables, %d cells", len(tables), cells)
	if s.db.url.engine != engineSQLite {
		return
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		data, err := os.ReadFile(s.db.url.path + suffix)
		if err != nil {
			continue
		}
		for _, n := range needles {
			if strings.Contains(string(data), n) {
				t.Errorf("a secret is in the bytes of %s", filepath.Base(s.db.url.path+suffix))
			}
		}
	}
}

// countRows counts the rows a query returns.
func countRows(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
