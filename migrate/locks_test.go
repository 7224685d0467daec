package migrate_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/migrate"
)

// lockWaitScenario: a slow report keeps a transaction open on table t for
// hold (ACCESS SHARE); a migration altering t (ACCESS EXCLUSIVE) starts;
// while it waits, the application runs a SELECT on t. It returns how long
// that SELECT waited, and the migration's outcome.
func lockWaitScenario(t *testing.T, opts migrate.Options, hold time.Duration, file string) (appWait time.Duration, res *migrate.Result, err error) {
	t.Helper()
	cc := emptydb.New(t)
	emptydb.Exec(t, cc, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)")
	report := emptydb.Conn(t, cc)
	if _, err := report.Exec(context.Background(), "BEGIN; SELECT count(*) FROM t"); err != nil {
		t.Fatal(err)
	}
	committed := make(chan struct{})
	time.AfterFunc(hold, func() { report.Exec(context.Background(), "COMMIT"); close(committed) })
	defer func() { <-committed }()
	conn := cancellingConn(t, cc)
	app, watcher := emptydb.Conn(t, cc), emptydb.Conn(t, cc)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res, err = mustNew(t, load(t, map[string]string{"001_alter.sql": file}), opts).Up(ctx(t), conn, all)
	}()
	// The application's query, once the migration waits for its lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := watcher.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
WHERE datname = current_database() AND query LIKE '%ALTER TABLE t%' AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the migration never waited for the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	var n int
	if err := app.QueryRow(context.Background(), "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	appWait = time.Since(start)
	wg.Wait()
	return appWait, res, err
}

// TestDDLLockTimeoutKeepsTheApplicationGoing: with a lock timeout, the
// application's query waits at most about that long behind a migration
// that waits for a slow report, and the migration succeeds, retried, once
// the report ends; without one, the query waits for the report.
func TestDDLLockTimeoutKeepsTheApplicationGoing(t *testing.T) {
	t.Parallel()
	const hold = 3 * time.Second
	file := "ALTER TABLE t ADD COLUMN note text;"
	logs := &syncBuffer{}
	opts := migrate.Options{DDLLockTimeout: 300 * time.Millisecond, DDLRetryTimeout: 30 * time.Second, Logger: newLogger(logs)}
	start := time.Now()
	withTimeout, res, err := lockWaitScenario(t, opts, hold, file)
	if err != nil || len(res.FilesExecuted) != 1 {
		t.Fatalf("migration with a lock timeout: %+v, %v", res, err)
	}
	took := time.Since(start)
	if withTimeout > time.Second {
		t.Errorf("the application's query waited %s behind a migration with a 300ms lock timeout", withTimeout)
	}
	if took < hold {
		t.Errorf("the migration finished after %s, before the report ended", took)
	}
	if !strings.Contains(logs.String(), "trying again") || !strings.Contains(logs.String(), "idle in transaction") {
		t.Errorf("the retries were not logged with the blocking session:\n%s", logs)
	}
	without, _, err := lockWaitScenario(t, migrate.Options{}, hold, file)
	if err != nil {
		t.Fatal(err)
	}
	if without < hold/2 {
		t.Errorf("without a lock timeout the query waited only %s; the scenario does not block", without)
	}
	t.Logf("the application's SELECT waited %s behind the migration with DBINIT_DDL_LOCK_TIMEOUT=300ms, %s without (report held its lock %s); the migration took %s",
		withTimeout.Round(time.Millisecond), without.Round(time.Millisecond), hold, took.Round(time.Millisecond))
}

// TestDDLLockRetryGivesUp: a lock held past the retry timeout ends the run
// with a LockRetryError naming the blocker; nothing is applied.
func TestDDLLockRetryGivesUp(t *testing.T) {
	t.Parallel()
	opts := migrate.Options{DDLLockTimeout: 100 * time.Millisecond, DDLRetryTimeout: 1500 * time.Millisecond}
	for _, file := range []string{"ALTER TABLE t ADD COLUMN note text;", "-- dbinit:no-transaction\nALTER TABLE t ADD COLUMN note text;"} {
		_, res, err := lockWaitScenario(t, opts, 4*time.Second, file)
		var lre *migrate.LockRetryError
		var se *migrate.SQLError
		if !errors.As(err, &lre) || lre.Attempts < 2 || len(lre.Blockers) == 0 || !errors.As(err, &se) || se.Line != strings.Count(file, "\n")+1 {
			t.Fatalf("%q: err = %v, want a LockRetryError placed in the file with its blockers", file, err)
		}
		if len(res.FilesExecuted) != 0 {
			t.Fatalf("%q: applied %v", file, res.FilesExecuted)
		}
	}
}

// TestFileTimeoutDirectives: a file's own lock and statement timeouts win
// over the Migrator's.
func TestFileTimeoutDirectives(t *testing.T) {
	t.Parallel()
	conn := emptydb.Conn(t, emptydb.New(t))
	set := load(t, map[string]string{
		"001_a.sql": "-- dbinit:lock-timeout 30s\n-- dbinit:statement-timeout 10m\nCREATE TABLE a AS SELECT current_setting('lock_timeout') AS lt, current_setting('statement_timeout') AS st;",
		"002_b.sql": "CREATE TABLE b AS SELECT current_setting('lock_timeout') AS lt, current_setting('statement_timeout') AS st;",
		"003_c.sql": "-- dbinit:no-transaction\n-- dbinit:statement-timeout 0\nCREATE TABLE c AS SELECT current_setting('lock_timeout') AS lt, current_setting('statement_timeout') AS st;",
	})
	m := mustNew(t, set, migrate.Options{DDLLockTimeout: 5 * time.Second, StatementTimeout: time.Minute})
	if _, err := m.Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]string{"a": "30s 10min", "b": "5s 1min", "c": "5s 0"} {
		if got := scalar[string](t, conn, "SELECT lt || ' ' || st FROM "+table); got != want {
			t.Errorf("%s ran with %q, want %q", table, got, want)
		}
	}
	bad := fstest.MapFS{"001_a.sql": {Data: []byte("-- dbinit:lock-timeout soon\nSELECT 1;")}}
	if _, err := migrate.Load(bad, "db"); err == nil || !strings.Contains(err.Error(), "needs a duration") {
		t.Fatalf("bad duration: %v", err)
	}
}

func newLogger(w *syncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
