package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// ErrKeyNotFound is RevokeKey's error for a name no key has.
var ErrKeyNotFound = errors.New("api key not found")

// keyPrefix starts every API key, so that one is recognised in a config file or a leak scan.
const keyPrefix = "ibk_"

// keyName is what a key's name may be: it becomes the owner of the invocations it submits.
var keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// hashKey is how a key is stored: SHA-256, hex. A key is 32 random bytes, so a fast hash is
// enough (no dictionary to try).
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// CreateKey creates an API key named name (an admin's when admin) and returns it: it is shown
// this once, and only its hash is stored. ErrKeyExists when the name is taken (revoked keys
// keep their names).
func (s *Service) CreateKey(ctx context.Context, name string, admin bool) (string, error) {
	if !keyName.MatchString(name) {
		return "", fmt.Errorf("api key name %q: want 1 to 64 letters, digits, _ . @ -, starting with a letter or digit", name)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("creating api key %q: %w", name, err)
	}
	key := keyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	err := s.db.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.db.q(`SELECT COUNT(*) FROM api_keys WHERE name = ?`), name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrKeyExists
		}
		_, err := tx.ExecContext(ctx, s.db.q(`INSERT INTO api_keys (name, hash, admin, created) VALUES (?, ?, ?, ?)`), name, hashKey(key), boolInt(admin), micros(time.Now()))
		return err
	})
	if errors.Is(err, ErrKeyExists) {
		return "", fmt.Errorf("api key %q: %w", name, ErrKeyExists)
	}
	if err != nil {
		return "", fmt.Errorf("creating api key %q: %w", name, err)
	}
	return key, nil
}

// ListKeys lists the API keys (never the keys themselves), by name.
func (s *Service) ListKeys(ctx context.Context) ([]Key, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, admin, created, last_used, revoked FROM api_keys ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing api keys: %w", err)
	}
	defer rows.Close()
	keys := []Key{}
	for rows.Next() {
		var k Key
		var admin int
		var created int64
		var used, revoked sql.NullInt64
		if err := rows.Scan(&k.Name, &admin, &created, &used, &revoked); err != nil {
			return nil, fmt.Errorf("listing api keys: %w", err)
		}
		k.Admin, k.Created = admin != 0, time.UnixMicro(created).UTC()
		k.LastUsed, k.Revoked = fromMicros(used), fromMicros(revoked)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing api keys: %w", err)
	}
	return keys, nil
}

// RevokeKey revokes the key named name: LookupKey refuses it from now on. An error wrapping
// ErrKeyNotFound names an unknown key; revoking a revoked key changes nothing.
func (s *Service) RevokeKey(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, s.db.q(`UPDATE api_keys SET revoked = COALESCE(revoked, ?) WHERE name = ?`), micros(time.Now()), name)
	if err != nil {
		return fmt.Errorf("revoking api key %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("revoking api key %q: %w", name, ErrKeyNotFound)
	}
	return nil
}

// lastUsedEvery is how stale a key's last_used may get: a lookup writes it at most this often.
const lastUsedEvery = time.Minute

// LookupKey returns the principal of an API key: its name, and whether it is an admin's.
// ErrUnauthorized for a key that is unknown or revoked.
func (s *Service) LookupKey(ctx context.Context, key string) (*Principal, error) {
	if key == "" {
		return nil, ErrUnauthorized
	}
	h := hashKey(key)
	var p Principal
	var admin int
	var used, revoked sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.db.q(`SELECT name, admin, last_used, revoked FROM api_keys WHERE hash = ?`), h).Scan(&p.Name, &admin, &used, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrUnauthorized
	}
	if err != nil {
		return nil, fmt.Errorf("looking up an api key: %w", err)
	}
	if revoked.Valid {
		return nil, ErrUnauthorized
	}
	p.Admin = admin != 0
	now := time.Now()
	if !used.Valid || now.Sub(time.UnixMicro(used.Int64)) > lastUsedEvery {
		if _, err := s.db.ExecContext(ctx, s.db.q(`UPDATE api_keys SET last_used = ? WHERE hash = ?`), micros(now), h); err != nil {
			s.log.Warn("recording an api key's use", "key", p.Name, "err", err)
		}
	}
	return &p, nil
}
