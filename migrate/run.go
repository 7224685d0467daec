package migrate

import (
	"context"
	"fmt"
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
	r := &runner{m: m, conn: conn, res: res, total: len(plan.Steps)}
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
	}()
	// The history statements are prepared while the session is clean: a
	// file's SET ROLE must not decide whether they can be planned.
	if _, err := conn.Prepare(ctx, stmtRecord, recordSQL); err != nil {
		return fmt.Errorf("prepare history insert: %w", err)
	}
	if _, err := conn.Prepare(ctx, stmtDelete, deleteSQL); err != nil {
		return fmt.Errorf("prepare history delete: %w", err)
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
	dirty   bool       // an asynchronous commit has not been flushed yet
	lastRow *Migration // last history row committed, for the final flush
	start   time.Time
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
	var err error
	if st.Script.NoTransaction {
		fr.Statements, err = r.statementByStatement(ctx, st)
	} else {
		fr.Statements, err = r.transactional(ctx, st, last)
	}
	fr.Duration = time.Since(t0)
	if err != nil {
		fr.Err = err
		r.res.Files = append(r.res.Files, fr)
		return err
	}
	verb := "applied"
	if st.Down {
		verb = "reverted"
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

// beginSQL opens a file's transaction in the same round trip as the file.
const beginSQL = "BEGIN;"

// transactional runs a file in a transaction with its history row, in two
// round trips: BEGIN and the whole file at once (so the server's error
// position is an offset into the file), then one pipelined batch that resets
// the session, writes the history row and commits.
func (r *runner) transactional(ctx context.Context, st Step, last bool) (int, error) {
	t0 := time.Now()
	done, err := execCounting(ctx, r.conn.PgConn(), beginSQL+st.Script.SQL)
	if done > 0 {
		done-- // BEGIN is not the file's
	}
	r.inTx = true // even if the file failed: ROLLBACK ends whatever BEGIN opened
	if err != nil {
		r.rollback(ctx)
		return done, r.placeError(st, done, 0, shiftPosition(err, len(beginSQL)))
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
		b.Queue(stmtDelete, st.Migration.Version)
	} else {
		rec := record{m: st.Migration, state: StateApplied, done: len(st.Script.Statements), durationMS: time.Since(t0).Milliseconds()}
		b.Queue(stmtRecord, rec.args(r.m.opts.Runner, r.m.opts.Version)...)
	}
	history := b.Len() - 1
	b.Queue("COMMIT")
	br := r.conn.SendBatch(ctx, b)
	for i := range b.Len() {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			r.rollback(ctx)
			if i > history {
				// A deferred constraint fails at commit: it belongs to the file.
				return done, r.placeError(st, -1, 0, err)
			}
			return done, fmt.Errorf("%s: record history: %w", st.Script.Path, err)
		}
	}
	if err := br.Close(); err != nil {
		r.rollback(ctx)
		return done, fmt.Errorf("%s: record history: %w", st.Script.Path, err)
	}
	r.inTx = false
	r.dirty = async
	if !st.Down {
		r.lastRow = st.Migration
	}
	return done, nil
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
	for i := st.ResumeAt; i < len(s.Statements); i++ {
		stmt := s.Statements[i]
		ts := time.Now()
		if _, err := r.conn.PgConn().Exec(ctx, stmt.Text).ReadAll(); err != nil {
			// The row recorded after the previous statement already says
			// where to resume.
			return ran, r.placeError(st, i, stmt.Offset, err)
		}
		ran++
		if st.Down || i+1 == len(s.Statements) {
			continue // the final row is written below
		}
		rec := record{m: st.Migration, state: StatePartial, done: i + 1, prefix: prefixChecksum(s, i+1), durationMS: time.Since(ts).Milliseconds()}
		if err := r.writeHistory(ctx, stmtRecord, rec.args(r.m.opts.Runner, r.m.opts.Version)...); err != nil {
			return ran, fmt.Errorf("%s: record progress after statement %d: %w", s.Path, i+1, err)
		}
	}
	if _, err := r.conn.Exec(ctx, resetSQL); err != nil {
		return ran, fmt.Errorf("%s: reset session: %w", s.Path, err)
	}
	if st.Down {
		if err := r.writeHistory(ctx, stmtDelete, st.Migration.Version); err != nil {
			return ran, fmt.Errorf("%s: record history: %w", s.Path, err)
		}
		return ran, nil
	}
	// Written even when nothing was left to run (a partial file whose
	// failed tail was deleted), so the file does not stay partial.
	rec := record{m: st.Migration, state: StateApplied, done: len(s.Statements), durationMS: time.Since(t0).Milliseconds()}
	if err := r.writeHistory(ctx, stmtRecord, rec.args(r.m.opts.Runner, r.m.opts.Version)...); err != nil {
		return ran, fmt.Errorf("%s: record history: %w", s.Path, err)
	}
	r.dirty = false // a durable commit flushes every earlier one
	r.lastRow = st.Migration
	return ran, nil
}

// historyGuard makes a history write independent of the session state a
// no-transaction file left behind (SET ROLE, SET synchronous_commit = off,
// another client_encoding); SET LOCAL ends with the transaction, so the
// file's own settings apply again to its next statement.
const historyGuard = "SET LOCAL SESSION AUTHORIZATION DEFAULT; SET LOCAL ROLE NONE; SET LOCAL synchronous_commit = on; SET LOCAL client_encoding = 'UTF8'"

// writeHistory writes one history change in a durable transaction of its
// own. It is done even when the run is being cancelled.
func (r *runner) writeHistory(ctx context.Context, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, historyGuard); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sql, args...)
		return err
	})
}

// flush makes asynchronous commits durable with one synchronous commit that
// writes: PostgreSQL flushes the WAL in order, so it flushes all before it.
func (r *runner) flush(ctx context.Context) error {
	if !r.dirty || r.lastRow == nil {
		return nil
	}
	err := r.writeHistory(ctx, `UPDATE dbinit.schema_migrations SET applied_at = applied_at WHERE version = $1`, r.lastRow.Version)
	if err != nil {
		return fmt.Errorf("flush history to disk: %w", err)
	}
	r.dirty = false
	return nil
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
