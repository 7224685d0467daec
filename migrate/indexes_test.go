package migrate_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/migrate"
)

// cancellingConn connects as dbinit does: a cancelled context cancels the
// running statement on the server, not just the socket.
func cancellingConn(t *testing.T, cc *pgx.ConnConfig) *pgx.Conn {
	t.Helper()
	conn, err := dbconn.Connect(ctx(t), cc, dbconn.Options{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// interruptIndexBuild runs file, whose CREATE INDEX CONCURRENTLY waits for
// a transaction that holds an old snapshot, and cancels it while it waits:
// the index is left INVALID, as after a SIGTERM.
func interruptIndexBuild(t *testing.T, cc *pgx.ConnConfig, conn *pgx.Conn, file string) {
	t.Helper()
	holder := emptydb.Conn(t, cc)
	if _, err := holder.Exec(context.Background(), "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t"); err != nil {
		t.Fatal(err)
	}
	watcher := emptydb.Conn(t, cc)
	c, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the index build waits for the holder.
		defer cancel()
		for range 400 {
			var waiting bool
			err := watcher.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
WHERE datname = current_database() AND query LIKE '%CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock')`).Scan(&waiting)
			if err != nil || waiting {
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
	}()
	_, err := newMigrator(t, load(t, map[string]string{"001_ix.sql": file})).Up(c, conn, all)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the run cancelled", err)
	}
	if _, err := holder.Exec(context.Background(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
}

// TestInterruptedConcurrentIndexIsRebuilt: an index build interrupted
// mid-way leaves an INVALID index; the next run drops it and builds it
// again, although the statement says IF NOT EXISTS.
func TestInterruptedConcurrentIndexIsRebuilt(t *testing.T) {
	t.Parallel()
	cc := emptydb.New(t)
	conn := cancellingConn(t, cc)
	if _, err := conn.Exec(context.Background(), "CREATE TABLE t (a int, b int); INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g"); err != nil {
		t.Fatal(err)
	}
	file := "-- dbinit:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a);\n"
	interruptIndexBuild(t, cc, conn, file)
	if valid := scalar[bool](t, conn, `SELECT indisvalid FROM pg_index WHERE indexrelid = 't_a'::regclass`); valid {
		t.Fatal("the interrupted build left a valid index; the test did not interrupt it")
	}
	res, err := newMigrator(t, load(t, map[string]string{"001_ix.sql": file})).Up(ctx(t), conn, all)
	if err != nil || len(res.FilesExecuted) != 1 {
		t.Fatalf("rerun: %+v, %v", res, err)
	}
	if valid := scalar[bool](t, conn, `SELECT indisvalid FROM pg_index WHERE indexrelid = 't_a'::regclass`); !valid {
		t.Fatal("the file was recorded applied over an INVALID index")
	}
}

// TestInterruptedUnnamedIndexStops: an unnamed index cannot be told from a
// new one: the rerun stops, names the INVALID index, and does not record
// the file.
func TestInterruptedUnnamedIndexStops(t *testing.T) {
	t.Parallel()
	cc := emptydb.New(t)
	conn := cancellingConn(t, cc)
	if _, err := conn.Exec(context.Background(), "CREATE TABLE t (a int, b int); INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g"); err != nil {
		t.Fatal(err)
	}
	file := "-- dbinit:no-transaction\nSELECT 1;\nCREATE INDEX CONCURRENTLY ON t (b);\n"
	interruptIndexBuild(t, cc, conn, file)
	_, err := newMigrator(t, load(t, map[string]string{"001_ix.sql": file})).Up(ctx(t), conn, all)
	var ie *migrate.InvalidIndexError
	if !errors.As(err, &ie) || ie.Line != 3 || !strings.Contains(err.Error(), "public.t_b_idx") {
		t.Fatalf("err = %v, want an InvalidIndexError naming public.t_b_idx at line 3", err)
	}
	if st := scalar[string](t, conn, `SELECT state FROM dbinit.schema_migrations WHERE version = 1`); st != "partial" {
		t.Fatalf("history = %s, want partial", st)
	}
}
