package provision

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/migrate"
)

// LockKey is the advisory-lock key of a database dbinit manages: runners
// working on the same template or working database wait for each other,
// runners working on different ones do not.
func LockKey(database string) int64 { return migrate.LockKey("database:" + database) }

// AdvisoryLocks returns the LockFunc dbinit uses: a session advisory lock
// per database name, taken on conn and waited for up to timeout.
//
// An advisory lock lives in the database of the session that takes it, so
// every runner must take it in the same database: dbinit uses "postgres"
// whenever it can connect to it (see the cli's lock connection), whatever
// database its URL names.
func AdvisoryLocks(conn *pgx.Conn, timeout time.Duration, log *slog.Logger) LockFunc {
	return func(database string) migrate.Locker {
		return &migrate.AdvisoryLock{Conn: conn, Key: LockKey(database), Timeout: timeout, Logger: log.With("lock", database)}
	}
}
