package service

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestCanary: a build pushes to the htpasswd registry with the password in its params, and
// prints a build secret given inline; neither is in any row of any table (River's included),
// nor in the bytes of the SQLite files, nor in the invocation, its log or the metrics; the
// sealed document is gone once the build ended.
func TestCanary(t *testing.T) {
	env := testenv.Require(t, testenv.AuthRegistry, testenv.AuthUser, testenv.AuthPassword)
	forEngine(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openService(t, url, testOptions(t, 1))
		password := env[testenv.AuthPassword]
		canary := "canary-" + nonce() + nonce()
		doc, _ := json.Marshal(map[string]any{
			"source":  map[string]any{"git_repo": map[string]any{"url": demoRepo(t), "version": "main"}},
			"secrets": map[string]any{"tok": map[string]any{"value": canary}},
			"target": map[string]any{
				"images":   []any{map[string]any{"image": "service/canary", "tag": testenv.UniqueTag("canary"), "target": "secret"}},
				"registry": map[string]any{"url": env[testenv.AuthRegistry], "username": env[testenv.AuthUser], "password": password},
			},
		})
		inv, err := s.Submit(ctx, alice, KindBuild, doc, false)
		if err != nil {
			t.Fatal(err)
		}
		shown := []string{string(inv.Document)}
		inv = waitEnded(t, s, inv.ID, 2*time.Minute)
		lines, _ := allLogs(t, s, alice, inv.ID)
		if inv.State != Success {
			t.Fatalf("%s: %s\n%s", inv.State, inv.Error, logText(lines))
		}
		text := logText(lines)
		if !strings.Contains(text, "the secret is "+redact.Mask) {
			t.Errorf("the build's output of the secret is not in the log, masked:\n%s", text)
		}
		var masked map[string]any
		json.Unmarshal(inv.Document, &masked) //nolint:errcheck // checked below
		reg := masked["target"].(map[string]any)["registry"].(map[string]any)
		if reg["password"] != redact.Mask || reg["username"] != env[testenv.AuthUser] {
			t.Errorf("build_params: %s", inv.Document)
		}
		data, _ := json.Marshal(inv)
		shown = append(shown, string(data), text, metricsText(t, s))
		for _, out := range shown {
			for _, secret := range []string{password, canary} {
				if strings.Contains(out, secret) {
					t.Errorf("a secret is shown: %.300s", out)
				}
			}
		}
		if n := countRows(t, s.db.DB, `SELECT COUNT(*) FROM invocation_secrets`); n != 0 {
			t.Errorf("the sealed document stayed")
		}
		scanDatabase(t, s, password, canary)
	})
}

func metricsText(t *testing.T, s *Service) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
