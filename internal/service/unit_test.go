package service

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

func TestParseDatabaseURL(t *testing.T) {
	abs, _ := filepath.Abs("rel/serve.db")
	for raw, want := range map[string]dbURL{
		"sqlite:///var/lib/ib/serve.db":          {engine: engineSQLite, path: "/var/lib/ib/serve.db"},
		"sqlite://localhost/var/lib/ib/serve.db": {engine: engineSQLite, path: "/var/lib/ib/serve.db"},
		"sqlite:rel/serve.db":                    {engine: engineSQLite, path: abs},
		"rel/serve.db":                           {engine: engineSQLite, path: abs},
		"/var/lib/ib/serve.db":                   {engine: engineSQLite, path: "/var/lib/ib/serve.db"},
		"postgres://u:pw@db:5432/ib":             {engine: enginePostgres, dsn: "postgres://u:pw@db:5432/ib"},
		"postgresql://db/ib?sslmode=disable":     {engine: enginePostgres, dsn: "postgresql://db/ib?sslmode=disable"},
		"postgres:///ib?host=/run/postgresql":    {engine: enginePostgres, dsn: "postgres:///ib?host=/run/postgresql"},
	} {
		got, err := parseDatabaseURL(raw)
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if got.engine != want.engine || got.path != want.path || (want.dsn != "" && got.dsn != want.dsn) {
			t.Errorf("%s: %+v, want %+v", raw, got, want)
		}
		if got.local() != (want.engine == engineSQLite) {
			t.Errorf("%s: local %v", raw, got.local())
		}
	}
	for _, raw := range []string{"", "sqlite://host/x.db", "sqlite:///dir/", "sqlite:///x.db?mode=ro", "mysql://u:s3cretpw@h/db", "postgres://u:s3cretpw@/db", "postgres://u:s3cretpw@%zz/db"} {
		_, err := parseDatabaseURL(raw)
		if err == nil {
			t.Errorf("%q accepted", raw)
		} else if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("%q: the error shows the password: %v", raw, err)
		}
	}
	if u := DefaultDatabaseURL(); !strings.HasPrefix(u, "sqlite:///") || !strings.HasSuffix(u, "/imagebuilder/serve.db") {
		t.Errorf("default %s", u)
	}
	t.Setenv("XDG_STATE_HOME", "/srv/state")
	if u := DefaultDatabaseURL(); u != "sqlite:///srv/state/imagebuilder/serve.db" {
		t.Errorf("default with XDG_STATE_HOME: %s", u)
	}
}

func FuzzParseDatabaseURL(f *testing.F) {
	for _, s := range []string{"sqlite:///x.db", "postgres://u:pw@h/db", "x.db", "sqlite://h/x", "postgres://u:pw@%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseDatabaseURL(raw)
		if err != nil {
			// The password of a URL is never shown.
			if i := strings.Index(raw, "://"); i >= 0 {
				if at := strings.LastIndex(raw, "@"); at > i {
					if _, pw, ok := strings.Cut(raw[i+3:at], ":"); ok && len(pw) >= 8 && !strings.ContainsAny(pw, "/?#@") && strings.Contains(err.Error(), pw) {
						t.Fatalf("the error shows the password: %v", err)
					}
				}
			}
			return
		}
		if u.engine == engineSQLite && !filepath.IsAbs(u.path) {
			t.Fatalf("relative path %q", u.path)
		}
	})
}

func TestCursor(t *testing.T) {
	id := uuid.NewString()
	at, gotID, err := parseCursor(makeCursor(1700000000123456, id))
	if err != nil || at != 1700000000123456 || gotID != id {
		t.Fatalf("%d %s %v", at, gotID, err)
	}
	for _, c := range []string{"", "!!", makeCursor(1, "not-a-uuid"), "MTIz", "eCw" + id} {
		if _, _, err := parseCursor(c); err == nil {
			t.Errorf("cursor %q accepted", c)
		}
	}
}

func FuzzCursor(f *testing.F) {
	f.Add(makeCursor(1, uuid.NewString()))
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, c string) {
		at, id, err := parseCursor(c)
		if err != nil {
			return
		}
		if back := makeCursor(at, id); back != c {
			at2, id2, err := parseCursor(back)
			if err != nil || at2 != at || id2 != id {
				t.Fatalf("%q -> %d %s -> %q", c, at, id, back)
			}
		}
	})
}

// TestCheckMasks: the document stored for an invocation has no secret: writeOnly values are
// masked, credentials in URLs too, the rest is kept.
func TestCheckMasks(t *testing.T) {
	s := &Service{}
	d, err := s.check(KindBuild, []byte(`
source:
  git_repo: {url: "https://tok:s3cr3tt0ken@git.example/r.git", username: u, password: "pw-123456"}
secrets: {a: {value: "inline-secret"}}
target:
  images: [{image: a/b, tag: t, labels: {maintainer: "me@example.com"}}]
  registry: {url: r.example, username: u, password: "regpass-1"}
`))
	if err != nil {
		t.Fatal(err)
	}
	text := string(d.masked)
	for _, secret := range []string{"s3cr3tt0ken", "pw-123456", "inline-secret", "regpass-1"} {
		if strings.Contains(text, secret) {
			t.Errorf("%s is in %s", secret, text)
		}
	}
	var doc map[string]any
	if err := json.Unmarshal(d.masked, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, `"maintainer":"me@example.com"`) || !strings.Contains(text, `"password":"`+redact.Mask+`"`) {
		t.Errorf("masked: %s", text)
	}
	if len(d.images) != 1 || d.images[0] != "r.example/a/b:t" {
		t.Errorf("images %v", d.images)
	}
}

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{emit: func(l string) { got = append(got, l) }}
	w.Write([]byte("one\r\ntw"))
	w.Write([]byte("o\nthree"))
	w.Write([]byte(strings.Repeat("x", maxLine+5)))
	w.Close()
	if len(got) != 3 || got[0] != "one" || got[1] != "two" || !strings.HasPrefix(got[2], "threexx") || !strings.HasSuffix(got[2], "x …") || len(got[2]) != maxLine+len(" …") {
		t.Errorf("%d lines, %q %q, the last %d bytes", len(got), got[0], got[1], len(got[len(got)-1]))
	}
}

func TestSplitSQL(t *testing.T) {
	got := splitSQL("-- c\nCREATE TABLE a (x INT); -- end\n\nCREATE INDEX i\n  ON a (x);\n")
	if len(got) != 2 || got[0] != "CREATE TABLE a (x INT);" || got[1] != "CREATE INDEX i\n  ON a (x);" {
		t.Errorf("%q", got)
	}
}
