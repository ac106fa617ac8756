package service

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// reconcileLoop runs reconcile every opts.reconcileEvery until ctx ends.
func (s *Service) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.reconcileEvery)
	defer t.Stop()
	for {
		if err := s.reconcile(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reconciling invocations with the queue", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcile ends the invocations whose job will never run again: River gave it up (discarded:
// its replicas kept dying), it was canceled, it completed without the worker recording an
// outcome, or it is gone. Every replica runs it; ending is idempotent.
func (s *Service) reconcile(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT i.id, i.cancel_requested, j.id, j.state FROM invocations i LEFT JOIN river_job j ON j.id = i.job_id
		WHERE i.state IN ('pending', 'in_progress') AND i.job_id IS NOT NULL AND (j.id IS NULL OR j.state IN ('discarded', 'cancelled', 'completed'))`)
	if err != nil {
		return err
	}
	type lost struct {
		id       string
		cancelBy sql.NullString
		jobID    sql.NullInt64
		state    sql.NullString
	}
	var all []lost
	for rows.Next() {
		var l lost
		if err := rows.Scan(&l.id, &l.cancelBy, &l.jobID, &l.state); err != nil {
			rows.Close()
			return err
		}
		all = append(all, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, l := range all {
		state, msg := Failed, "the job left the queue without an outcome"
		switch {
		case l.cancelBy.Valid:
			state, msg = Canceled, canceledBy(l.cancelBy.String)
		case l.state.String == string(rivertype.JobStateDiscarded):
			msg = "given up"
			if job, err := s.river.JobGet(ctx, l.jobID.Int64); err == nil {
				msg = fmt.Sprintf("given up after %d attempt(s)", job.Attempt)
				if n := len(job.Errors); n > 0 {
					msg += ": " + job.Errors[n-1].Error
				}
			}
		case l.state.String == string(rivertype.JobStateCancelled):
			msg = "the job was canceled in the queue"
		}
		if err := s.db.tx(ctx, func(tx *sql.Tx) error { return s.finish(ctx, tx, l.id, state, nil, msg) }); err != nil {
			return fmt.Errorf("ending invocation %s: %w", l.id, err)
		}
		s.log.Warn("invocation ended by the reconciler", "invocation", l.id, "state", state, "reason", msg)
	}
	return nil
}
