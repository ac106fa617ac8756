// Package service is the durable core of `imagebuilder serve`: it keeps invocations (submitted
// build params or family files, and what became of them) in a database — SQLite for a single
// node, PostgreSQL for several replicas — queues them as River jobs in the same database, runs
// them with the same pipeline as the command line, and keeps their logs.
//
// What is stored never holds a secret in clear: the submitted document is stored masked; the
// full document, needed by the worker, is sealed (package seal) in invocation_secrets and deleted
// when the invocation ends. Logs, results and errors go through a redactor that knows the
// document's secrets.
//
// A submission is one transaction: the invocation, its sealed document and its River job (whose
// arguments carry only the invocation id). A replica killed while it builds loses nothing:
// River's rescuer gives the job to another replica (attempt 2, ...), and when River gives up,
// the reconciler of every replica marks the invocation failed with the reason.
package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/imagebuilder/imagebuilder/internal/pipeline"
	"github.com/imagebuilder/imagebuilder/internal/seal"
)

// Options configure a Service.
type Options struct {
	// Workers is the number of builds this replica runs at once (River's MaxWorkers); 0: this
	// replica runs no build (it only queues).
	Workers int
	// Pipeline is the template of every run's options: Endpoint (serve --builder), TempDir,
	// NewBuilder, BuilderOptions, RegistryOptions. DryRun, Progress, Log and Redactor are set
	// per run.
	Pipeline pipeline.Options
	// SecretKey seals the submitted documents (32 bytes). nil: IMAGEBUILDER_SECRET_KEY, else
	// SecretKeyFile, else (SQLite only) a key file created beside the database.
	SecretKey     []byte
	SecretKeyFile string
	// AllowLocal lets documents use the server's own resources: local sources and paths, file
	// and env secrets, ssh forwarding, builder TLS files, a request's own build engine, a family's
	// images_dir (see Policy).
	AllowLocal bool
	// JobTimeout bounds one run (default 1h).
	JobTimeout time.Duration
	// RescueAfter is how long a job may run before River takes its replica for dead and
	// retries it elsewhere (River's RescueStuckJobsAfter); default JobTimeout + 5m; it must
	// exceed JobTimeout.
	RescueAfter time.Duration
	// MaxAttempts is how many runs a job gets when the replicas running it die (default 3). A
	// build that fails is never retried.
	MaxAttempts int
	// PollInterval is how often an idle replica looks for queued jobs (River's
	// FetchPollInterval; default 250ms: the replicas poll, as neither database/sql driver
	// listens, and a job submitted to an idle queue waits up to this long).
	PollInterval time.Duration
	// Logger is the server's log (default: discarded). It is never given a secret.
	Logger *slog.Logger

	// reconcileEvery is how often the reconciler runs (default 10s; tests lower it).
	reconcileEvery time.Duration
}

// Service is the invocation store, the queue and (with Workers > 0) the workers of one replica.
type Service struct {
	opts    Options
	db      *database
	sealer  *seal.Sealer
	river   *river.Client[*sql.Tx]
	log     *slog.Logger
	replica string
	metrics *metrics

	mu       sync.Mutex
	started  bool
	stopped  bool
	stopLoop context.CancelFunc
	loopDone chan struct{}
}

func (o Options) withDefaults() (Options, error) {
	if o.Workers < 0 {
		return o, fmt.Errorf("workers must be at least 0, got %d", o.Workers)
	}
	if o.JobTimeout == 0 {
		o.JobTimeout = time.Hour
	}
	if o.JobTimeout < 0 {
		return o, fmt.Errorf("job timeout must be positive, got %s", o.JobTimeout)
	}
	if o.RescueAfter == 0 {
		o.RescueAfter = o.JobTimeout + 5*time.Minute
	}
	if o.RescueAfter <= o.JobTimeout {
		return o, fmt.Errorf("rescue-after (%s) must exceed the job timeout (%s): a job still running would be taken for lost", o.RescueAfter, o.JobTimeout)
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.MaxAttempts < 1 {
		return o, fmt.Errorf("max attempts must be at least 1, got %d", o.MaxAttempts)
	}
	if o.PollInterval == 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.reconcileEvery == 0 {
		o.reconcileEvery = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Open opens (and migrates) the database at databaseURL (sqlite:///PATH, a file path, or
// postgres://…), resolves the secret key and prepares the queue. Start starts the workers.
func Open(ctx context.Context, databaseURL string, opts Options) (*Service, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	u, err := parseDatabaseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	src := seal.Source{Key: opts.SecretKey, Env: os.Getenv(seal.EnvKey), File: opts.SecretKeyFile}
	if u.local() {
		src.CreateFile = u.path + ".key"
	}
	key, err := seal.Resolve(src)
	if err != nil {
		if errors.Is(err, seal.ErrNoKey) {
			return nil, fmt.Errorf("refusing to start on a shared database without a secret key: %w", err)
		}
		return nil, err
	}
	sealer, err := seal.New(key)
	if err != nil {
		return nil, err
	}
	db, err := openDatabase(ctx, u)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	s := &Service{opts: opts, db: db, sealer: sealer, log: opts.Logger, replica: fmt.Sprintf("%s-%d", host, os.Getpid())}
	s.metrics = newMetrics(s)
	if s.river, err = s.newRiver(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// queue is the River queue of builds.
const queue = river.QueueDefault

func (s *Service) newRiver() (*river.Client[*sql.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &worker{s: s})
	cfg := &river.Config{
		Workers:              workers,
		JobTimeout:           s.opts.JobTimeout,
		RescueStuckJobsAfter: s.opts.RescueAfter,
		MaxAttempts:          s.opts.MaxAttempts,
		FetchPollInterval:    s.opts.PollInterval,
		FetchCooldown:        min(100*time.Millisecond, s.opts.PollInterval),
		PollOnly:             true, // database/sql drivers: no LISTEN; SQLite: one connection
		Logger:               s.log,
		ID:                   s.replica + "-" + fmt.Sprint(time.Now().UnixNano()),
		// A job that returned an error (a replica shutting down under it) waits a little.
		RetryPolicy: retryPolicy{},
		// Ended jobs are kept a day (River's default); the invocations table keeps the history.
	}
	if s.opts.Workers > 0 {
		cfg.Queues = map[string]river.QueueConfig{queue: {MaxWorkers: s.opts.Workers}}
	}
	c, err := river.NewClient(s.db.driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the job queue: %w", err)
	}
	return c, nil
}

// retryPolicy retries a job returned to the queue (its replica stopped under it) after a
// second, whatever the attempt.
type retryPolicy struct{}

func (retryPolicy) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(time.Second) }

// Start starts River's workers on this replica (none when Workers is 0) and the reconciler.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("service already started")
	}
	if s.opts.Workers > 0 {
		if err := s.river.Start(ctx); err != nil {
			return fmt.Errorf("starting the workers: %w", err)
		}
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopLoop, s.loopDone = cancel, make(chan struct{})
	go func() {
		defer close(s.loopDone)
		s.reconcileLoop(loopCtx)
	}()
	s.started = true
	return nil
}

// Stop stops the replica gracefully: no new job starts; running builds finish, or, when ctx
// ends first, are interrupted and go back to the queue (another replica, or this one after a
// restart, runs them again). Queued jobs stay queued.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.stopped {
		return nil
	}
	s.stopped = true
	s.stopLoop()
	<-s.loopDone
	if s.opts.Workers == 0 {
		return nil
	}
	err := s.river.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		hard, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if herr := s.river.StopAndCancel(hard); herr != nil {
			return fmt.Errorf("stopping the workers: %w", herr)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stopping the workers: %w", err)
	}
	return nil
}

// Close closes the database. Stop first when the service was started.
func (s *Service) Close() error {
	return s.db.Close()
}

// Ready reports whether the replica can serve: the database answers and, when it runs builds,
// its workers run.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("database %s: %w", s.db.where(), err)
	}
	if s.opts.Workers == 0 {
		return nil
	}
	s.mu.Lock()
	started, stopped := s.started, s.stopped
	s.mu.Unlock()
	switch {
	case !started:
		return errors.New("the workers have not started")
	case stopped:
		return errors.New("the workers are stopping")
	}
	select {
	case <-s.river.Stopped():
		return errors.New("the workers stopped")
	default:
	}
	return nil
}

// Collector is the replica's Prometheus collector: imagebuilder_queue_jobs{state} (River's jobs
// by state), imagebuilder_invocations{state}, imagebuilder_build_duration_seconds and
// imagebuilder_builds_total{state} (builds run by this replica).
func (s *Service) Collector() prometheus.Collector { return s.metrics }
