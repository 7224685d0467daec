package migrate_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/migrate"
)

// TestSessionLevelStatements: whatever a migration does to its session
// (DISCARD ALL, DEALLOCATE ALL, a read-only default, tiny timeouts, another
// search_path or role), dbinit still records every file, completes the
// run, and the next file starts clean.
func TestSessionLevelStatements(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, stmt string }{
		{"discard all", "DISCARD ALL;"},
		{"deallocate all", "DEALLOCATE ALL;"},
		{"read only by default", "SET default_transaction_read_only = on;"},
		{"session read only", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;"},
		{"statement timeout", "SET statement_timeout = '1ms';"},
		{"lock timeout", "SET lock_timeout = '1ms';"},
		{"idle in transaction timeout", "SET idle_in_transaction_session_timeout = '1ms';"},
		{"empty search path", "SELECT pg_catalog.set_config('search_path', '', false);"},
		{"client encoding", "SET client_encoding = 'LATIN1';"},
		{"replication role", "SET session_replication_role = replica;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, noTx := range []bool{true, false} {
				if !noTx && strings.HasPrefix(tc.stmt, "DISCARD") {
					continue // cannot run in a transaction: refused when the file is loaded
				}
				head := ""
				if noTx {
					head = "-- dbinit:no-transaction\n"
				}
				set := load(t, map[string]string{
					"001_a.sql": head + "CREATE TABLE a (id int);\n" + tc.stmt + "\nSELECT 1;\n",
					"002_b.sql": head + "CREATE TABLE b (id int);\nSELECT 2;\n",
					"003_c.sql": "CREATE TABLE c AS SELECT current_setting('default_transaction_read_only') AS ro, current_setting('statement_timeout') AS st;",
				})
				conn := emptydb.Conn(t, emptydb.New(t))
				m := newMigrator(t, set)
				if _, err := m.Up(ctx(t), conn, all); err != nil {
					t.Fatalf("no-transaction=%v: %v", noTx, err)
				}
				// A second run sees everything applied: the history was written.
				res, err := m.Up(ctx(t), conn, all)
				if err != nil || len(res.FilesExecuted) != 0 {
					t.Fatalf("no-transaction=%v: second run %+v, %v", noTx, res, err)
				}
				if got := scalar[string](t, conn, `SELECT string_agg(state, ',' ORDER BY version) FROM dbinit.schema_migrations`); got != "applied,applied,applied" {
					t.Fatalf("no-transaction=%v: history = %s", noTx, got)
				}
				if got := scalar[string](t, conn, `SELECT ro || ' ' || st FROM public.c`); got != "off 0" {
					t.Fatalf("no-transaction=%v: 003 ran with %q from 001's session", noTx, got)
				}
				applied, err := migrate.ReadHistory(ctx(t), conn)
				if err != nil || len(applied) != 3 {
					t.Fatalf("history: %v %v", applied, err)
				}
			}
		})
	}
}

// TestConnectionLost: the server ending the session mid-file is a
// *ConnectionLostError naming the file, not a failed migration; the file is
// not recorded and the next run applies it.
func TestConnectionLost(t *testing.T) {
	t.Parallel()
	for _, noTx := range []bool{false, true} {
		cc := emptydb.New(t)
		conn := emptydb.Conn(t, cc)
		head := ""
		if noTx {
			head = "-- dbinit:no-transaction\n"
		}
		files := map[string]string{
			"001_a.sql": "CREATE TABLE a (id int);",
			"002_b.sql": head + "CREATE TABLE b (id int);\nSELECT pg_sleep(30);\nCREATE TABLE c (id int);",
		}
		killer := emptydb.Conn(t, cc)
		pid := conn.PgConn().PID()
		go func() {
			for range 400 {
				var n int
				if err := killer.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%pg_sleep(30)%'`, pid).Scan(&n); err != nil || n > 0 {
					break
				}
				time.Sleep(25 * time.Millisecond)
			}
			_, _ = killer.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid)
		}()
		_, err := newMigrator(t, load(t, files)).Up(ctx(t), conn, all)
		var lost *migrate.ConnectionLostError
		var se *migrate.SQLError
		if !errors.As(err, &lost) || errors.As(err, &se) || lost.Path != "db/002_b.sql" || lost.NoTransaction != noTx {
			t.Fatalf("no-transaction=%v: err = %v, want a ConnectionLostError for db/002_b.sql", noTx, err)
		}
		conn = emptydb.Conn(t, cc)
		want := "1:applied"
		if noTx {
			want = "1:applied,2:partial"
		}
		if got := scalar[string](t, conn, `SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM dbinit.schema_migrations`); got != want {
			t.Fatalf("no-transaction=%v: history = %s, want %s", noTx, got, want)
		}
	}
}
