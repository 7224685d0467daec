package migrate_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/migrate"
)

// noLock lets runners overlap, as they would once a runner lost its lock.
type noLock struct{}

func (noLock) Lock(context.Context) (func(context.Context) error, error) {
	return func(context.Context) error { return nil }, nil
}

// TestLostLockNeverAppliesAFileTwice: two runners that both apply the same
// file (the lock of one was lost) cannot both commit it: the second's
// history row finds the first's and its file is rolled back.
func TestLostLockNeverAppliesAFileTwice(t *testing.T) {
	t.Parallel()
	cc := emptydb.New(t)
	emptydb.Exec(t, cc, "CREATE TABLE acct (id int PRIMARY KEY, cents bigint); INSERT INTO acct VALUES (1, 100)")
	files := map[string]string{"001_setup.sql": "SELECT 1;"}
	if _, err := newMigrator(t, load(t, files)).Up(ctx(t), emptydb.Conn(t, cc), all); err != nil {
		t.Fatal(err)
	}
	files["002_cents.sql"] = "UPDATE acct SET cents = cents * 100;\nSELECT pg_sleep(0.3);"
	set := load(t, files)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	start := make(chan struct{})
	for i := range 2 {
		conn := emptydb.Conn(t, cc)
		m := mustNew(t, set, migrate.Options{Locker: noLock{}})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = m.Up(ctx(t), conn, all)
		}()
	}
	close(start)
	wg.Wait()
	failed := 0
	for _, err := range errs {
		var lle *migrate.LockLostError
		switch {
		case err == nil:
		case errors.As(err, &lle):
			failed++
		default:
			t.Fatalf("err = %v", err)
		}
	}
	if failed != 1 {
		t.Fatalf("%d runners stopped, want 1: %v", failed, errs)
	}
	if cents := scalar[int64](t, emptydb.Conn(t, cc), `SELECT cents FROM acct`); cents != 10000 {
		t.Fatalf("cents = %d: the file ran twice", cents)
	}
}

// TestLockSessionEnded: when the server ends the session that holds the
// lock between files, the run stops before the next file.
func TestLockSessionEnded(t *testing.T) {
	t.Parallel()
	cc := emptydb.New(t)
	lockConn := emptydb.Conn(t, cc)
	set := load(t, map[string]string{
		"001_slow.sql": "CREATE TABLE a (id int);\nSELECT pg_sleep(1.3);",
		"002_next.sql": "CREATE TABLE b (id int);",
	})
	m := mustNew(t, set, migrate.Options{Locker: &migrate.AdvisoryLock{Conn: lockConn, Key: migrate.LockKey(t.Name())}})
	killer := emptydb.Conn(t, cc)
	pid := lockConn.PgConn().PID()
	killed := make(chan struct{})
	time.AfterFunc(500*time.Millisecond, func() {
		killer.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid)
		close(killed)
	})
	defer func() { <-killed }()
	conn := emptydb.Conn(t, cc)
	res, err := m.Up(ctx(t), conn, all)
	var lle *migrate.LockLostError
	if !errors.As(err, &lle) || lle.Path != "db/002_next.sql" {
		t.Fatalf("err = %v, want a LockLostError before db/002_next.sql", err)
	}
	if len(res.FilesExecuted) != 1 {
		t.Fatalf("files executed = %v", res.FilesExecuted)
	}
}

// TestDiscardAllRetakesTheDefaultLock: DISCARD ALL in a no-transaction
// file releases an advisory lock taken on the migrated connection itself
// (the Migrator's default); the run takes it again before going on.
func TestDiscardAllRetakesTheDefaultLock(t *testing.T) {
	t.Parallel()
	conn := emptydb.Conn(t, emptydb.New(t))
	logs := &syncBuffer{}
	set := load(t, map[string]string{"001_a.sql": "-- dbinit:no-transaction\nCREATE TABLE a (id int);\nDISCARD ALL;\nCREATE TABLE b (id int);"})
	if _, err := mustNew(t, set, migrate.Options{Logger: newLogger(logs)}).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "took it again") {
		t.Fatalf("the released lock was not noticed:\n%s", logs)
	}
}

// TestLongIndexNameRebuiltWhenInvalid: an index name longer than 63 bytes
// is the name PostgreSQL cut it to; an INVALID one is still found.
func TestLongIndexNameRebuiltWhenInvalid(t *testing.T) {
	t.Parallel()
	cc := emptydb.New(t)
	emptydb.Exec(t, cc, "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (1)")
	conn := emptydb.Conn(t, cc)
	long := strings.Repeat("index_", 12) // 72 bytes
	file := "-- dbinit:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS " + long + " ON t (a);\n"
	if _, err := newMigrator(t, load(t, map[string]string{"001_ix.sql": file})).Up(ctx(t), conn, all); err == nil {
		t.Fatal("the unique index was built over duplicates")
	}
	emptydb.Exec(t, cc, "DELETE FROM t WHERE ctid <> (SELECT min(ctid) FROM t)")
	if _, err := newMigrator(t, load(t, map[string]string{"001_ix.sql": file})).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM pg_index WHERE indrelid = 't'::regclass AND NOT indisvalid`); n != 0 {
		t.Fatal("recorded applied over an INVALID index")
	}
}

// TestResumeReplaysSessionSettings: resuming a no-transaction file after
// its SET search_path runs the resumed statement where the file meant it.
func TestResumeReplaysSessionSettings(t *testing.T) {
	t.Parallel()
	cc := emptydb.New(t)
	emptydb.Exec(t, cc, "CREATE SCHEMA app; CREATE TABLE app.t (a int); INSERT INTO app.t VALUES (1), (1); CREATE TABLE public.t (a int)")
	conn := emptydb.Conn(t, cc)
	file := "-- dbinit:no-transaction\nSET search_path = app;\nCREATE UNIQUE INDEX CONCURRENTLY t_a ON t (a);\n"
	if _, err := newMigrator(t, load(t, map[string]string{"001_ix.sql": file})).Up(ctx(t), conn, all); err == nil {
		t.Fatal("the unique index was built over duplicates")
	}
	emptydb.Exec(t, cc, "DELETE FROM app.t WHERE ctid <> (SELECT min(ctid) FROM app.t)")
	conn = emptydb.Conn(t, cc)
	if _, err := newMigrator(t, load(t, map[string]string{"001_ix.sql": file})).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	got := scalar[string](t, conn, `SELECT string_agg(indexrelid::regclass::text || ':' || indisvalid, ',') FROM pg_index WHERE indrelid IN ('app.t'::regclass, 'public.t'::regclass)`)
	if got != "app.t_a:true" {
		t.Fatalf("indexes = %s, want only app.t_a, valid", got)
	}
}
