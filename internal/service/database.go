package service

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// Engines a database URL may name.
const (
	engineSQLite   = "sqlite"
	enginePostgres = "postgres"
)

// dbURL is a parsed database URL.
type dbURL struct {
	engine string
	path   string // SQLite: the database file, absolute
	dsn    string // what database/sql opens
}

// local reports whether the database lives on this machine only (SQLite): such a server may make
// up its own secret key, as no other replica shares its queue.
func (u dbURL) local() bool { return u.engine == engineSQLite }

// DefaultDatabaseURL is the embedded SQLite database under the user's state directory:
// sqlite:///$XDG_STATE_HOME/imagebuilder/serve.db (XDG_STATE_HOME defaults to ~/.local/state).
func DefaultDatabaseURL() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return "sqlite://" + filepath.ToSlash(filepath.Join(dir, "imagebuilder", "serve.db"))
}

// parseDatabaseURL reads sqlite:///ABSOLUTE/PATH, sqlite:RELATIVE/PATH, a bare file path (SQLite),
// or postgres:// / postgresql:// (PostgreSQL, as pgx reads it). Errors show the URL without its
// credentials.
func parseDatabaseURL(raw string) (dbURL, error) {
	shown := redact.URL(raw)
	if raw == "" {
		return dbURL{}, errors.New("database URL is empty")
	}
	scheme, rest, hasScheme := strings.Cut(raw, ":")
	if !hasScheme || len(scheme) < 2 || strings.ContainsAny(scheme, `/\.`) {
		// A bare path: a SQLite file.
		return sqliteURL(raw)
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3", "file":
		p := rest
		if strings.HasPrefix(rest, "//") {
			u, err := url.Parse(raw)
			if err != nil {
				return dbURL{}, fmt.Errorf("database URL %q: %w", shown, err)
			}
			if u.Host != "" && u.Host != "localhost" {
				return dbURL{}, fmt.Errorf("database URL %q: a SQLite URL has no host: write sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH", shown)
			}
			if u.RawQuery != "" {
				return dbURL{}, fmt.Errorf("database URL %q: a SQLite URL takes no query", shown)
			}
			p = u.Path
		}
		return sqliteURL(p)
	case "postgres", "postgresql":
		u, err := url.Parse(raw)
		if err != nil {
			return dbURL{}, fmt.Errorf("database URL %q: not a URL", shown)
		}
		if u.Host == "" && u.Query().Get("host") == "" {
			return dbURL{}, fmt.Errorf("database URL %q: no host", shown)
		}
		return dbURL{engine: enginePostgres, dsn: raw}, nil
	}
	return dbURL{}, fmt.Errorf("database URL %q: want sqlite:///PATH or postgres://…", shown)
}

func sqliteURL(p string) (dbURL, error) {
	if p == "" || strings.HasSuffix(p, "/") {
		return dbURL{}, fmt.Errorf("database URL: %q is not a file path", p)
	}
	if strings.ContainsAny(p, "?#") {
		return dbURL{}, fmt.Errorf("database URL: the SQLite path %q holds ? or #", p)
	}
	abs, err := filepath.Abs(filepath.FromSlash(p))
	if err != nil {
		return dbURL{}, fmt.Errorf("database URL: locating %q: %w", p, err)
	}
	// River's advice for SQLite: one connection (writes never wait on each other); WAL and a
	// busy timeout for the other processes that open the file (apikey commands).
	dsn := "file:" + abs + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	return dbURL{engine: engineSQLite, path: abs, dsn: dsn}, nil
}

// database is the open database and its dialect.
type database struct {
	*sql.DB
	url    dbURL
	driver riverdriver.Driver[*sql.Tx]
}

// openDatabase opens and migrates the database: River's tables through rivermigrate, ours
// through the versioned SQL files under migrations/.
func openDatabase(ctx context.Context, u dbURL) (*database, error) {
	var db *sql.DB
	var err error
	switch u.engine {
	case engineSQLite:
		if err := os.MkdirAll(filepath.Dir(u.path), 0o700); err != nil {
			return nil, fmt.Errorf("creating the database directory: %w", err)
		}
		if db, err = sql.Open("sqlite", u.dsn); err != nil {
			return nil, fmt.Errorf("opening %s: %w", u.path, err)
		}
		db.SetMaxOpenConns(1)
	default:
		if db, err = sql.Open("pgx", u.dsn); err != nil {
			return nil, fmt.Errorf("opening the PostgreSQL database: %w", redact.New().Error(err))
		}
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(5)
		db.SetConnMaxIdleTime(5 * time.Minute)
	}
	d := &database{DB: db, url: u}
	if u.engine == engineSQLite {
		d.driver = riversqlite.New(db)
	} else {
		d.driver = riverdatabasesql.New(db)
	}
	if err := d.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// where names the database for messages, without credentials.
func (d *database) where() string {
	if d.url.engine == engineSQLite {
		return d.url.path
	}
	return redact.URL(d.url.dsn)
}

// q rewrites a query written with ? placeholders for the dialect ($1, $2, ... in PostgreSQL).
func (d *database) q(query string) string {
	if d.url.engine != enginePostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

//go:embed migrations
var migrationFS embed.FS

// migrationLock is the PostgreSQL advisory lock replicas take while they migrate, so that two
// starting at once do not both create the tables.
const migrationLock = 0x696d676275696c64 // "imgbuild"

func (d *database) migrate(ctx context.Context) error {
	if d.url.engine == enginePostgres {
		conn, err := d.Conn(ctx)
		if err != nil {
			return fmt.Errorf("connecting to %s: %w", d.where(), err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
			return fmt.Errorf("locking %s for migrations: %w", d.where(), err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock)) //nolint:errcheck // the session ends anyway
	}
	m, err := rivermigrate.New(d.driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("migrating River's tables: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrating River's tables in %s: %w", d.where(), err)
	}
	return d.migrateOurs(ctx)
}

// migrateOurs applies, in order, each file of migrations/ whose number schema_version
// does not hold yet, each in its own transaction with its version row.
func (d *database) migrateOurs(ctx context.Context) error {
	if _, err := d.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_version in %s: %w", d.where(), err)
	}
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		num, _, _ := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if err != nil {
			return fmt.Errorf("migration %s: no version number", e.Name())
		}
		body, err := fs.ReadFile(migrationFS, path.Join("migrations", e.Name()))
		if err != nil {
			return err
		}
		if err := d.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, d.q(`SELECT COUNT(*) FROM schema_version WHERE version = ?`), version).Scan(&n); err != nil || n > 0 {
				return err
			}
			for _, stmt := range splitSQL(d.dialect(string(body))) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, d.q(`INSERT INTO schema_version (version, applied) VALUES (?, ?)`), version, micros(time.Now()))
			return err
		}); err != nil {
			return fmt.Errorf("applying migration %s to %s: %w", e.Name(), d.where(), err)
		}
	}
	return nil
}

// splitSQL cuts a migration file into statements at semicolons ending a line; comments go.
func splitSQL(body string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		cur.WriteString(line + "\n")
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// tx runs fn in a transaction, committed when fn returns nil.
func (d *database) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback() //nolint:errcheck // the first error is the one to report
		return err
	}
	return tx.Commit()
}

// micros is t as stored: Unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros reads a stored time (nil when NULL).
func fromMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMicro(v.Int64).UTC()
	return &t
}

// dialect writes a migration for the engine: {{blob}} is BLOB in SQLite, BYTEA in PostgreSQL
// (the rest of our SQL reads the same in both).
func (d *database) dialect(sql string) string {
	blob := "BLOB"
	if d.url.engine == enginePostgres {
		blob = "BYTEA"
	}
	return strings.ReplaceAll(sql, "{{blob}}", blob)
}
