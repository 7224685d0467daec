package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// Options configure a Migrator. The zero value works.
type Options struct {
	Logger *slog.Logger // where progress goes, slog.New(slog.NewTextHandler(os.Stderr, nil)); nil = nowhere
	// Locker serialises runners. nil = an AdvisoryLock with DefaultLockKey on
	// the migrated connection itself, waiting up to LockTimeout.
	Locker      Locker
	LockTimeout time.Duration // for the default Locker, 30 * time.Second; 0 = 5m
	// Runner is recorded in applied_by next to the database user,
	// "web-7f9c (pid 1)"; "" = the host name and process id.
	Runner string
	// Version is the program version recorded with every row, "v1.2.0".
	Version string

	// DDLLockTimeout is the lock_timeout of every migration statement,
	// 5 * time.Second: a statement that waits longer for a lock gives up,
	// so the application's queries never queue behind it for longer. A
	// file's -- dbinit:lock-timeout overrides it. 0 = the server's setting.
	DDLLockTimeout time.Duration
	// DDLRetryTimeout is how long a file whose statement gave up on
	// DDLLockTimeout (SQLSTATE 55P03) is tried again, with backoff: the
	// whole file for a transactional one, the statement for a
	// no-transaction one. 5 * time.Minute; 0 = no retry.
	DDLRetryTimeout time.Duration
	// StatementTimeout is the statement_timeout of every migration
	// statement; a file's -- dbinit:statement-timeout overrides it. 0 = the
	// server's setting.
	StatementTimeout time.Duration
}

// Migrator applies one migration set to databases.
type Migrator struct {
	set  *Set
	opts Options
	log  *slog.Logger
}

// New returns a Migrator for set, or an error when an option is invalid.
func New(set *Set, opts Options) (*Migrator, error) {
	if set == nil {
		return nil, errors.New("migrate.New: no migration set")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"LockTimeout", opts.LockTimeout}, {"DDLLockTimeout", opts.DDLLockTimeout}, {"DDLRetryTimeout", opts.DDLRetryTimeout}, {"StatementTimeout", opts.StatementTimeout}} {
		if d.v < 0 {
			return nil, fmt.Errorf("migrate.New: %s %s is negative", d.name, d.v)
		}
	}
	if opts.Runner == "" {
		host, _ := os.Hostname()
		opts.Runner = fmt.Sprintf("%s pid %d", host, os.Getpid())
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 5 * time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = discardLogger
	}
	return &Migrator{set: set, opts: opts, log: log}, nil
}

// Result is what a run did: the files it executed and how long it took.
// A run that fails returns its Result together with the error; the file
// that failed is the last of Files, with its Err set.
type Result struct {
	Database      string        // name of the database the run was for
	FilesExecuted []string      // paths of the files that ran to completion, in order, "db/007_add_users.sql"
	Files         []FileResult  // per file, in the order they ran, including a failed one
	Warnings      []string      // worth reading, did not stop the run
	Duration      time.Duration // wall time of the run
}

// FileResult is what happened to one file.
type FileResult struct {
	Version    int64
	Name       string
	Path       string
	Down       bool
	Statements int           // statements executed in this run
	ResumedAt  int           // > 0 when a partial no-transaction file resumed at this statement (0-based)
	Replaced   bool          // a squashed file recorded over the versions it replaces, not run
	Duration   time.Duration // time spent on the file, including its history row
	Err        error         // nil when the file completed
}

func (m *Migrator) newResult(conn *pgx.Conn) (*Result, time.Time) {
	return &Result{Database: conn.Config().Database}, time.Now()
}

func (r *Result) finish(start time.Time, err error) (*Result, error) {
	r.Duration = time.Since(start)
	return r, err
}

// plan reads the history and plans `up` without changing anything.
func (m *Migrator) plan(ctx context.Context, conn *pgx.Conn, opts UpOptions) (*Plan, error) {
	applied, err := ReadHistory(ctx, conn)
	if err != nil {
		return nil, err
	}
	return PlanUp(m.set, applied, opts)
}

// Up applies pending migrations as PlanUp plans them. When nothing is
// pending it takes no lock and changes nothing. The Result is never nil.
func (m *Migrator) Up(ctx context.Context, conn *pgx.Conn, opts UpOptions) (*Result, error) {
	res, start := m.newResult(conn)
	plan, err := m.plan(ctx, conn, opts)
	if err != nil {
		return res.finish(start, err)
	}
	if len(plan.Steps) == 0 {
		m.warn(res, plan)
		m.log.Info("database is up to date", "database", res.Database, "version", m.set.Latest())
		return res.finish(start, nil)
	}
	unlock, err := m.lock(ctx, conn)
	if err != nil {
		return res.finish(start, err)
	}
	defer m.release(ctx, unlock)
	// Another runner may have applied some or all of it while we waited.
	if plan, err = m.plan(ctx, conn, opts); err != nil {
		return res.finish(start, err)
	}
	m.warn(res, plan)
	if len(plan.Steps) == 0 {
		m.log.Info("database is up to date", "database", res.Database, "version", m.set.Latest())
		return res.finish(start, nil)
	}
	if err := ensureHistory(ctx, conn); err != nil {
		return res.finish(start, err)
	}
	return res.finish(start, m.run(ctx, conn, plan, res))
}

// Down reverts applied migrations, newest first. Every down file needed is
// checked to exist before the first runs; each down file and the removal of
// its history row commit together.
func (m *Migrator) Down(ctx context.Context, conn *pgx.Conn, opts DownOptions) (*Result, error) {
	res, start := m.newResult(conn)
	unlock, err := m.lock(ctx, conn)
	if err != nil {
		return res.finish(start, err)
	}
	defer m.release(ctx, unlock)
	applied, err := ReadHistory(ctx, conn)
	if err != nil {
		return res.finish(start, err)
	}
	plan, err := PlanDown(m.set, applied, opts)
	if err != nil {
		return res.finish(start, err)
	}
	m.warn(res, plan)
	if len(plan.Steps) == 0 {
		m.log.Info("nothing to revert", "database", res.Database)
		return res.finish(start, nil)
	}
	// A history an older dbinit wrote gets this one's columns first.
	if err := ensureHistory(ctx, conn); err != nil {
		return res.finish(start, err)
	}
	return res.finish(start, m.run(ctx, conn, plan, res))
}

// BaselineOptions say what Baseline records.
type BaselineOptions struct {
	Version int64 // record every file up to and including this version
	// Force records versions at or below Version that a database with a
	// history lacks: Baseline refuses that by default, as those files would
	// be marked applied without running, which `up` should do instead.
	Force bool
}

// Baseline records every file up to and including opts.Version as applied
// without running it: for databases built before dbinit, by loading the
// same files some other way.
func (m *Migrator) Baseline(ctx context.Context, conn *pgx.Conn, opts BaselineOptions) (*Result, error) {
	version := opts.Version
	res, start := m.newResult(conn)
	if m.set.Find(version) == nil {
		return res.finish(start, &PlanError{Problems: []string{fmt.Sprintf("there is no file with version %d in %s", version, m.set.Dir)}})
	}
	unlock, err := m.lock(ctx, conn)
	if err != nil {
		return res.finish(start, err)
	}
	defer m.release(ctx, unlock)
	if err := ensureHistory(ctx, conn); err != nil {
		return res.finish(start, err)
	}
	applied, err := ReadHistory(ctx, conn)
	if err != nil {
		return res.finish(start, err)
	}
	recorded := indexApplied(applied)
	for _, a := range applied {
		if a.Version > version {
			return res.finish(start, &PlanError{Problems: []string{fmt.Sprintf("version %d is already recorded, above the baseline %d; baseline is for databases without a history", a.Version, version)}})
		}
	}
	for _, mig := range m.set.Migrations {
		r := mig.Up.Replaces
		if r == nil || mig.Version > version {
			continue
		}
		for _, a := range applied {
			if r.Contains(a.Version) {
				return res.finish(start, &PlanError{Problems: []string{fmt.Sprintf(
					"the database has version %d, one of the files the squashed %s replaces: baseline cannot record it over them; `dbinit up` does, after checking they are the files it replaced",
					a.Version, mig.Up.Path)}})
			}
		}
	}
	if len(applied) > 0 && !opts.Force {
		var skip []string
		for _, mig := range m.set.Migrations {
			if _, ok := recorded[mig.Version]; !ok && mig.Version <= version {
				skip = append(skip, mig.Up.File)
			}
		}
		if len(skip) > 0 {
			return res.finish(start, &PlanError{Problems: []string{fmt.Sprintf(
				"the database already has a history, and a baseline at %d would record %s as applied without running them; run them with `dbinit up`, or add --force if the database really has them",
				version, strings.Join(skip, ", "))}})
		}
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, mig := range m.set.Migrations {
			if mig.Version > version {
				break
			}
			if _, ok := recorded[mig.Version]; ok {
				continue
			}
			r := record{m: mig, state: StateApplied, done: len(mig.Up.Statements)}
			if _, err := tx.Exec(ctx, recordSQL, r.args(m.opts.Runner+baselineMark, m.opts.Version)...); err != nil {
				return fmt.Errorf("baseline %s: %w", mig.Up.Path, err)
			}
			res.FilesExecuted = append(res.FilesExecuted, mig.Up.Path)
		}
		return nil
	})
	if err != nil {
		res.FilesExecuted = nil
		return res.finish(start, err)
	}
	m.log.Info("baseline recorded", "database", res.Database, "version", version, "files", len(res.FilesExecuted))
	return res.finish(start, nil)
}

// Accept records the current checksum of an applied file that was edited on
// purpose, so that it no longer counts as drift.
func (m *Migrator) Accept(ctx context.Context, conn *pgx.Conn, version int64) error {
	mig := m.set.Find(version)
	if mig == nil {
		return &PlanError{Problems: []string{fmt.Sprintf("there is no file with version %d in %s", version, m.set.Dir)}}
	}
	unlock, err := m.lock(ctx, conn)
	if err != nil {
		return err
	}
	defer m.release(ctx, unlock)
	applied, err := ReadHistory(ctx, conn)
	if err != nil {
		return err
	}
	a, ok := indexApplied(applied)[version]
	switch {
	case !ok:
		return &PlanError{Problems: []string{fmt.Sprintf("%s is not applied; there is nothing to accept", mig.Up.Path)}}
	case a.State == StatePartial:
		return &PlanError{Problems: []string{fmt.Sprintf("%s is only partially applied; finish it with `dbinit up`", mig.Up.Path)}}
	case replaceOnUp(mig, a):
		return &PlanError{Problems: []string{fmt.Sprintf("version %d is still the file applied before %s squashed it; `dbinit up` records the squashed file (accept is for a file edited after it was applied)", version, mig.Up.Path)}}
	case mig.Up.Matches(a) && a.ChecksumKind == ChecksumText:
		m.log.Info("checksum already matches; nothing to accept", "file", mig.Up.Path, "version", version)
		return nil
	}
	if err := ensureHistory(ctx, conn); err != nil {
		return err
	}
	// A squashed file recorded over the files it replaced has its checksum
	// in squash_checksum; the row's own stays the replaced file's.
	if _, err := conn.Exec(ctx, `UPDATE dbinit.schema_migrations SET
    checksum = CASE WHEN squash_checksum = '' THEN $2 ELSE checksum END,
    checksum_kind = CASE WHEN squash_checksum = '' THEN 'text' ELSE checksum_kind END,
    squash_checksum = CASE WHEN squash_checksum = '' THEN '' ELSE $2 END,
    statements_total = $3
WHERE version = $1`, version, mig.Up.Checksum, len(mig.Up.Statements)); err != nil {
		return fmt.Errorf("accept %s: %w", mig.Up.Path, err)
	}
	m.log.Warn("accepted edited file", "file", mig.Up.Path, "version", version, "old_checksum", short(a.Checksum), "new_checksum", short(mig.Up.Checksum))
	return nil
}

func (m *Migrator) lock(ctx context.Context, conn *pgx.Conn) (func(context.Context) error, error) {
	return m.locker(conn).Lock(ctx)
}

// locker is the Locker of runs on conn: Options.Locker, or an advisory lock
// on conn itself.
func (m *Migrator) locker(conn *pgx.Conn) Locker {
	if m.opts.Locker != nil {
		return m.opts.Locker
	}
	return &AdvisoryLock{Conn: conn, Key: DefaultLockKey, Timeout: m.opts.LockTimeout, Logger: m.log}
}

func (m *Migrator) release(ctx context.Context, unlock func(context.Context) error) {
	if err := unlock(context.WithoutCancel(ctx)); err != nil {
		m.log.Warn("could not release the lock; it goes when the connection closes", "error", err)
	}
}

func (m *Migrator) warn(res *Result, plan *Plan) {
	for _, w := range plan.Warnings {
		m.log.Warn(w)
		res.Warnings = append(res.Warnings, w)
	}
}

// errInterrupted wraps a context error so that callers can tell a cancelled
// run from a failed one.
func interrupted(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w: %v", ctxErr, err)
	}
	return err
}
