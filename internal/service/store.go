package service

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertype"
)

// invocationColumns are read by scanInvocation, in its order.
const invocationColumns = `id, kind, owner, state, submitted, started, ended, document, dry_run, result, error, attempt, images`

type scanner interface{ Scan(dest ...any) error }

func scanInvocation(row scanner) (*Invocation, error) {
	var (
		inv                    Invocation
		kind, state, doc, imgs string
		submitted              int64
		started, ended         sql.NullInt64
		dryRun                 int
		res                    sql.NullString
	)
	if err := row.Scan(&inv.ID, &kind, &inv.Owner, &state, &submitted, &started, &ended, &doc, &dryRun, &res, &inv.Error, &inv.Attempt, &imgs); err != nil {
		return nil, err
	}
	inv.Kind, inv.State, inv.DryRun = Kind(kind), State(state), dryRun != 0
	inv.Submitted = time.UnixMicro(submitted).UTC()
	inv.Started, inv.Ended = fromMicros(started), fromMicros(ended)
	inv.Document = json.RawMessage(doc)
	if res.Valid && res.String != "" {
		inv.Result = json.RawMessage(res.String)
	}
	if err := json.Unmarshal([]byte(imgs), &inv.Images); err != nil || inv.Images == nil {
		inv.Images = []string{}
	}
	return &inv, nil
}

// load reads an invocation as p may see it: ErrNotFound for a malformed id, an unknown one,
// or another owner's (unless p is an admin).
func (s *Service) load(ctx context.Context, q queryer, p Principal, id string) (*Invocation, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, ErrNotFound
	}
	inv, err := scanInvocation(q.QueryRowContext(ctx, s.db.q(`SELECT `+invocationColumns+` FROM invocations WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading invocation %s: %w", id, err)
	}
	if !p.Admin && inv.Owner != p.Name {
		return nil, ErrNotFound
	}
	return inv, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Get returns an invocation: ErrNotFound when it does not exist, the id is malformed, or it
// belongs to another owner and p is not an admin.
func (s *Service) Get(ctx context.Context, p Principal, id string) (*Invocation, error) {
	return s.load(ctx, s.db, p, id)
}

// maxLimit is the largest page List returns; defaultLimit is the page without a limit.
const (
	maxLimit     = 100
	defaultLimit = 20
)

// List returns a page of invocations, newest first: p's own, or (p an admin) everyone's or
// f.Owner's. A bad limit or cursor is a *ValidationError located at query.limit or
// query.cursor.
func (s *Service) List(ctx context.Context, p Principal, f Filter) (*Page, error) {
	limit := f.Limit
	if limit == 0 {
		limit = defaultLimit
	}
	if limit < 1 || limit > maxLimit {
		return nil, &ValidationError{Errors: []FieldError{{Pointer: "query.limit", Message: fmt.Sprintf("limit must be between 1 and %d", maxLimit)}}}
	}
	var where []string
	var args []any
	owner := f.Owner
	if !p.Admin {
		owner = p.Name
	}
	if owner != "" {
		where, args = append(where, "owner = ?"), append(args, owner)
	}
	if len(f.States) > 0 {
		marks := make([]string, len(f.States))
		for i, st := range f.States {
			switch st {
			case Pending, InProgress, Success, Failed, Canceled:
			default:
				return nil, &ValidationError{Errors: []FieldError{{Pointer: "query.state", Message: fmt.Sprintf("unknown state %q", st)}}}
			}
			marks[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, "state IN ("+strings.Join(marks, ", ")+")")
	}
	if f.Kind != "" {
		if f.Kind != KindBuild && f.Kind != KindFamily {
			return nil, &ValidationError{Errors: []FieldError{{Pointer: "query.kind", Message: fmt.Sprintf("unknown kind %q: want build or family", f.Kind)}}}
		}
		where, args = append(where, "kind = ?"), append(args, string(f.Kind))
	}
	if f.Cursor != "" {
		at, id, err := parseCursor(f.Cursor)
		if err != nil {
			return nil, &ValidationError{Errors: []FieldError{{Pointer: "query.cursor", Message: "not a cursor this server gave"}}}
		}
		where = append(where, "(submitted < ? OR (submitted = ? AND id < ?))")
		args = append(args, at, at, id)
	}
	query := `SELECT ` + invocationColumns + ` FROM invocations`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY submitted DESC, id DESC LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, s.db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("listing invocations: %w", err)
	}
	defer rows.Close()
	page := &Page{Items: []Invocation{}}
	for rows.Next() {
		inv, err := scanInvocation(rows)
		if err != nil {
			return nil, fmt.Errorf("listing invocations: %w", err)
		}
		page.Items = append(page.Items, *inv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing invocations: %w", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		last := page.Items[limit-1]
		page.NextCursor = makeCursor(micros(last.Submitted), last.ID)
	}
	return page, nil
}

// makeCursor encodes the position after an item: its submission time and id.
func makeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + "," + id))
}

func parseCursor(c string) (int64, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", err
	}
	at, id, ok := strings.Cut(string(raw), ",")
	if !ok {
		return 0, "", errors.New("no comma")
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return 0, "", err
	}
	if _, err := uuid.Parse(id); err != nil {
		return 0, "", err
	}
	return n, id, nil
}

// Cancel asks for an invocation to stop. A pending one is canceled at once (its job leaves
// the queue); a running one is canceled by its worker within about a second (Get then shows
// canceled). ErrNotFound as Get; ErrEnded when it already ended.
func (s *Service) Cancel(ctx context.Context, p Principal, id string) (*Invocation, error) {
	var inv *Invocation
	err := s.db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if inv, err = s.load(ctx, tx, p, id); err != nil {
			return err
		}
		if inv.State.Ended() {
			return ErrEnded
		}
		if _, err := tx.ExecContext(ctx, s.db.q(`UPDATE invocations SET cancel_requested = ? WHERE id = ? AND cancel_requested IS NULL`), p.Name, id); err != nil {
			return err
		}
		var jobID sql.NullInt64
		if err := tx.QueryRowContext(ctx, s.db.q(`SELECT job_id FROM invocations WHERE id = ?`), id).Scan(&jobID); err != nil {
			return err
		}
		if !jobID.Valid {
			return nil
		}
		job, err := s.river.JobCancelTx(ctx, tx, jobID.Int64)
		if err != nil && !errors.Is(err, rivertype.ErrNotFound) {
			return err
		}
		if job == nil || job.State == rivertype.JobStateCancelled || inv.State == Pending && job.State != rivertype.JobStateRunning {
			// Not running anywhere: it ends here.
			return s.finish(ctx, tx, id, Canceled, nil, canceledBy(p.Name))
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrEnded) {
			return nil, err
		}
		return nil, fmt.Errorf("canceling invocation %s: %w", id, err)
	}
	return s.load(ctx, s.db, p, id)
}

func canceledBy(who string) string { return "canceled by " + who }

// finish ends an invocation in tx: its state, end time, result and error, and the deletion of
// its sealed document. An invocation that already ended is left alone.
func (s *Service) finish(ctx context.Context, tx *sql.Tx, id string, state State, result []byte, msg string) error {
	var res any
	if result != nil {
		res = string(result)
	}
	if _, err := tx.ExecContext(ctx, s.db.q(`UPDATE invocations SET state = ?, ended = ?, result = COALESCE(?, result), error = ? WHERE id = ? AND state NOT IN ('success', 'failed', 'canceled')`),
		string(state), micros(time.Now()), res, msg, id); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, s.db.q(`DELETE FROM invocation_secrets WHERE invocation_id = ?`), id)
	return err
}

// maxLogLimit is the most lines Logs returns at once; it is also the default.
const maxLogLimit = 1000

// Logs returns the log lines of an invocation after seq after (0: from the start), at most
// limit (0 or more than 1000: 1000). ended is true when the invocation has ended and these are
// its last lines. ErrNotFound as Get.
func (s *Service) Logs(ctx context.Context, p Principal, id string, after int64, limit int) ([]LogLine, bool, error) {
	if limit <= 0 || limit > maxLogLimit {
		limit = maxLogLimit
	}
	// The state first: a worker writes its last lines before it ends the invocation.
	inv, err := s.load(ctx, s.db, p, id)
	if err != nil {
		return nil, false, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.q(`SELECT seq, at, text FROM invocation_logs WHERE invocation_id = ? AND seq > ? ORDER BY seq LIMIT ?`), id, after, limit)
	if err != nil {
		return nil, false, fmt.Errorf("reading the log of invocation %s: %w", id, err)
	}
	defer rows.Close()
	lines := []LogLine{}
	for rows.Next() {
		var l LogLine
		var at int64
		if err := rows.Scan(&l.Seq, &at, &l.Text); err != nil {
			return nil, false, fmt.Errorf("reading the log of invocation %s: %w", id, err)
		}
		l.Time = time.UnixMicro(at).UTC()
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("reading the log of invocation %s: %w", id, err)
	}
	return lines, inv.State.Ended() && len(lines) < limit, nil
}
