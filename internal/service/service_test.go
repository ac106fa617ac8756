package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imagebuilder/imagebuilder/internal/result"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestService runs builds through the service on each engine: a success with its digest in
// the registry and its log, a failure naming the image and step, refusals before anything is
// queued, owners, listing, and cancels of a pending and a running build.
func TestService(t *testing.T) {
	env := testenv.Require(t, testenv.Registry)
	reg := env[testenv.Registry]
	forEngine(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openService(t, url, testOptions(t, 2))
		repo := demoRepo(t)
		tag := testenv.UniqueTag("svc")

		ok, err := s.Submit(ctx, alice, KindBuild, buildDoc(t, repo, reg, map[string]any{"image": "service/ok", "tag": tag, "target": "ok"}), false)
		if err != nil {
			t.Fatal(err)
		}
		broken, err := s.Submit(ctx, alice, KindBuild, buildDoc(t, repo, reg,
			map[string]any{"image": "service/ok", "tag": tag + "-a", "target": "ok"},
			map[string]any{"image": "service/broken", "tag": tag, "target": "broken"}), false)
		if err != nil {
			t.Fatal(err)
		}
		if ok.State != Pending || ok.Owner != "alice" || len(ok.Images) != 1 || ok.Images[0] != reg+"/service/ok:"+tag {
			t.Errorf("submitted: %+v", ok)
		}

		t.Run("success", func(t *testing.T) {
			inv := waitEnded(t, s, ok.ID, 2*time.Minute)
			if inv.State != Success || inv.Attempt != 1 || inv.Started == nil || inv.Ended == nil || inv.Error != "" {
				t.Fatalf("ended: %+v", inv)
			}
			var res result.Result
			if err := json.Unmarshal(inv.Result, &res); err != nil || len(res.Images) != 1 {
				t.Fatalf("result %s: %v", inv.Result, err)
			}
			img := res.Images[0]
			if got := testenv.RegistryDigest(t, img.Ref, nil); got == "" || got != img.Digest {
				t.Errorf("result digest %s, the registry serves %s", img.Digest, got)
			}
			lines, ended := allLogs(t, s, alice, ok.ID)
			text := logText(lines)
			if !ended || !strings.Contains(text, "[imagebuilder] builder: buildkit") || !strings.Contains(text, "pushed "+img.Digest) || !strings.HasSuffix(text, "success\n") {
				t.Errorf("log (ended %v):\n%s", ended, text)
			}
			for i, l := range lines {
				if l.Seq != int64(i+1) {
					t.Fatalf("line %d has seq %d", i, l.Seq)
				}
			}
			if n := countRows(t, s.db.DB, s.db.q(`SELECT COUNT(*) FROM invocation_secrets WHERE invocation_id = ?`), ok.ID); n != 0 {
				t.Errorf("the sealed document of an ended invocation is still there")
			}
		})

		t.Run("failure", func(t *testing.T) {
			inv := waitEnded(t, s, broken.ID, 2*time.Minute)
			ref := reg + "/service/broken:" + tag
			if inv.State != Failed || !strings.Contains(inv.Error, ref) || !strings.Contains(inv.Error, "build") {
				t.Fatalf("ended: %s %q", inv.State, inv.Error)
			}
			var res result.Result
			if err := json.Unmarshal(inv.Result, &res); err != nil || res.Failed == nil || res.Failed.Step != result.StepBuild || res.Failed.Image != ref {
				t.Fatalf("result %s", inv.Result)
			}
			if d := testenv.RegistryDigest(t, reg+"/service/ok:"+tag+"-a", nil); d != "" {
				t.Errorf("a failed request moved a tag")
			}
		})

		t.Run("invalid", func(t *testing.T) {
			before := countRows(t, s.db.DB, `SELECT COUNT(*) FROM invocations`)
			_, err := s.Submit(ctx, alice, KindBuild, []byte(`{"source": {"git_repo": {"url": "https://example.com/x.git", "password": "hunter2hunter2"}}, "target": {"images": [{"image": "UPPER", "tag": "t"}], "registry": {"url": "127.0.0.1:5000", "password": "hunter2hunter2"}}}`), false)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v, want a *ValidationError", err)
			}
			pointers := map[string]bool{}
			for _, fe := range ve.Errors {
				pointers[fe.Pointer] = true
				if strings.Contains(fe.Message, "hunter2") {
					t.Errorf("a message quotes a password: %s", fe.Message)
				}
			}
			if !pointers["/target/images/0/image"] || !pointers["/target/registry"] {
				t.Errorf("pointers %v", pointers)
			}
			_, err = s.Submit(ctx, alice, KindBuild, []byte("source: [unclosed"), false)
			if !errors.As(err, &ve) {
				t.Errorf("bad YAML: %v", err)
			}
			if after := countRows(t, s.db.DB, `SELECT COUNT(*) FROM invocations`); after != before {
				t.Errorf("an invalid document was stored")
			}
		})

		t.Run("owners", func(t *testing.T) {
			if _, err := s.Get(ctx, bob, ok.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("bob reads alice's invocation: %v", err)
			}
			if _, err := s.Get(ctx, admin, ok.ID); err != nil {
				t.Errorf("an admin cannot read it: %v", err)
			}
			if _, _, err := s.Logs(ctx, bob, ok.ID, 0, 0); !errors.Is(err, ErrNotFound) {
				t.Errorf("bob reads alice's log: %v", err)
			}
			if _, err := s.Cancel(ctx, bob, ok.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("bob cancels alice's invocation: %v", err)
			}
			for _, id := range []string{"nope", "", "00000000-0000-0000-0000-000000000000"} {
				if _, err := s.Get(ctx, admin, id); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get(%q): %v", id, err)
				}
			}
			if _, err := s.Cancel(ctx, alice, ok.ID); !errors.Is(err, ErrEnded) {
				t.Errorf("cancel of an ended invocation: %v", err)
			}
		})

		t.Run("cancel running", func(t *testing.T) {
			inv, err := s.Submit(ctx, bob, KindBuild, buildDoc(t, repo, reg, map[string]any{"image": "service/slow", "tag": tag, "target": "slow"}), false)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, s, inv.ID, time.Minute, func(inv *Invocation) bool { return inv.State == InProgress })
			time.Sleep(time.Second) // into the build
			if _, err := s.Cancel(ctx, bob, inv.ID); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got := waitEnded(t, s, inv.ID, 30*time.Second)
			if got.State != Canceled || got.Error != "canceled by bob" {
				t.Fatalf("ended %s %q", got.State, got.Error)
			}
			t.Logf("a running build ended %s after its cancel", time.Since(start).Round(time.Millisecond))
			lines, ended := allLogs(t, s, bob, inv.ID)
			if text := logText(lines); !ended || !strings.HasSuffix(text, " canceled by bob\n") || strings.Contains(text, "interrupted") {
				t.Errorf("log:\n%s", text)
			}
		})

		t.Run("list", func(t *testing.T) {
			page, err := s.List(ctx, alice, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != 2 || page.Items[0].ID != broken.ID || page.Items[1].ID != ok.ID || page.NextCursor != "" {
				t.Fatalf("alice's list: %+v", page)
			}
			var ids []string
			f := Filter{Limit: 1}
			for {
				page, err := s.List(ctx, admin, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, inv := range page.Items {
					ids = append(ids, inv.ID)
				}
				if page.NextCursor == "" {
					break
				}
				f.Cursor = page.NextCursor
			}
			if len(ids) != 3 || ids[2] != ok.ID {
				t.Errorf("admin's pages: %v", ids)
			}
			page, err = s.List(ctx, admin, Filter{States: []State{Failed, Canceled}, Owner: "alice"})
			if err != nil || len(page.Items) != 1 || page.Items[0].ID != broken.ID {
				t.Errorf("filtered: %+v %v", page, err)
			}
			page, err = s.List(ctx, bob, Filter{Owner: "alice"})
			if err != nil || len(page.Items) != 1 || page.Items[0].Owner != "bob" {
				t.Errorf("bob asks for alice's: %+v %v", page, err)
			}
			var ve *ValidationError
			for _, f := range []Filter{{Cursor: "garbage"}, {Limit: 101}, {States: []State{"done"}}, {Kind: "x"}} {
				if _, err := s.List(ctx, admin, f); !errors.As(err, &ve) {
					t.Errorf("List(%+v): %v", f, err)
				}
			}
		})

		t.Run("metrics", func(t *testing.T) {
			want := `
# HELP imagebuilder_invocations Invocations by state.
# TYPE imagebuilder_invocations gauge
imagebuilder_invocations{state="canceled"} 1
imagebuilder_invocations{state="failed"} 1
imagebuilder_invocations{state="in_progress"} 0
imagebuilder_invocations{state="pending"} 0
imagebuilder_invocations{state="success"} 1
`
			if err := testutil.CollectAndCompare(s.Collector(), strings.NewReader(want), "imagebuilder_invocations"); err != nil {
				t.Error(err)
			}
			if n := testutil.CollectAndCount(s.Collector(), "imagebuilder_builds_total"); n != 3 {
				t.Errorf("%d builds_total series", n)
			}
			reg := prometheus.NewPedanticRegistry()
			if err := reg.Register(s.Collector()); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
			}
		})
		if err := s.Ready(ctx); err != nil {
			t.Errorf("not ready: %v", err)
		}
	})
}

// TestPolicy: without AllowLocal, what a document asks of the server's own resources is
// refused at submission, each with its pointer; with it, the same document is queued.
func TestPolicy(t *testing.T) {
	url := engines[engineSQLite](t)
	opts := testOptions(t, 0)
	opts.AllowLocal = false
	s := openService(t, url, opts)
	ctx := context.Background()
	doc := `{
	  "source": {"local": {"path": "/etc"}},
	  "secrets": {"a": {"file": "/etc/shadow"}, "b": {"env": "HOME"}, "c": {"value": "fine-inline"}},
	  "ssh": "default",
	  "builder": {"endpoint": "plugin:evil", "tls": {"ca_cert": "/etc/ssl/ca.pem"}},
	  "target": {"images": [{"image": "a/b", "tag": "t", "secrets": {"d": {"file": "/root/x"}}}], "registry": {"url": "127.0.0.1:5000"}}
	}`
	_, err := s.Submit(ctx, alice, KindBuild, []byte(doc), false)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v", err)
	}
	var got []string
	for _, fe := range ve.Errors {
		got = append(got, fe.Pointer)
	}
	want := []string{"/source/local", "/secrets/a/file", "/secrets/b/env", "/ssh", "/target/images/0/secrets/d/file", "/builder/endpoint", "/builder/tls"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("pointers %v, want %v", got, want)
	}
	for _, u := range []string{"file:///srv/repo", "/srv/repo", "./repo", "repo"} {
		_, err := s.Submit(ctx, alice, KindBuild, []byte(fmt.Sprintf(`{"source": {"git_repo": {"url": %q}}, "target": {"images": [{"image": "a", "tag": "t"}], "registry": {"url": "r.example"}}}`, u)), false)
		if !errors.As(err, &ve) || ve.Errors[0].Pointer != "/source/git_repo/url" {
			t.Errorf("git url %s: %v", u, err)
		}
	}
	for _, u := range []string{"https://git.example/r.git", "git@git.example:r.git", "ssh://git@git.example/r.git"} {
		if _, err := s.Submit(ctx, alice, KindBuild, []byte(fmt.Sprintf(`{"source": {"git_repo": {"url": %q}}, "target": {"images": [{"image": "a", "tag": "t"}], "registry": {"url": "r.example"}}}`, u)), false); err != nil {
			t.Errorf("git url %s refused: %v", u, err)
		}
	}
	fam := `{"registry": {"url": "r.example"}, "images_dir": "images", "proxy_from_env": true, "sources": {"s": {"local": {"path": "."}}}, "images": [{"name": "x", "source": "s"}]}`
	_, err = s.Submit(ctx, alice, KindFamily, []byte(fam), false)
	if !errors.As(err, &ve) || len(ve.Errors) != 3 || ve.Errors[0].Pointer != "/images_dir" || ve.Errors[1].Pointer != "/proxy_from_env" || ve.Errors[2].Pointer != "/sources/s/local" {
		t.Errorf("family: %v", err)
	}
	if n := countRows(t, s.db.DB, `SELECT COUNT(*) FROM invocations`); n != 3 {
		t.Errorf("%d invocations stored, want the 3 remote git ones", n)
	}

	opts.AllowLocal = true
	s2 := openService(t, engines[engineSQLite](t), opts)
	if _, err := s2.Submit(ctx, alice, KindBuild, []byte(doc), true); err != nil {
		t.Errorf("with AllowLocal: %v", err)
	}
}

// TestCancelPending: a queued invocation canceled before any worker took it ends at once,
// its job leaves the queue and its sealed document is deleted.
func TestCancelPending(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openService(t, url, testOptions(t, 0))
		inv, err := s.Submit(ctx, alice, KindBuild, buildDoc(t, "https://git.example/r.git", "127.0.0.1:5000", map[string]any{"image": "a", "tag": "t"}), false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Cancel(ctx, alice, inv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != Canceled || got.Error != "canceled by alice" || got.Ended == nil {
			t.Fatalf("canceled: %+v", got)
		}
		if n := countRows(t, s.db.DB, `SELECT COUNT(*) FROM invocation_secrets`); n != 0 {
			t.Errorf("the sealed document stayed")
		}
		if n := countRows(t, s.db.DB, `SELECT COUNT(*) FROM river_job WHERE state = 'cancelled'`); n != 1 {
			t.Errorf("the job was not canceled in the queue")
		}
		if _, err := s.Cancel(ctx, alice, inv.ID); !errors.Is(err, ErrEnded) {
			t.Errorf("second cancel: %v", err)
		}
	})
}

// TestKeys: keys are shown once, stored hashed, looked up, listed and revoked.
func TestKeys(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s, err := Open(ctx, url, Options{SecretKey: testKey})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		k1, err := s.CreateKey(ctx, "ci", false)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := s.CreateKey(ctx, "ops", true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateKey(ctx, "ci", true); !errors.Is(err, ErrKeyExists) {
			t.Errorf("second ci key: %v", err)
		}
		if _, err := s.CreateKey(ctx, "bad name", false); err == nil {
			t.Errorf("a name with a space was taken")
		}
		p, err := s.LookupKey(ctx, k1)
		if err != nil || p.Name != "ci" || p.Admin {
			t.Errorf("lookup ci: %+v %v", p, err)
		}
		if p, err := s.LookupKey(ctx, k2); err != nil || !p.Admin {
			t.Errorf("lookup ops: %+v %v", p, err)
		}
		for _, k := range []string{"", k1 + "x", "ibk_nope"} {
			if _, err := s.LookupKey(ctx, k); !errors.Is(err, ErrUnauthorized) {
				t.Errorf("lookup %q: %v", k, err)
			}
		}
		if err := s.RevokeKey(ctx, "ci"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LookupKey(ctx, k1); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("a revoked key: %v", err)
		}
		if err := s.RevokeKey(ctx, "nobody"); !errors.Is(err, ErrKeyNotFound) || !strings.Contains(err.Error(), `"nobody"`) {
			t.Errorf("revoking an unknown key: %v", err)
		}
		keys, err := s.ListKeys(ctx)
		if err != nil || len(keys) != 2 || keys[0].Name != "ci" || keys[0].Revoked == nil || keys[0].LastUsed == nil || !keys[1].Admin {
			t.Errorf("keys: %+v %v", keys, err)
		}
		scanDatabase(t, s, k1, k2, strings.TrimPrefix(k1, keyPrefix))
	})
}

// TestReconcile: an invocation whose job River gave up (discarded after its replicas died), or
// whose job is gone, is ended failed by the reconciler with the reason; one whose cancel was
// asked ends canceled; its sealed document goes.
func TestReconcile(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s, err := Open(ctx, url, Options{SecretKey: testKey})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		doc := buildDoc(t, "https://git.example/r.git", "127.0.0.1:5000", map[string]any{"image": "a", "tag": "t"})
		var ids []string
		for range 4 {
			inv, err := s.Submit(ctx, alice, KindBuild, doc, false)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, inv.ID)
		}
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := s.db.ExecContext(ctx, s.db.q(q), args...); err != nil {
				t.Fatal(err)
			}
		}
		job := `(SELECT job_id FROM invocations WHERE id = ?)`
		exec(`UPDATE invocations SET state = 'in_progress', attempt = 3 WHERE id = ?`, ids[0])
		exec(`UPDATE river_job SET state = 'discarded', attempt = 3, finalized_at = scheduled_at WHERE id = `+job, ids[0])
		exec(`DELETE FROM river_job WHERE id = `+job, ids[1])
		exec(`UPDATE invocations SET cancel_requested = 'bob' WHERE id = ?`, ids[2])
		exec(`UPDATE river_job SET state = 'cancelled', finalized_at = scheduled_at WHERE id = `+job, ids[2])
		if err := s.reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		for i, want := range []struct {
			state State
			msg   string
		}{{Failed, "given up after 3 attempt(s)"}, {Failed, "the job left the queue without an outcome"}, {Canceled, "canceled by bob"}, {Pending, ""}} {
			inv, err := s.Get(ctx, admin, ids[i])
			if err != nil || inv.State != want.state || inv.Error != want.msg {
				t.Errorf("invocation %d: %s %q, want %s %q (%v)", i, inv.State, inv.Error, want.state, want.msg, err)
			}
		}
		if n := countRows(t, s.db.DB, `SELECT COUNT(*) FROM invocation_secrets`); n != 1 {
			t.Errorf("%d sealed documents, want the pending one's", n)
		}
	})
}

// TestFamily: a family file runs through the service as a family: parent first, the child
// FROM its fresh digest; the result is the family report.
func TestFamily(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base)
	url := engines[engineSQLite](t)
	s := openService(t, url, testOptions(t, 1))
	n := nonce()
	repo := testenv.GitRepoURL(t, map[string]string{
		"base/Dockerfile": fmt.Sprintf("FROM %s\nRUN echo %s > /base\n", env[testenv.Base], n),
		"app/Dockerfile":  "ARG REG\nFROM ${REG}/fam-" + n + "/base:latest\nRUN cat /base > /app\n",
	})
	doc := fmt.Sprintf(`
registry: {url: %q}
namespace: fam-%s
build_args: {REG: %q}
sources: {src: {git_repo: {url: %q, version: main}}}
images:
  - {name: app, context: app}
  - {name: base, context: base}
`, env[testenv.Registry], n, env[testenv.Registry], repo)
	inv, err := s.Submit(context.Background(), alice, KindFamily, []byte(doc), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Images) != 2 || inv.Kind != KindFamily {
		t.Errorf("submitted: %+v", inv)
	}
	inv = waitEnded(t, s, inv.ID, 2*time.Minute)
	var rep result.Report
	if err := json.Unmarshal(inv.Result, &rep); err != nil {
		t.Fatal(err)
	}
	// base, app, then the external base image (a pull).
	if inv.State != Success || len(rep.Images) != 3 || rep.Images[0].Name != "base" || rep.Images[1].Decision != result.DecisionBuild || rep.Images[1].Parents[0].Digest != rep.Images[0].Digest {
		t.Fatalf("%s %s: %s", inv.State, inv.Error, inv.Result)
	}
	for _, img := range rep.Images[:2] {
		if got := testenv.RegistryDigest(t, img.Ref, nil); got == "" || got != img.Digest {
			t.Errorf("%s: report %s, registry %s", img.Ref, img.Digest, got)
		}
	}
}
