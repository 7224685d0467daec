package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// resetSQL undoes what a file may have changed in the session (SET,
// SET ROLE, SET SESSION AUTHORIZATION), so every file starts as if it had a
// session of its own, as it had when psql loaded each file, and the history
// row is written as the connecting user.
const resetSQL = "RESET ALL; RESET ROLE; RESET SESSION AUTHORIZATION"

// run executes a plan's steps in order. It stops at the first failure; files
// before it stay applied.
func (m *Migrator) run(ctx context.Context, conn *pgx.Conn, plan *Plan, res *Result) (err error) {
	r := &runner{m: m, conn: conn, res: res, total: len(plan.Steps), locker: m.locker(conn), checked: time.Now()}
	defer func() {
		// Asynchronous commits must reach the disk before the run reports
		// anything, success or failure.
		if ferr := r.flush(ctx); ferr != nil {
			if err == nil {
				err = ferr
			} else {
				m.log.Error("could not make the files applied before the failure durable; the server writes them out within a second unless it crashes first", "error", ferr)
			}
		}
		if r.inTx {
			r.rollback(ctx)
		}
		if r.watch != nil {
			r.watch.Close(context.WithoutCancel(ctx))
		}
	}()
	// The history statements are prepared while the session is clean: a
	// file's SET ROLE must not decide whether they can be planned.
	if err := r.prepare(ctx); err != nil {
		return err
	}
	for i, step := range plan.Steps {
		if err := r.step(ctx, i, step, i == len(plan.Steps)-1); err != nil {
			return interrupted(ctx, err)
		}
	}
	m.log.Info("migrations done", "database", res.Database, "files", len(res.FilesExecuted),
		"duration_ms", time.Since(r.started()).Milliseconds())
	return nil
}

type runner struct {
	m     *Migrator
	conn  *pgx.Conn
	res   *Result
	total int

	inTx    bool       // a file's transaction is open
	watch   *pgx.Conn  // second connection that watches lock waits; nil until needed
	locker  Locker     // the run's lock, to check it is still held
	checked time.Time  // when the lock was last checked
	dirty   bool       // an asynchronous commit has not been flushed yet
	lastRow *Migration // last history row committed, for the final flush
	start   time.Time
}

// prepare (re)prepares the history statements. A file that runs DISCARD
// ALL or DEALLOCATE ALL removes them from the session, and pgx's own cache
// of statements with them: both are dropped and made again, in a
// transaction of their own under the history guard, so a file's SET ROLE
// does not decide whether they can be planned. Never called inside a
// file's transaction.
func (r *runner) prepare(ctx context.Context) error {
	if _, err := r.conn.Exec(ctx, "BEGIN; "+historyGuard); err != nil {
		r.abort(ctx)
		return fmt.Errorf("prepare history statements: %w", err)
	}
	err := r.conn.DeallocateAll(ctx)
	if err == nil {
		_, err = r.conn.Prepare(ctx, stmtRecord, recordSQL)
	}
	if err == nil {
		_, err = r.conn.Prepare(ctx, stmtDelete, deleteSQL)
	}
	if err != nil {
		r.abort(ctx)
		return fmt.Errorf("prepare history statements: %w", err)
	}
	if _, err := r.conn.Exec(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("prepare history statements: %w", err)
	}
	return nil
}

// holdsLock checks, at most once a second (always when now is set), that
// the run's lock is still held. A lock whose session the server ended is
// free for another runner: this run must stop before its next file. A lock
// on the migrated connection itself that a file released is taken again
// when nobody took it meanwhile.
func (r *runner) holdsLock(ctx context.Context, st Step, now bool) error {
	h, ok := r.locker.(interface {
		Held(context.Context) (bool, error)
	})
	if !ok || (!now && time.Since(r.checked) < time.Second) {
		return nil
	}
	r.checked = time.Now()
	held, err := h.Held(ctx)
	if err != nil {
		if lost := r.lost(ctx, st, 0, err); lost != nil {
			return &LockLostError{Path: st.Script.Path, Why: "the connection that holds dbinit's lock broke"}
		}
		return fmt.Errorf("check the migration lock: %w", err)
	}
	if held {
		return nil
	}
	if re, ok := r.locker.(interface {
		Retake(context.Context) (bool, error)
	}); ok {
		if got, err := re.Retake(ctx); err == nil && got {
			r.m.log.Warn("a file released dbinit's lock on its own connection (DISCARD ALL, pg_advisory_unlock_all); took it again", "file", st.Script.Path)
			return nil
		}
	}
	return &LockLostError{Path: st.Script.Path, Why: "dbinit's lock is no longer held (its session was ended, or a file released it)"}
}

func (r *runner) started() time.Time {
	if r.start.IsZero() {
		return time.Now()
	}
	return r.start
}

func (r *runner) step(ctx context.Context, i int, st Step, last bool) error {
	if r.start.IsZero() {
		r.start = time.Now()
	}
	fr := FileResult{Version: st.Migration.Version, Name: st.Migration.Name, Path: st.Script.Path, Down: st.Down, ResumedAt: st.ResumeAt}
	t0 := time.Now()
	err := r.holdsLock(ctx, st, st.Script.NoTransaction)
	switch {
	case err != nil:
	case st.Replace:
		m := st.Migration
		fr.Replaced = true
		var below []int64
		for _, f := range m.Up.ReplacedFiles {
			if f.Version != m.Version {
				below = append(below, f.Version)
			}
		}
		err = r.writeHistory(ctx, st.Script.Path, replaceSQL, m.Version, below, m.Name, m.Up.Checksum, m.replaces(), r.m.opts.Version)
		if err != nil {
			if lost := r.lost(ctx, st, 0, err); lost != nil {
				err = lost
			} else if _, isLock := err.(*LockLostError); !isLock {
				err = fmt.Errorf("%s: record it over the versions it replaces: %w", st.Script.Path, err)
			}
		}
	case st.Script.NoTransaction:
		fr.Statements, err = r.statementByStatement(ctx, st)
	default:
		// The whole file again after a lock timeout: its transaction
		// rolled back.
		err = r.withLockRetry(ctx, st, "the file", func() error {
			var err error
			fr.Statements, err = r.transactional(ctx, st, last)
			return err
		})
	}
	fr.Duration = time.Since(t0)
	if err != nil {
		fr.Err = err
		r.res.Files = append(r.res.Files, fr)
		return err
	}
	verb := "applied"
	switch {
	case st.Down:
		verb = "reverted"
	case st.Replace:
		verb = "recorded over the versions it replaces, without running (they are all applied)"
	}
	r.m.log.Info(verb, "progress", fmt.Sprintf("%d/%d", i+1, r.total), "file", st.Script.Path, "version", st.Migration.Version, "name", st.Migration.Name,
		"statements", fr.Statements, "duration_ms", fr.Duration.Milliseconds())
	r.res.Files = append(r.res.Files, fr)
	r.res.FilesExecuted = append(r.res.FilesExecuted, st.Script.Path)
	return nil
}

// Names of the prepared history statements.
const (
	stmtRecord = "dbinit_record"
	stmtDelete = "dbinit_delete"
)

// bigFile is the size from which a transactional file's BEGIN goes in a
// round trip of its own rather than in front of the file's text.
const bigFile = 1 << 20

// beginSQL opens a file's transaction in the same round trip as the file.
const beginSQL = "BEGIN;"

// resetAfterFile ends the file's round trip: the file's settings
// (statement_timeout, a tiny idle_in_transaction_session_timeout) must not
// reach the history row, nor the moment before it is sent. The newline
// ends a trailing line comment; the ";" a last statement without one.
const resetAfterFile = "\n;RESET ALL"

// transactional runs a file in a transaction with its history row, in two
// round trips: BEGIN and the whole file at once (so the server's error
// position is an offset into the file), then one pipelined batch that resets
// the session, writes the history row and commits.
func (r *runner) transactional(ctx context.Context, st Step, last bool) (int, error) {
	t0 := time.Now()
	settings, n := r.m.settings(st.Script, true)
	prefix := beginSQL + settings
	var done int
	var err error
	if len(st.Script.SQL) < bigFile {
		done, err = execCounting(ctx, r.conn.PgConn(), prefix+st.Script.withTrailer())
		done -= min(done, 1+n) // BEGIN and the settings are not the file's
	} else {
		// A large file is not copied once more to put BEGIN in front: one
		// round trip more, which is nothing next to the file. Between the
		// two the session is idle in its transaction, and stays so while
		// the server reads a file that may take long to arrive: no
		// idle-in-transaction timeout of the role's may end it there.
		prefix += "SET LOCAL idle_in_transaction_session_timeout = 0;"
		if _, err = execCounting(ctx, r.conn.PgConn(), prefix); err == nil {
			prefix = ""
			done, err = execCounting(ctx, r.conn.PgConn(), st.Script.withTrailer())
		}
	}
	if err == nil {
		done-- // nor the RESET after it
	}
	r.inTx = true // even if the file failed: ROLLBACK ends whatever BEGIN opened
	if err != nil {
		if lost := r.lost(ctx, st, 0, err); lost != nil {
			return done, lost
		}
		r.rollback(ctx)
		return done, r.placeError(st, done, 0, shiftPosition(err, len(prefix)))
	}
	// After a file that dropped the session's prepared statements, the
	// history statements go by their text (planned after the RESETs, as
	// the connecting user); they are prepared again after the commit.
	recordStmt, removeStmt := stmtRecord, stmtDelete
	if st.Script.dropsPrepared {
		r.conn.DeallocateAll(ctx) // pgx's own cache: the server's is gone
		recordStmt, removeStmt = recordSQL, deleteSQL
	}
	b := &pgx.Batch{}
	// Undo what the file did to the session before the history row is
	// written, so every file starts as if it had a session of its own (as
	// when psql loaded each file) and the row is written as the connecting
	// user. The batch is pipelined: the server runs it in order.
	b.Queue("RESET ALL")
	b.Queue("RESET ROLE")
	b.Queue("RESET SESSION AUTHORIZATION")
	// Down files always commit durably: the flush at the end of a run needs
	// a history row to write, and a run of downs may leave none.
	async := !last && !st.Down
	if async {
		b.Queue("SET LOCAL synchronous_commit = off")
	}
	if st.Down {
		b.Queue(removeStmt, st.Migration.Version)
	} else {
		rec := record{m: st.Migration, state: StateApplied, done: len(st.Script.Statements), durationMS: time.Since(t0).Milliseconds()}
		b.Queue(recordStmt, rec.args(r.m.opts.Runner, r.m.opts.Version)...)
	}
	history := b.Len() - 1
	b.Queue("COMMIT")
	br := r.conn.SendBatch(ctx, b)
	for i := range b.Len() {
		_, err := br.Exec()
		if i == history && historyRace(err) {
			// Another runner recorded this version meanwhile, which takes
			// a lost lock: the file is rolled back instead of committed.
			_ = br.Close()
			r.rollback(ctx)
			return done, &LockLostError{Path: st.Script.Path, Why: fmt.Sprintf("version %d was recorded by another runner meanwhile", st.Migration.Version)}
		}
		if err != nil {
			_ = br.Close()
			if lost := r.lost(ctx, st, 0, err); lost != nil {
				lost.(*ConnectionLostError).AtCommit = true
				return done, lost
			}
			r.rollback(ctx)
			if i > history {
				// A deferred constraint fails at commit: it belongs to the file.
				return done, r.atCommit(st, err)
			}
			return done, fmt.Errorf("%s: record history: %w", st.Script.Path, err)
		}
	}
	if err := br.Close(); err != nil {
		if lost := r.lost(ctx, st, 0, err); lost != nil {
			lost.(*ConnectionLostError).AtCommit = true
			return done, lost
		}
		r.rollback(ctx)
		return done, fmt.Errorf("%s: record history: %w", st.Script.Path, err)
	}
	r.inTx = false
	if st.Script.dropsPrepared {
		if err := r.prepare(ctx); err != nil {
			return done, fmt.Errorf("%s: %w", st.Script.Path, err)
		}
	}
	r.dirty = async
	if !st.Down {
		r.lastRow = st.Migration
	}
	return done, nil
}

// historyRace reports the error recordSQL and deleteSQL raise when the row
// is not theirs to write: already applied, or already gone.
func historyRace(err error) bool {
	pgErr, ok := asPgError(err)
	return ok && pgErr.Code == "22P02" && strings.Contains(pgErr.Message, historyRaceMark)
}

// shiftPosition makes a server error's position relative to the file when
// n characters were sent before it.
func shiftPosition(err error, n int) error {
	pgErr, ok := asPgError(err)
	if !ok || n == 0 || pgErr.Position <= int32(n) {
		return err
	}
	shifted := *pgErr
	shifted.Position -= int32(n)
	return &shifted
}

// rollback ends the open transaction, if any. It is done even when the run
// is being cancelled; ROLLBACK without a transaction is harmless.
func (r *runner) rollback(ctx context.Context) {
	if r.inTx {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, _ = r.conn.Exec(ctx, "ROLLBACK")
		cancel()
		r.inTx = false
	}
}

// statementByStatement runs a no-transaction file one statement at a time,
// recording progress after each, so a failure can resume where it stopped.
// Every history write commits durably: a statement like CREATE INDEX
// CONCURRENTLY must never survive a crash while the row saying it ran is lost.
func (r *runner) statementByStatement(ctx context.Context, st Step) (int, error) {
	s := st.Script
	ran := 0
	t0 := time.Now()
	if settings, _ := r.m.settings(s, false); settings != "" {
		if _, err := r.conn.PgConn().Exec(ctx, settings).ReadAll(); err != nil {
			return 0, fmt.Errorf("%s: set timeouts: %w", s.Path, err)
		}
	}
	// Resuming on a new session: the settings the statements before the
	// resume point made (search_path, ROLE, timeouts) are made again, so
	// the statements after it run as they would have.
	for i := range st.ResumeAt {
		if stmt := s.Statements[i]; stmt.setsSession {
			if _, err := r.conn.PgConn().Exec(ctx, stmt.Text).ReadAll(); err != nil {
				return 0, r.placeError(st, i, stmt.Offset, err)
			}
		}
	}
	for i := st.ResumeAt; i < len(s.Statements); i++ {
		stmt := s.Statements[i]
		ts := time.Now()
		if i > st.ResumeAt {
			if err := r.holdsLock(ctx, st, true); err != nil {
				return ran, err
			}
		}
		if stmt.concurrent && stmt.index != "" {
			// An interrupted CREATE INDEX CONCURRENTLY leaves the index
			// INVALID, and IF NOT EXISTS would then skip it: drop it first.
			if err := r.dropInvalidIndex(ctx, st, i); err != nil {
				return ran, err
			}
		}
		err := r.withLockRetry(ctx, st, fmt.Sprintf("statement %d", i+1), func() error {
			_, err := r.conn.PgConn().Exec(ctx, stmt.Text).ReadAll()
			return err
		})
		if err != nil {
			// The row recorded after the previous statement already says
			// where to resume.
			if lost := r.lost(ctx, st, i+1, err); lost != nil {
				return ran, lost
			}
			var lre *LockRetryError
			if errors.As(err, &lre) {
				lre.Err = r.placeError(st, i, stmt.Offset, lre.Err)
				return ran, lre
			}
			return ran, r.placeError(st, i, stmt.Offset, err)
		}
		ran++
		if stmt.dropsPrepared {
			if err := r.prepare(ctx); err != nil {
				return ran, fmt.Errorf("%s: %w", s.Path, err)
			}
		}
		if st.Down || i+1 == len(s.Statements) {
			continue // the final row is written below
		}
		rec := record{m: st.Migration, state: StatePartial, done: i + 1, prefix: prefixChecksum(s, i+1), durationMS: time.Since(ts).Milliseconds()}
		if err := r.writeHistory(ctx, s.Path, stmtRecord, rec.args(r.m.opts.Runner, r.m.opts.Version)...); err != nil {
			return ran, fmt.Errorf("%s: record progress after statement %d: %w", s.Path, i+1, err)
		}
	}
	if !st.Down {
		// Never record a file applied over an index it left INVALID.
		if err := r.checkIndexes(ctx, st); err != nil {
			return ran, err
		}
	}
	if _, err := r.conn.Exec(ctx, resetSQL); err != nil {
		return ran, fmt.Errorf("%s: reset session: %w", s.Path, err)
	}
	if st.Down {
		if err := r.writeHistory(ctx, s.Path, stmtDelete, st.Migration.Version); err != nil {
			return ran, fmt.Errorf("%s: record history: %w", s.Path, err)
		}
		return ran, nil
	}
	// Written even when nothing was left to run (a partial file whose
	// failed tail was deleted), so the file does not stay partial.
	rec := record{m: st.Migration, state: StateApplied, done: len(s.Statements), durationMS: time.Since(t0).Milliseconds()}
	if err := r.writeHistory(ctx, s.Path, stmtRecord, rec.args(r.m.opts.Runner, r.m.opts.Version)...); err != nil {
		return ran, fmt.Errorf("%s: record history: %w", s.Path, err)
	}
	r.dirty = false // a durable commit flushes every earlier one
	r.lastRow = st.Migration
	return ran, nil
}

// historyGuard makes a history write independent of the session state a
// no-transaction file left behind (SET ROLE, SET synchronous_commit = off,
// another client_encoding, a read-only default, tiny timeouts, an empty
// search_path); SET LOCAL ends with the transaction, so the file's own
// settings apply again to its next statement. Setting
// transaction_read_only must come first, before anything counts as a
// query of the transaction.
const historyGuard = "SET LOCAL transaction_read_only = off; SET LOCAL SESSION AUTHORIZATION DEFAULT; SET LOCAL ROLE NONE; " +
	"SET LOCAL synchronous_commit = on; SET LOCAL client_encoding = 'UTF8'; SET LOCAL statement_timeout = 0; " +
	"SET LOCAL lock_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL search_path = pg_catalog"

// writeHistory writes one history change in a durable transaction of its
// own. It is done even when the run is being cancelled.
func (r *runner) writeHistory(ctx context.Context, path, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	write := func() error {
		// BEGIN and the guard in one round trip: a file's tiny
		// idle_in_transaction_session_timeout must find no idle moment.
		if _, err := r.conn.Exec(ctx, "BEGIN; "+historyGuard); err != nil {
			r.abort(ctx)
			return err
		}
		if _, err := r.conn.Exec(ctx, sql, args...); err != nil {
			r.abort(ctx)
			return err
		}
		_, err := r.conn.Exec(ctx, "COMMIT")
		return err
	}
	err := write()
	if historyRace(err) {
		return &LockLostError{Path: path, Why: "another runner wrote this file's history row meanwhile"}
	}
	if pgErr, ok := asPgError(err); ok && pgErr.Code == "26000" {
		// A prepared statement the session lost some other way (a
		// DEALLOCATE inside a function): prepare again, once.
		if err := r.prepare(ctx); err != nil {
			return err
		}
		err = write()
	}
	return err
}

// abort ends a failed history write's transaction.
func (r *runner) abort(ctx context.Context) {
	if !r.conn.IsClosed() {
		_, _ = r.conn.Exec(ctx, "ROLLBACK")
	}
}

// flush makes asynchronous commits durable with one synchronous commit that
// writes: PostgreSQL flushes the WAL in order, so it flushes all before it.
func (r *runner) flush(ctx context.Context) error {
	if !r.dirty || r.lastRow == nil {
		return nil
	}
	err := r.writeHistory(ctx, r.lastRow.Up.Path, `UPDATE dbinit.schema_migrations SET applied_at = applied_at WHERE version = $1`, r.lastRow.Version)
	if err != nil {
		return fmt.Errorf("flush history to disk: %w", err)
	}
	r.dirty = false
	return nil
}

// lost returns a *ConnectionLostError when err means the connection broke
// (not a cancellation: that is an interruption), else nil. stmt is the
// 1-based statement of a no-transaction file that was running.
func (r *runner) lost(ctx context.Context, st Step, stmt int, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	pgErr, isPg := asPgError(err)
	switch {
	case r.conn.IsClosed():
	case isPg && (pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03" || strings.HasPrefix(pgErr.Code, "08")):
		// admin_shutdown, crash_shutdown, cannot_connect_now, connection
		// exceptions: the server ends the session.
	default:
		return nil
	}
	r.inTx = false // the server ended the transaction with the session
	return &ConnectionLostError{Path: st.Script.Path, Statement: stmt, NoTransaction: st.Script.NoTransaction, Err: err}
}

// atCommit places an error raised by COMMIT: on the file, not on a line.
func (r *runner) atCommit(st Step, err error) error {
	pgErr, ok := asPgError(err)
	if !ok {
		return fmt.Errorf("%s: at COMMIT: %w", st.Script.Path, err)
	}
	return &SQLError{Path: st.Script.Path, Version: st.Migration.Version, AtCommit: true, Err: pgErr}
}

// placeError turns a server error into a *SQLError placed in the file.
// stmt is the index of the failing statement (-1 when unknown); base is the
// byte offset of the text that was sent.
func (r *runner) placeError(st Step, stmt, base int, err error) error {
	pgErr, ok := asPgError(err)
	if !ok {
		return fmt.Errorf("%s: %w", st.Script.Path, err)
	}
	// In a SQL_ASCII database the server counts positions in bytes.
	bytes := r.conn.PgConn().ParameterStatus("server_encoding") == "SQL_ASCII"
	return newSQLError(st.Script, st.Migration.Version, stmt, base, bytes, pgErr)
}

// execCounting sends sql with the simple protocol, which runs several
// statements in one round trip, and counts the statements that completed, so
// that an error without a position can still be pinned on its statement.
func execCounting(ctx context.Context, pgc *pgconn.PgConn, sql string) (int, error) {
	mrr := pgc.Exec(ctx, sql)
	done := 0
	for mrr.NextResult() {
		if _, err := mrr.ResultReader().Close(); err != nil {
			_ = mrr.Close()
			return done, err
		}
		done++
	}
	return done, mrr.Close()
}
