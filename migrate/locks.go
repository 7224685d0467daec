package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/retry"
)

// Migration statements run with a lock_timeout, so that a statement waiting
// for a table lock (ALTER TABLE needs ACCESS EXCLUSIVE, which waits for every
// open transaction that read the table) does not hold the application's
// queries queued behind it for longer than that: PostgreSQL queues a new
// lock request behind a waiting one. When the wait runs out (55P03), the
// file is rolled back (a no-transaction file: the statement) and tried again
// after a pause, until DDLRetryTimeout; the pauses let the application's
// queued queries through.

// timeouts returns the lock and statement timeouts for a file: its own
// directives, else the Migrator's options. Zero means "leave the server's".
func (m *Migrator) timeouts(s *Script) (lock, stmt time.Duration, setLock, setStmt bool) {
	lock, setLock = m.opts.DDLLockTimeout, m.opts.DDLLockTimeout > 0
	if s.LockTimeout != nil {
		lock, setLock = *s.LockTimeout, true
	}
	stmt, setStmt = m.opts.StatementTimeout, m.opts.StatementTimeout > 0
	if s.StatementTimeout != nil {
		stmt, setStmt = *s.StatementTimeout, true
	}
	return
}

// settings is the SQL that sets a file's timeouts; local for a
// transactional file (they end with its transaction), for the session for a
// no-transaction one (RESET ALL after the file ends them). n is the number of
// statements.
func (m *Migrator) settings(s *Script, local bool) (sql string, n int) {
	lock, stmt, setLock, setStmt := m.timeouts(s)
	scope := "SET "
	if local {
		scope = "SET LOCAL "
	}
	var b strings.Builder
	if setLock {
		fmt.Fprintf(&b, "%slock_timeout = %d;", scope, lock.Milliseconds())
		n++
	}
	if setStmt {
		fmt.Fprintf(&b, "%sstatement_timeout = %d;", scope, stmt.Milliseconds())
		n++
	}
	return b.String(), n
}

// isLockTimeout reports the error of a statement that gave up waiting for a
// lock.
func isLockTimeout(err error) bool {
	pgErr, ok := asPgError(err)
	return ok && pgErr.Code == "55P03"
}

// Blocker is a session that held a lock a migration statement waited for.
type Blocker struct {
	PID         int
	Application string
	User        string
	State       string // "idle in transaction", "active"
	Since       time.Time
	Query       string // its current or last statement, shortened
}

func (b Blocker) String() string {
	q := b.Query
	if q != "" {
		q = ": " + q
	}
	return fmt.Sprintf("pid %d (%s, user %s, %s since %s%s)", b.PID, b.Application, b.User, b.State, b.Since.UTC().Format("15:04:05"), q)
}

// LockRetryError says a file's statements kept running out of
// DDLLockTimeout for DDLRetryTimeout: the application held a lock the
// migration needs. The file was rolled back (a no-transaction file stays
// partial before that statement). Exit code 6, like another runner holding
// dbinit's own lock: a transient condition, worth a later try.
type LockRetryError struct {
	Path     string
	Attempts int
	Waited   time.Duration
	Blockers []Blocker // the sessions last seen blocking it
	Err      error     // the last *SQLError (55P03)
}

func (e *LockRetryError) Error() string {
	msg := fmt.Sprintf("%s: gave up after %d attempts in %s (DBINIT_DDL_RETRY_TIMEOUT): every attempt waited longer than the lock timeout for a lock the application holds",
		e.Path, e.Attempts, e.Waited.Round(time.Second))
	if len(e.Blockers) > 0 {
		bs := make([]string, len(e.Blockers))
		for i, b := range e.Blockers {
			bs[i] = b.String()
		}
		msg += "; blocked by " + strings.Join(bs, ", ")
	}
	return msg + "\n" + e.Err.Error()
}

func (e *LockRetryError) Unwrap() error { return e.Err }

// withLockRetry runs attempt until it succeeds, fails otherwise than by a
// lock timeout, or DDLRetryTimeout runs out. Each failed attempt is logged
// with the sessions that blocked it.
func (r *runner) withLockRetry(ctx context.Context, st Step, what string, attempt func() error) error {
	start := time.Now()
	n := 0
	var blockers []Blocker
	err := retry.Do(ctx, retry.Policy{Initial: 500 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.5, Timeout: r.m.opts.DDLRetryTimeout},
		func(context.Context, retry.Attempt) error {
			n++
			stop := r.watchBlockers(ctx, st)
			err := attempt()
			seen := stop()
			if !isLockTimeout(err) || r.m.opts.DDLRetryTimeout == 0 {
				return err
			}
			if len(seen) > 0 {
				blockers = seen
			}
			bs := make([]string, len(seen))
			for i, b := range seen {
				bs[i] = b.String()
			}
			r.m.log.Warn("a statement waited longer than the lock timeout; the application's queries went on, trying again",
				"file", st.Script.Path, "what", what, "attempt", n, "blocked_by", strings.Join(bs, "; "),
				"waited_ms", time.Since(start).Milliseconds())
			return retry.Again(err)
		})
	var ex *retry.ExhaustedError
	if errors.As(err, &ex) {
		return &LockRetryError{Path: st.Script.Path, Attempts: n, Waited: time.Since(start), Blockers: blockers, Err: ex.Last}
	}
	return err
}

// watchBlockers watches, while a file's attempt runs, which sessions block
// the migrating session, from a second connection opened on first need.
// It only starts looking once the attempt has run for a while, so quick
// files cost nothing. stop ends the watch and returns the blockers last
// seen.
func (r *runner) watchBlockers(ctx context.Context, st Step) (stop func() []Blocker) {
	lock, _, setLock, _ := r.m.timeouts(st.Script)
	if !setLock || lock == 0 || r.m.opts.DDLRetryTimeout == 0 {
		return func() []Blocker { return nil }
	}
	wctx, cancel := context.WithCancel(ctx)
	var (
		mu   sync.Mutex
		seen []Blocker
		done = make(chan struct{})
	)
	pid := r.conn.PgConn().PID()
	go func() {
		defer close(done)
		// A few looks within even a short lock timeout (on a loaded
		// server the statement may start waiting well after the attempt
		// began), then one every 100 ms: pg_blocking_pids takes the lock
		// manager's locks, and a long statement under a tiny lock
		// timeout must not have it called hundreds of times a second.
		wait := max(min(lock/4, 250*time.Millisecond), 25*time.Millisecond)
		for retry.Sleep(wctx, wait) == nil {
			wait = min(max(wait*2, 25*time.Millisecond), 100*time.Millisecond)
			// The watch connection is opened with the run's context,
			// not the attempt's: on a loaded machine opening it can
			// take longer than a short lock timeout, and a connection
			// abandoned with every attempt would never see a blocker.
			if err := r.openWatch(ctx); err != nil {
				return
			}
			b, err := r.blockersOf(wctx, pid)
			if err != nil {
				return
			}
			if len(b) > 0 {
				mu.Lock()
				seen = b
				mu.Unlock()
			}
		}
	}()
	return func() []Blocker {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// openWatch opens the watch connection, once per run unless it was lost,
// within 10 s. ctx is the run's, not the attempt's: the end of an attempt
// does not abandon it.
func (r *runner) openWatch(ctx context.Context) error {
	if r.watch != nil && !r.watch.IsClosed() {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cc := r.conn.Config().Copy()
	cc.RuntimeParams["application_name"] = "dbinit (lock watch)"
	conn, err := pgx.ConnectConfig(cctx, cc)
	if err != nil {
		return err
	}
	r.watch = conn
	return nil
}

// blockersOf reads the sessions blocking pid, on the watch connection.
func (r *runner) blockersOf(ctx context.Context, pid uint32) ([]Blocker, error) {
	rows, err := r.watch.Query(ctx, `
SELECT pid, coalesce(application_name, ''), coalesce(usename::text, ''), coalesce(state, ''),
       coalesce(xact_start, query_start, backend_start, now()), left(coalesce(query, ''), 80)
FROM pg_stat_activity WHERE pid = ANY (pg_blocking_pids($1)) ORDER BY pid`, int32(pid))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Blocker, error) {
		var b Blocker
		err := row.Scan(&b.PID, &b.Application, &b.User, &b.State, &b.Since, &b.Query)
		return b, err
	})
}
