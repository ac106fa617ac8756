package service

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/progress"
)

// worker runs invocations as River jobs.
type worker struct {
	river.WorkerDefaults[jobArgs]
	s *Service
}

// Work runs one attempt of an invocation. A build that fails ends the invocation and returns
// nil (River never retries it); only an attempt cut short by this replica stopping returns an
// error, so that River runs it again.
func (w *worker) Work(ctx context.Context, job *river.Job[jobArgs]) (err error) {
	id := job.Args.InvocationID
	defer func() {
		// A panic ends the invocation (River would retry it, and keep the panic's text and
		// stack, which could quote the document); the server log gets no value either.
		if r := recover(); r != nil {
			w.s.log.Error("a build panicked", "invocation", id, "type", fmt.Sprintf("%T", r))
			err = w.s.end(id, Failed, nil, "internal error: the build panicked (see the server log)", time.Time{})
		}
	}()
	return w.s.run(ctx, id, job.Attempt)
}

// errCanceled is the cause of a run's context when a caller canceled the invocation.
type errCanceled struct{ by string }

func (e errCanceled) Error() string { return canceledBy(e.by) }

// cancelPoll is how often a running worker looks for a cancel request.
const cancelPoll = time.Second

func (s *Service) run(ctx context.Context, id string, attempt int) error {
	var (
		kind, state string
		dryRun      int
		cancelBy    sql.NullString
		sealed      []byte
	)
	err := s.db.QueryRowContext(ctx, s.db.q(`SELECT i.kind, i.state, i.dry_run, i.cancel_requested, s.sealed FROM invocations i LEFT JOIN invocation_secrets s ON s.invocation_id = i.id WHERE i.id = ?`), id).
		Scan(&kind, &state, &dryRun, &cancelBy, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		s.log.Warn("a job names no invocation", "invocation", id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading invocation %s: %w", id, err)
	}
	if State(state).Ended() {
		return nil
	}
	if cancelBy.Valid {
		return s.end(id, Canceled, nil, canceledBy(cancelBy.String), time.Time{})
	}
	sink := s.newLogSink(ctx, id)
	started := time.Now()
	// stop writes the log's last line (when there is one) and its rest, then ends the
	// invocation: the log is complete when a client sees the invocation ended.
	stop := func(state State, result []byte, msg, last string) error {
		if last != "" {
			sink.line(last)
		}
		sink.close()
		return s.end(id, state, result, msg, started)
	}
	if attempt > 1 {
		sink.line(fmt.Sprintf("attempt %d: the previous attempt was lost", attempt))
	}
	sink.line(fmt.Sprintf("invocation %s: attempt %d on %s", id, attempt, s.replica))
	if _, err := s.db.ExecContext(ctx, s.db.q(`UPDATE invocations SET state = ?, started = ?, attempt = ?, replica = ? WHERE id = ? AND state NOT IN ('success', 'failed', 'canceled')`),
		string(InProgress), micros(started), attempt, s.replica, id); err != nil {
		sink.close()
		return fmt.Errorf("starting invocation %s: %w", id, err)
	}
	if sealed == nil {
		return stop(Failed, nil, "the sealed document is gone (the invocation was ended elsewhere)", "")
	}
	doc, err := s.sealer.Open(sealed, []byte(id))
	if err != nil {
		return stop(Failed, nil, fmt.Sprintf("%v (is this replica's secret key the one the invocation was submitted with?)", err), "")
	}
	d, err := s.check(Kind(kind), doc)
	if err != nil {
		return stop(Failed, nil, "checking the document: "+err.Error(), "")
	}

	// Progress in BuildKit's plain form, and the pipeline's step lines, masked, line by line
	// into the log.
	lw := &lineWriter{emit: sink.line}
	rw := d.red.Writer(lw)
	pr, err := progress.New(rw, progress.Plain)
	if err != nil {
		return stop(Failed, nil, err.Error(), "")
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		s.watchCancel(runCtx, id, cancel)
	}()
	opts := s.opts.Pipeline
	opts.DryRun = dryRun != 0
	opts.Progress = pr.Status
	opts.Log = pr.Log
	opts.Redactor = d.red
	var res any
	var runErr error
	if d.kind == KindFamily {
		res, runErr = pipeline.RunFamily(runCtx, d.fam, pipeline.FamilyOptions{Options: opts})
	} else {
		res, runErr = pipeline.Run(runCtx, *d.params, opts)
	}
	pr.Close()
	rw.Close()
	lw.Close()
	cause := context.Cause(runCtx)
	cancel(nil)
	<-watchDone

	result, err := json.Marshal(res)
	if err != nil {
		result = nil
	} else {
		result = []byte(d.red.String(string(result)))
	}
	var ec errCanceled
	if !errors.As(cause, &ec) && ctx.Err() != nil {
		// River cancels the job's context too when the cancel reaches it first.
		var by sql.NullString
		if err := s.db.QueryRowContext(context.WithoutCancel(ctx), s.db.q(`SELECT cancel_requested FROM invocations WHERE id = ?`), id).Scan(&by); err == nil && by.Valid {
			ec = errCanceled{by: by.String}
			cause = ec
		}
	}
	switch {
	case errors.As(cause, &ec):
		return stop(Canceled, result, canceledBy(ec.by), canceledBy(ec.by))
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		msg := fmt.Sprintf("timed out after %s", s.opts.JobTimeout)
		if runErr != nil {
			msg += ": " + d.red.Error(runErr).Error()
		}
		return stop(Failed, result, msg, msg)
	case ctx.Err() != nil:
		// This replica stops under the build: the job goes back to the queue, secrets kept.
		sink.line("interrupted: this replica stopped; the invocation goes back to the queue")
		sink.close()
		if _, err := s.db.ExecContext(context.WithoutCancel(ctx), s.db.q(`UPDATE invocations SET state = ? WHERE id = ? AND state = ?`), string(Pending), id, string(InProgress)); err != nil {
			s.log.Warn("returning an invocation to the queue", "invocation", id, "err", err)
		}
		return fmt.Errorf("invocation %s: interrupted: this replica stopped", id)
	case runErr != nil:
		msg := d.red.Error(runErr).Error()
		return stop(Failed, result, msg, "failed: "+msg)
	}
	return stop(Success, result, "", "success")
}

// end records how an invocation ended (and deletes its sealed document), and counts it in
// this replica's metrics when it ran here (started is not zero).
func (s *Service) end(id string, state State, result []byte, msg string, started time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.db.tx(ctx, func(tx *sql.Tx) error { return s.finish(ctx, tx, id, state, result, msg) }); err != nil {
		// The reconciler ends it when River has given the job up.
		return fmt.Errorf("ending invocation %s: %w", id, err)
	}
	if !started.IsZero() {
		s.metrics.observe(state, time.Since(started))
	}
	s.log.Info("invocation ended", "invocation", id, "state", state)
	return nil
}

// watchCancel polls the invocation's cancel request until ctx ends, and cancels the run with
// errCanceled when someone asked.
func (s *Service) watchCancel(ctx context.Context, id string, cancel context.CancelCauseFunc) {
	t := time.NewTicker(cancelPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var by sql.NullString
		if err := s.db.QueryRowContext(ctx, s.db.q(`SELECT cancel_requested FROM invocations WHERE id = ?`), id).Scan(&by); err == nil && by.Valid {
			cancel(errCanceled{by: by.String})
			return
		}
	}
}

// maxLine is the longest log line stored; the rest of a longer one is cut.
const maxLine = 8 << 10

// lineWriter cuts what is written into lines (without their end) for emit.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emitLine(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLine {
		w.emitLine(string(w.buf))
		w.buf = nil
	}
	return len(p), nil
}

func (w *lineWriter) emitLine(l string) {
	l = strings.TrimRight(l, "\r")
	if len(l) > maxLine {
		l = l[:maxLine] + " …"
	}
	w.emit(l)
}

// Close emits what is left.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emitLine(string(w.buf))
		w.buf = nil
	}
	return nil
}

var _ io.WriteCloser = (*lineWriter)(nil)

// logSink appends an invocation's log lines to invocation_logs, in batches.
type logSink struct {
	s    *Service
	id   string
	mu   sync.Mutex
	next int64
	buf  []LogLine
	kick chan struct{}
	done chan struct{}
	stop chan struct{}
}

// logFlushEvery is how long a log line may wait before it is written.
const logFlushEvery = 250 * time.Millisecond

func (s *Service) newLogSink(ctx context.Context, id string) *logSink {
	l := &logSink{s: s, id: id, kick: make(chan struct{}, 1), done: make(chan struct{}), stop: make(chan struct{})}
	var last sql.NullInt64
	_ = s.db.QueryRowContext(ctx, s.db.q(`SELECT MAX(seq) FROM invocation_logs WHERE invocation_id = ?`), id).Scan(&last)
	l.next = last.Int64 + 1
	go l.loop()
	return l
}

// line queues one line (already redacted).
func (l *logSink) line(text string) {
	l.mu.Lock()
	l.buf = append(l.buf, LogLine{Seq: l.next, Time: time.Now(), Text: text})
	l.next++
	full := len(l.buf) >= 200
	l.mu.Unlock()
	if full {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

func (l *logSink) loop() {
	defer close(l.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			l.flush()
			return
		case <-t.C:
		case <-l.kick:
		}
		l.flush()
	}
}

func (l *logSink) flush() {
	l.mu.Lock()
	lines := l.buf
	l.buf = nil
	l.mu.Unlock()
	if len(lines) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := l.s.db.tx(ctx, func(tx *sql.Tx) error {
		for _, ln := range lines {
			if _, err := tx.ExecContext(ctx, l.s.db.q(`INSERT INTO invocation_logs (invocation_id, seq, at, text) VALUES (?, ?, ?, ?)`), l.id, ln.Seq, micros(ln.Time), ln.Text); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.s.log.Warn("writing log lines", "invocation", l.id, "lines", len(lines), "err", err)
	}
}

// close writes what is left and stops the sink.
func (l *logSink) close() {
	close(l.stop)
	<-l.done
}
