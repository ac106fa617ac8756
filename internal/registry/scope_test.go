package registry_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/registry"
)

// TestScopes: a host with scopes lets the client write only to repositories a rule matches
// (anchored at the start, as Zuul's re.match); every write path is checked at the transport, so
// a refused push, tag or delete sends no write request at all; reads and other hosts are free.
func TestScopes(t *testing.T) {
	var writes atomic.Int32
	mem := memRegistry()
	host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writes.Add(1)
		}
		mem.ServeHTTP(w, r)
	}))
	c := newClient(t, noKeychain, registry.WithScopes(registry.Scope{Registry: host, Repositories: []string{"team/", "^ops/tools$"}, Origin: "test rule"}))
	ctx := context.Background()

	for repo, ok := range map[string]bool{"team/app": true, "ops/tools": true, "ops/tools2": false, "other/team/app": false, "x": false} {
		err := c.CheckWrite(host + "/" + repo)
		if ok != (err == nil) {
			t.Errorf("CheckWrite(%s) = %v", repo, err)
		}
		if err != nil && (!errors.Is(err, registry.ErrOutOfScope) || !strings.Contains(err.Error(), "team/, ^ops/tools$ (test rule)")) {
			t.Errorf("CheckWrite(%s): %v", repo, err)
		}
	}
	if err := c.CheckWrite("other.example:5000/any/thing"); err != nil {
		t.Errorf("a host without scopes is limited: %v", err)
	}

	d, err := c.PushImage(ctx, host+"/team/app", image(t, "linux/amd64", true))
	if err != nil {
		t.Fatal(err)
	}
	before := writes.Load()
	if _, err := c.PushImage(ctx, host+"/other/app", image(t, "linux/amd64", true)); !errors.Is(err, registry.ErrOutOfScope) {
		t.Errorf("push to other/app: %v", err)
	}
	if err := c.Tag(ctx, host+"/team/app@"+d, host+"/other/app:latest"); err == nil {
		t.Error("tagged into other/app")
	}
	if err := c.Tag(ctx, host+"/team/app@"+d, host+"/team/app:ok"); err != nil {
		t.Errorf("tag within team/app: %v", err)
	}
	if got := writes.Load() - before; got != 1 {
		t.Errorf("%d write requests reached the registry, want 1 (the allowed tag)", got)
	}
	if _, err := c.Labels(ctx, host+"/team/app@"+d); err != nil {
		t.Errorf("a read was refused: %v", err)
	}
}

// TestCredentialsFile: entries are checked with pointers, and a bad file never quotes a password.
func TestCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	entries, err := registry.LoadCredentialsFile(write("- {registry: 127.0.0.1:5000, username: u, password: p, repositories: ['^team/']}\n- {registry: ghcr.io}\n"))
	if err != nil || len(entries) != 2 || entries[0].Repositories[0] != "^team/" {
		t.Fatalf("%+v %v", entries, err)
	}
	for body, want := range map[string]string{
		"- {username: u, password: Pw0rdXYZ}\n":                       "/0/registry: missing",
		"- {registry: r.io, username: u}\n":                           "/0: username and password go together",
		"- {registry: r.io, repositories: ['(']}\n":                   "/0/repositories/0",
		"- {registry: r.io, password: Pw0rdXYZ, usernme: u}\n":        "not a list",
		"- {registry: 'u:Pw0rdXYZ@r.io', username: u, password: x}\n": "/0/registry",
	} {
		_, err := registry.LoadCredentialsFile(write(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want %q, got %v", body, want, err)
		}
		if err != nil && strings.Contains(err.Error(), "Pw0rdXYZ") {
			t.Errorf("%s: the error quotes the password: %v", body, err)
		}
	}
}
