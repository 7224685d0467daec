package migrate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/retry"
)

// A Locker serialises runners. Lock returns once the caller holds the lock, or
// an error (a *LockTimeoutError when another runner held it too long). The
// returned unlock must be called even when ctx has been cancelled.
type Locker interface {
	Lock(ctx context.Context) (unlock func(context.Context) error, err error)
}

// LockKey derives an advisory-lock key from a name, so that different tools
// and test suites can use different keys on one server.
func LockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("dbinit:" + name))
	return int64(h.Sum64())
}

// DefaultLockKey is the key dbinit's commands use. An advisory lock belongs
// to the database of the session that takes it; dbinit takes it on its
// maintenance connection, so runners that share a maintenance database
// never overlap while building the template or updating a working database.
var DefaultLockKey = LockKey("migrate")

// AdvisoryLock is a session-level advisory lock. dbinit takes it on a
// connection to the maintenance database, so no migration's own transactions
// ever wait on it.
//
// It polls pg_try_advisory_lock rather than blocking in pg_advisory_lock: a
// runner blocked in pg_advisory_lock has a statement in progress, and
// CREATE INDEX CONCURRENTLY in the holder would wait for that statement to
// finish while the blocked runner waits for the holder: a deadlock the server
// cannot see.
type AdvisoryLock struct {
	Conn    *pgx.Conn     // connection that will hold the lock for the run
	Key     int64         // DefaultLockKey, or LockKey("my-suite")
	Timeout time.Duration // how long to wait for another runner, 5m (the default when 0)
	Logger  *slog.Logger  // where to say who holds the lock while waiting; nil = silent
	// LogEvery is how often to report the holder while waiting; 0 = 5s.
	LogEvery time.Duration
}

// Lock implements Locker.
func (l *AdvisoryLock) Lock(ctx context.Context) (func(context.Context) error, error) {
	logger := l.Logger
	if logger == nil {
		logger = discardLogger
	}
	logEvery := l.LogEvery
	if logEvery <= 0 {
		logEvery = 5 * time.Second
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	lastLog := time.Now()
	// Poll fast at first (a runner with nothing to do releases within
	// milliseconds), then settle to ~1s with jitter so ten waiting runners
	// do not poll in step.
	err := retry.Do(ctx, retry.Policy{Initial: 50 * time.Millisecond, Max: time.Second, Jitter: 0.25, Timeout: timeout},
		func(actx context.Context, a retry.Attempt) error {
			var got bool
			// The attempt's own context ends at the deadline; the query
			// must not be cut by it, or a timeout would read as a failure.
			if err := l.Conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, l.Key).Scan(&got); err != nil {
				return fmt.Errorf("take migration lock: %w", err)
			}
			if got {
				if a.N > 1 {
					logger.Info("lock acquired", "waited_ms", a.Elapsed.Milliseconds())
				}
				return nil
			}
			if a.N == 1 || time.Since(lastLog) >= logEvery {
				logger.Info("waiting for another runner's lock", "holder", l.holder(ctx), "waited_ms", a.Elapsed.Milliseconds())
				lastLog = time.Now()
			}
			return retry.Again(errLockHeld)
		})
	var ex *retry.ExhaustedError
	if errors.As(err, &ex) {
		return nil, &LockTimeoutError{Waited: ex.Elapsed, Holder: l.holder(ctx)}
	}
	if err != nil {
		return nil, err
	}
	return l.unlock, nil
}

var errLockHeld = errors.New("the lock is held by another session")

// Held reports whether the lock's session still holds it: the server may
// have ended the session (idle_session_timeout, an administrator), or a
// statement on it released the lock (DISCARD ALL).
func (l *AdvisoryLock) Held(ctx context.Context) (bool, error) {
	var held bool
	err := l.Conn.QueryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
  AND classid::bigint = ($1::bigint >> 32) & 4294967295 AND objid::bigint = $1::bigint & 4294967295)`, l.Key).Scan(&held)
	return held, err
}

// Retake takes the lock again, without waiting, after it was released on a
// session that is still there; false when another session took it
// meanwhile.
func (l *AdvisoryLock) Retake(ctx context.Context) (bool, error) {
	var got bool
	err := l.Conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, l.Key).Scan(&got)
	return got, err
}

func (l *AdvisoryLock) unlock(ctx context.Context) error {
	// A cancelled run must still release the lock; the connection closing
	// would release it too, but the caller may keep using the connection.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if l.Conn.IsClosed() {
		return nil
	}
	if _, err := l.Conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, l.Key); err != nil {
		return fmt.Errorf("release migration lock: %w", err)
	}
	return nil
}

// holder describes the session holding the lock, for the log.
func (l *AdvisoryLock) holder(ctx context.Context) string {
	var pid int
	var app, state, since string
	err := l.Conn.QueryRow(ctx, `
SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
       coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), '')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = ($1::bigint >> 32) & 4294967295 AND l.objid::bigint = $1::bigint & 4294967295
LIMIT 1`, l.Key).Scan(&pid, &app, &state, &since)
	if errors.Is(err, pgx.ErrNoRows) {
		return "none any more (just released)"
	}
	if err != nil {
		return "unknown (cannot read pg_locks: " + err.Error() + ")"
	}
	return fmt.Sprintf("pid %d, application %q, %s, connected since %s", pid, app, state, since)
}
