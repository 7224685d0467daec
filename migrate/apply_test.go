package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/migrate"
)

func load(t *testing.T, files map[string]string) *migrate.Set {
	t.Helper()
	m := fstest.MapFS{}
	for name, text := range files {
		m[name] = &fstest.MapFile{Data: []byte(text)}
	}
	set, err := migrate.Load(m, "db")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// newMigrator uses the default lock, on the migrated connection: advisory
// locks belong to one database, so parallel tests never wait for each other.
func newMigrator(t *testing.T, set *migrate.Set) *migrate.Migrator {
	return mustNew(t, set, migrate.Options{LockTimeout: 30 * time.Second, Version: "test", Runner: t.Name()})
}

func mustNew(t *testing.T, set *migrate.Set, opts migrate.Options) *migrate.Migrator {
	t.Helper()
	m, err := migrate.New(set, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var all = migrate.UpOptions{}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func scalar[T any](t *testing.T, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// TestUpExampleFolder: the project's own db/ (the user's schema, whatever
// it holds) applies on an empty database, a second run does nothing, and
// its down files reverse it: reverting as far as down files reach leaves
// the schema exactly as it was at that version.
func TestUpExampleFolder(t *testing.T) {
	t.Parallel()
	set, err := migrate.LoadDir("../db")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Migrations) == 0 {
		t.Skip("db/ holds no migrations")
	}
	// What is written: up to the first file `dbinit new` wrote and nobody
	// has filled in yet (dbinit validate reports those).
	top, files := set.Latest(), len(set.Migrations)
	for i, m := range set.Migrations {
		if m.Up.Todo {
			t.Logf("%s is not written yet (-- dbinit:todo): checking the files before it", m.Up.Path)
			top, files = m.Version-1, i
			break
		}
	}
	// Down files reach down to the newest version without one (a file
	// that cannot be reversed, or a down file still to be written).
	var floor int64
	for _, m := range set.Migrations[:files] {
		if m.Down == nil && len(m.Up.Statements) > 0 || m.Down != nil && m.Down.Todo {
			floor = m.Version
		}
	}
	upTo := func(v int64) migrate.UpOptions { return migrate.UpOptions{To: max(v, 1)} }
	conn := emptydb.Conn(t, emptydb.New(t))
	m := newMigrator(t, set)
	if floor > 0 {
		if _, err := m.Up(ctx(t), conn, upTo(floor)); err != nil {
			t.Fatal(err)
		}
	}
	if files == 0 {
		t.Skip("nothing written in db/ yet")
	}
	// One file at a time, noting the schema after each.
	schema := map[int64][]string{floor: userObjects(t, conn)}
	var versions []int64
	for _, mig := range set.Migrations[:files] {
		if mig.Version <= floor {
			continue
		}
		if _, err := m.Up(ctx(t), conn, upTo(mig.Version)); err != nil {
			t.Fatal(err)
		}
		schema[mig.Version] = userObjects(t, conn)
		versions = append(versions, mig.Version)
	}
	if got := scalar[int64](t, conn, `SELECT count(*) FROM dbinit.schema_migrations WHERE state = 'applied'`); got != int64(files) {
		t.Fatalf("history rows = %d, want %d", got, files)
	}
	if err := migrate.Verify(ctx(t), conn, set, top); err != nil {
		t.Fatal(err)
	}

	// A second run has nothing to do.
	res, err := m.Up(ctx(t), conn, upTo(top))
	if err != nil || len(res.FilesExecuted) != 0 {
		t.Fatalf("second run: %v %+v", err, res)
	}

	// Each down file puts the schema back as it was before its up file.
	for i := len(versions) - 1; i >= 0; i-- {
		prev := floor
		if i > 0 {
			prev = versions[i-1]
		}
		if _, err := m.Down(ctx(t), conn, migrate.DownOptions{Steps: 1}); err != nil {
			t.Fatal(err)
		}
		if got := userObjects(t, conn); !slices.Equal(got, schema[prev]) {
			t.Fatalf("reverting version %d left the schema unlike version %d's:\nmissing: %v\nleft over: %v",
				versions[i], prev, minus(schema[prev], got), minus(got, schema[prev]))
		}
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM dbinit.schema_migrations WHERE version > $1`, floor); n != 0 {
		t.Fatalf("%d history rows above %d left after down", n, floor)
	}
}

// userObjects lists the database's own objects outside the system schemas
// and dbinit's: schemas, relations with their columns, functions, types,
// constraints, triggers, policies and extensions.
func userObjects(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `
WITH ns AS (
  SELECT oid, nspname FROM pg_namespace
  WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'dbinit') AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp%')
SELECT 'schema ' || nspname FROM ns
UNION ALL SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
UNION ALL SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL SELECT 'function ' || p.oid::regprocedure FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
UNION ALL SELECT 'type ' || t.oid::regtype FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
UNION ALL SELECT 'constraint ' || co.conname || ' on ' || co.conrelid::regclass FROM pg_constraint co JOIN ns ON ns.oid = co.connamespace
UNION ALL SELECT 'trigger ' || tg.tgname || ' on ' || tg.tgrelid::regclass FROM pg_trigger tg WHERE NOT tg.tgisinternal
UNION ALL SELECT 'policy ' || po.polname || ' on ' || po.polrelid::regclass FROM pg_policy po
UNION ALL SELECT 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql'
ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func TestUpNothingPendingTakesNoLock(t *testing.T) {
	t.Parallel()
	set := load(t, map[string]string{"001_a.sql": "CREATE TABLE a (id int);"})
	cc := emptydb.New(t)
	conn := emptydb.Conn(t, cc)
	key := migrate.LockKey(t.Name())
	opts := migrate.Options{Locker: &migrate.AdvisoryLock{Conn: conn, Key: key, Timeout: time.Second}}
	if _, err := mustNew(t, set, opts).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	// Another session holds the lock; a run with nothing to do must not wait for it.
	holder := emptydb.Conn(t, cc)
	if _, err := holder.Exec(context.Background(), `SELECT pg_advisory_lock($1)`, key); err != nil {
		t.Fatal(err)
	}
	opts.Locker = &migrate.AdvisoryLock{Conn: conn, Key: key, Timeout: 200 * time.Millisecond}
	if _, err := mustNew(t, set, opts).Up(ctx(t), conn, all); err != nil {
		t.Fatalf("no-op run waited for the lock: %v", err)
	}
	// With work to do it waits, then gives up with a LockTimeoutError naming the holder.
	set2 := load(t, map[string]string{"001_a.sql": "CREATE TABLE a (id int);", "002_b.sql": "CREATE TABLE b (id int);"})
	_, err := mustNew(t, set2, opts).Up(ctx(t), conn, all)
	var lt *migrate.LockTimeoutError
	if !errors.As(err, &lt) || !strings.Contains(lt.Holder, "pid") {
		t.Fatalf("err = %v, want LockTimeoutError with the holder", err)
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM pg_tables WHERE tablename = 'b'`); n != 0 {
		t.Fatal("002 ran without the lock")
	}
}

// TestErrorLocations checks FILE:LINE:COL for errors the server places
// (syntax), errors it does not (run time), and statement-by-statement files.
func TestErrorLocations(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("SELECT 1;\n", 499) + "SELECT * FROM no_such_table;\n"
	// Over a megabyte: BEGIN goes in a round trip of its own (bigFile).
	huge := "\uFEFF-- ünï\n" + strings.Repeat("SELECT 1;\n", 110_000) + "SELECT * FROM no_such_table;\n"
	tests := []struct {
		name      string
		file      string
		line, col int
		stmt      int
		want      []string
	}{
		{"line 1", "SELEC 1;", 1, 1, 1, []string{"db/001_x.sql:1:1: ERROR 42601", `syntax error at or near "SELEC"`, "    1 | SELEC 1;", "      | ^"}},
		{"deep in a long file", long, 500, 15, 500, []string{"db/001_x.sql:500:15: ERROR 42P01", `relation "no_such_table" does not exist`}},
		{"deep in a file over a megabyte", huge, 110_002, 15, 110_001, []string{"db/001_x.sql:110002:15: ERROR 42P01", "110002 | SELECT * FROM no_such_table;"}},
		{"after multi-byte characters", "-- ünïcödé ✓\nSELECT 'ä✓', 'é' AS \"naïve\", nope;", 2, 30, 1, []string{"db/001_x.sql:2:30: ERROR 42703", `column "nope" does not exist`}},
		{"third statement of a no-transaction file", "-- dbinit:no-transaction\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n  SELECT 'ü', missing FROM a;\n", 4, 15, 3, []string{"db/001_x.sql:4:15: ERROR 42703"}},
		{"runtime error has no position", "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n\n   INSERT INTO a VALUES (1 / 0);", 4, 4, 3, []string{"db/001_x.sql:4:4: ERROR 22012", "division by zero"}},
		{"raise in a DO block", "SELECT 1;\nDO $$\nBEGIN\n  RAISE EXCEPTION 'validation failed: % rows', 3 USING HINT = 'fix the data';\nEND\n$$;", 4, 3, 2, []string{"db/001_x.sql:4:3: ERROR P0001", "ERROR P0001: validation failed: 3 rows", "HINT: fix the data", "CONTEXT: PL/pgSQL function inline_code_block line 3 at RAISE"}},
		{"query inside a DO block", "SELECT 1;\nDO $$\nDECLARE n int;\nBEGIN\n  PERFORM 1;\n  SELECT count(*)\n    INTO n\n    FROM pg_clas;\nEND $$;", 8, 10, 2, []string{"db/001_x.sql:8:10: ERROR 42P01", `relation "pg_clas" does not exist`, "    8 |     FROM pg_clas;"}},
		{"assignment inside a DO block", "DO $$\nDECLARE n int;\nBEGIN\n  n := (SELECT count(*) FROM nosuch);\nEND $$;", 4, 30, 1, []string{"db/001_x.sql:4:30: ERROR 42P01"}},
		{"EXECUTE inside a DO block", "DO $$\nBEGIN\n  EXECUTE 'SELECT * FROM nosuch2';\nEND $$;", 3, 26, 1, []string{"db/001_x.sql:3:26: ERROR 42P01"}},
		{"plpgsql compile error", "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  x := 1;\n  RETURN 1;\nEND $$;", 3, 3, 1, []string{"db/001_x.sql:3:3: ERROR 42601", `"x" is not a known variable`}},
		{"tab before the column", "SELECT\t\tnope;", 1, 9, 1, []string{"    1 | SELECT\t\tnope;\n      |       \t\t^"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			set := load(t, map[string]string{"001_x.sql": tt.file})
			conn := emptydb.Conn(t, emptydb.New(t))
			res, err := newMigrator(t, set).Up(ctx(t), conn, all)
			var se *migrate.SQLError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *SQLError", err)
			}
			if se.Line != tt.line || se.Col != tt.col || se.Statement != tt.stmt {
				t.Errorf("place = %d:%d statement %d, want %d:%d statement %d\n%s", se.Line, se.Col, se.Statement, tt.line, tt.col, tt.stmt, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%s", w, err)
				}
			}
			if len(res.FilesExecuted) != 0 || len(res.Files) != 1 || !errors.Is(res.Files[0].Err, se.Err) {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

// TestLargeFile: a file over a megabyte (sent without BEGIN in front) is
// applied in its transaction with its history row, and the settings it
// leaves behind, even a tiny idle-in-transaction timeout, reach neither
// the history row nor the next file.
func TestLargeFile(t *testing.T) {
	t.Parallel()
	var big strings.Builder
	big.WriteString("\uFEFFCREATE TABLE big (id int, pad text);\n")
	for i := 0; big.Len() < 3<<19; i++ {
		fmt.Fprintf(&big, "INSERT INTO big VALUES (%d, '%s');\n", i, strings.Repeat("x", 80))
	}
	big.WriteString("SET idle_in_transaction_session_timeout = 1;\nSET statement_timeout = 1;\n-- the end, without a newline")
	set := load(t, map[string]string{"001_big.sql": big.String(), "002_after.sql": "SELECT pg_sleep(0.05);\nCREATE TABLE after (id int);"})
	conn := emptydb.Conn(t, emptydb.New(t))
	res, err := newMigrator(t, set).Up(ctx(t), conn, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.FilesExecuted) != 2 {
		t.Fatalf("FilesExecuted = %v", res.FilesExecuted)
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM big`); n < 10_000 {
		t.Fatalf("%d rows", n)
	}
	if v := scalar[int64](t, conn, `SELECT max(version) FROM dbinit.schema_migrations`); v != 2 {
		t.Fatalf("history up to %d", v)
	}
}

func TestFailedFileLeavesNothing(t *testing.T) {
	t.Parallel()
	set := load(t, map[string]string{
		"001_ok.sql":    "CREATE TABLE ok (id int);",
		"002_bad.sql":   "CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\nSELECT nope;",
		"003_later.sql": "CREATE TABLE later (id int);",
	})
	conn := emptydb.Conn(t, emptydb.New(t))
	res, err := newMigrator(t, set).Up(ctx(t), conn, all)
	if err == nil {
		t.Fatal("want an error")
	}
	if len(res.FilesExecuted) != 1 || res.FilesExecuted[0] != "db/001_ok.sql" {
		t.Fatalf("FilesExecuted = %v", res.FilesExecuted)
	}
	tables := scalar[string](t, conn, `SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'`)
	if tables != "ok" {
		t.Fatalf("tables = %s; the failed file must leave nothing and later files must not run", tables)
	}
	if v := scalar[int64](t, conn, `SELECT max(version) FROM dbinit.schema_migrations`); v != 1 {
		t.Fatalf("history up to %d", v)
	}
}

func TestNoTransactionResume(t *testing.T) {
	t.Parallel()
	file := "-- dbinit:no-transaction\nCREATE TABLE t (a int, b int);\nINSERT INTO t VALUES (1, 1);\nCREATE INDEX CONCURRENTLY t_c ON t (c);\nCREATE INDEX CONCURRENTLY t_b ON t (b);\n"
	conn := emptydb.Conn(t, emptydb.New(t))
	_, err := newMigrator(t, load(t, map[string]string{"001_ix.sql": file})).Up(ctx(t), conn, all)
	var se *migrate.SQLError
	if !errors.As(err, &se) || se.Line != 4 || se.Statement != 3 {
		t.Fatalf("err = %v", err)
	}
	st := scalar[string](t, conn, `SELECT state || ' ' || statements_done FROM dbinit.schema_migrations WHERE version = 1`)
	if st != "partial 2" {
		t.Fatalf("history = %q, want partial 2", st)
	}
	// Fix the failing statement; statements 1 and 2 must not run again (the
	// INSERT would duplicate the row).
	fixed := strings.Replace(file, "(c)", "(a)", 1)
	fixedSet := load(t, map[string]string{"001_ix.sql": fixed})
	m := newMigrator(t, fixedSet)
	applied, err := migrate.ReadHistory(ctx(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := migrate.PlanUp(fixedSet, applied, all)
	if err != nil || len(plan.Steps) != 1 || plan.Steps[0].ResumeAt != 2 {
		t.Fatalf("plan: %v %+v", err, plan)
	}
	res, err := m.Up(ctx(t), conn, all)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files[0].Statements != 2 || res.Files[0].ResumedAt != 2 {
		t.Fatalf("file result = %+v", res.Files[0])
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM t`); n != 1 {
		t.Fatalf("rows = %d: resumed run re-ran earlier statements", n)
	}
	st = scalar[string](t, conn, `SELECT state || ' ' || statements_done || ' ' || (prefix_checksum IS NULL) FROM dbinit.schema_migrations WHERE version = 1`)
	if st != "applied 4 true" {
		t.Fatalf("history = %q", st)
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM pg_indexes WHERE tablename = 't'`); n != 2 {
		t.Fatalf("indexes = %d", n)
	}
}

func TestDriftStopsEverything(t *testing.T) {
	t.Parallel()
	conn := emptydb.Conn(t, emptydb.New(t))
	v1 := map[string]string{"001_a.sql": "CREATE TABLE a (id int);"}
	if _, err := newMigrator(t, load(t, v1)).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	v2 := map[string]string{"001_a.sql": "CREATE TABLE a (id bigint);", "002_b.sql": "CREATE TABLE b (id int);"}
	m := newMigrator(t, load(t, v2))
	_, err := m.Up(ctx(t), conn, all)
	var de *migrate.DriftError
	if !errors.As(err, &de) || len(de.Changed) != 1 || !strings.Contains(err.Error(), "dbinit accept 1") {
		t.Fatalf("err = %v", err)
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM pg_tables WHERE tablename = 'b'`); n != 0 {
		t.Fatal("a pending file ran despite drift")
	}
	if err := m.Accept(ctx(t), conn, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx(t), conn, all); err != nil {
		t.Fatalf("after accept: %v", err)
	}
}

func TestDownChecksEveryFileFirst(t *testing.T) {
	t.Parallel()
	set := load(t, map[string]string{
		"001_a.sql": "CREATE TABLE a (id int);", "001_a_down.sql": "DROP TABLE a;",
		"002_b.sql": "CREATE TABLE b (id int);",
		"003_c.sql": "CREATE TABLE c (id int);", "003_c_down.sql": "DROP TABLE c;",
	})
	conn := emptydb.Conn(t, emptydb.New(t))
	m := newMigrator(t, set)
	if _, err := m.Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	_, err := m.Down(ctx(t), conn, migrate.DownOptions{To: 0})
	var pe *migrate.PlanError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want PlanError", err)
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM pg_tables WHERE tablename = 'c'`); n != 1 {
		t.Fatal("003's down ran although 002 has no down file")
	}
	res, err := m.Down(ctx(t), conn, migrate.DownOptions{Steps: 1})
	if err != nil || len(res.FilesExecuted) != 1 || res.FilesExecuted[0] != "db/003_c_down.sql" {
		t.Fatalf("down 1: %v %+v", err, res)
	}
	if v := scalar[int64](t, conn, `SELECT max(version) FROM dbinit.schema_migrations`); v != 2 {
		t.Fatalf("highest = %d", v)
	}
}

func TestBaseline(t *testing.T) {
	t.Parallel()
	set := load(t, map[string]string{
		"001_a.sql": "CREATE TABLE a (id int);",
		"002_b.sql": "CREATE TABLE b (id int);",
		"003_c.sql": "CREATE TABLE c (id int);",
	})
	conn := emptydb.Conn(t, emptydb.New(t))
	// A database built the old way, by loading 001 and 002 with psql.
	if _, err := conn.Exec(context.Background(), "CREATE TABLE a (id int); CREATE TABLE b (id int);"); err != nil {
		t.Fatal(err)
	}
	m := newMigrator(t, set)
	res, err := m.Baseline(ctx(t), conn, migrate.BaselineOptions{Version: 2})
	if err != nil || len(res.FilesExecuted) != 2 {
		t.Fatalf("baseline: %v %+v", err, res)
	}
	res, err = m.Up(ctx(t), conn, all)
	if err != nil || len(res.FilesExecuted) != 1 || res.FilesExecuted[0] != "db/003_c.sql" {
		t.Fatalf("up after baseline: %v %+v", err, res)
	}
	if _, err := m.Baseline(ctx(t), conn, migrate.BaselineOptions{Version: 2}); err == nil {
		t.Fatal("baseline below recorded versions must be refused")
	}
	// A history up to 3 and files 4 and 5: a baseline at 5 would mark 4
	// and 5 applied without running them; only with Force.
	set = load(t, map[string]string{
		"001_a.sql": "CREATE TABLE a (id int);", "002_b.sql": "CREATE TABLE b (id int);", "003_c.sql": "CREATE TABLE c (id int);",
		"004_d.sql": "CREATE TABLE d (id int);", "005_e.sql": "CREATE TABLE e (id int);",
	})
	m = newMigrator(t, set)
	_, err = m.Baseline(ctx(t), conn, migrate.BaselineOptions{Version: 5})
	var pe *migrate.PlanError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "004_d.sql, 005_e.sql") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("err = %v, want a PlanError naming what would be skipped", err)
	}
	if res, err := m.Baseline(ctx(t), conn, migrate.BaselineOptions{Version: 5, Force: true}); err != nil || len(res.FilesExecuted) != 2 {
		t.Fatalf("forced: %+v, %v", res, err)
	}
}

// TestSessionResetBetweenFiles: a file's SET and SET ROLE do not leak into
// the next file or into the history row, as when psql loaded each file.
func TestSessionResetBetweenFiles(t *testing.T) {
	t.Parallel()
	cc := emptydb.New(t)
	role := strings.ToLower("r_" + emptydb.Name(t)[len(emptydb.Name(t))-8:])
	emptydb.Exec(t, cc, "CREATE ROLE "+role)
	t.Cleanup(func() { emptydb.Exec(t, emptydb.Server(t), "DROP ROLE IF EXISTS "+role) })
	set := load(t, map[string]string{
		"001_a.sql": "CREATE SCHEMA other;\nSET search_path = other;\nCREATE TABLE x (id int);\nSET ROLE " + role + ";\nSET statement_timeout = '1ms';",
		"002_b.sql": "CREATE TABLE y AS SELECT current_user::text AS who, current_setting('search_path') AS path, current_setting('statement_timeout') AS st, pg_sleep(0.01)::text AS slept;",
	})
	conn := emptydb.Conn(t, cc)
	if _, err := newMigrator(t, set).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	got := scalar[string](t, conn, `SELECT who || '|' || path || '|' || st FROM public.y`)
	if strings.Contains(got, role) || strings.Contains(got, "other") || strings.Contains(got, "1ms") {
		t.Fatalf("002 ran with 001's session settings: %s", got)
	}
}

// TestConcurrentRunners: ten runners that start at the same instant apply
// every file exactly once; the ones that lose the race wait for the lock
// and then find nothing to do.
func TestConcurrentRunners(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	for i := 1; i <= 20; i++ {
		// Each file takes a little while, so the winner holds the lock long
		// enough for the others to find it taken.
		files[fmt.Sprintf("%03d_t%d.sql", i, i)] = fmt.Sprintf("CREATE TABLE t%d (id int); INSERT INTO counter VALUES (%d); SELECT pg_sleep(0.01);", i, i)
	}
	files["001_t1.sql"] = "CREATE TABLE counter (v int); CREATE TABLE t1 (id int); INSERT INTO counter VALUES (1);"
	set := load(t, files)
	cc := emptydb.New(t)
	const runners = 10
	conns := make([]*pgx.Conn, runners)
	for i := range conns {
		conns[i] = emptydb.Conn(t, cc) // connected before the start, so all start together
	}
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		errs    = make([]error, runners)
		applied = make([]int, runners)
		logs    = make([]*syncBuffer, runners)
	)
	for i := range runners {
		logs[i] = &syncBuffer{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := conns[i]
			log := slog.New(slog.NewTextHandler(logs[i], nil))
			m, err := migrate.New(set, migrate.Options{Locker: &migrate.AdvisoryLock{Conn: conn, Key: migrate.LockKey(t.Name()), Timeout: time.Minute, Logger: log}})
			if err != nil {
				errs[i] = err
				return
			}
			<-start
			res, err := m.Up(ctx(t), conn, all)
			errs[i] = err
			if res != nil {
				applied[i] = len(res.FilesExecuted)
			}
		}()
	}
	close(start)
	wg.Wait()
	total, waited := 0, 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("runner %d: %v", i, err)
		}
		total += applied[i]
		if strings.Contains(logs[i].String(), "waiting for another runner's lock") {
			waited++
		}
	}
	if total != 20 {
		t.Fatalf("files applied across runners = %d, want 20", total)
	}
	if waited == 0 {
		t.Fatal("no runner waited for the lock: the runners did not overlap")
	}
	conn := emptydb.Conn(t, cc)
	if n := scalar[int64](t, conn, `SELECT count(*) FROM counter`); n != 20 {
		t.Fatalf("counter rows = %d: some file ran twice or not at all", n)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and a later reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDeferredConstraintFailsTheFile(t *testing.T) {
	t.Parallel()
	set := load(t, map[string]string{
		"001_a.sql": "CREATE TABLE p (id int PRIMARY KEY);\nCREATE TABLE c (p int REFERENCES p DEFERRABLE INITIALLY DEFERRED);\nINSERT INTO c VALUES (42);",
	})
	conn := emptydb.Conn(t, emptydb.New(t))
	_, err := newMigrator(t, set).Up(ctx(t), conn, all)
	var se *migrate.SQLError
	if !errors.As(err, &se) || se.Err.Code != "23503" || !se.AtCommit || !strings.HasPrefix(err.Error(), "db/001_a.sql: at COMMIT") || !strings.Contains(err.Error(), "ERROR 23503") {
		t.Fatalf("err = %v", err)
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM pg_tables WHERE tablename = 'p'`); n != 0 {
		t.Fatal("the file was half-applied")
	}
}

// TestNoTransactionFileSessionState: a no-transaction file that changes the
// role or turns off synchronous commit still gets its history written as the
// connecting user, durably; the next file starts clean.
func TestNoTransactionFileSessionState(t *testing.T) {
	t.Parallel()
	cc := emptydb.New(t)
	role := "r_" + emptydb.Name(t)[len(emptydb.Name(t))-8:]
	emptydb.Exec(t, cc, "CREATE ROLE "+role)
	t.Cleanup(func() { emptydb.Exec(t, emptydb.Server(t), "DROP ROLE IF EXISTS "+role) })
	set := load(t, map[string]string{
		"001_a.sql": "-- dbinit:no-transaction\nSET synchronous_commit = remote_apply;\nSET ROLE " + role + ";\nSELECT 1;",
		"002_b.sql": "CREATE TABLE b AS SELECT current_user::text AS who, current_setting('synchronous_commit') AS sc;",
	})
	conn := emptydb.Conn(t, cc)
	if _, err := newMigrator(t, set).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	if got := scalar[string](t, conn, `SELECT who || ' ' || sc FROM b`); strings.Contains(got, role) || strings.Contains(got, "remote_apply") {
		t.Fatalf("002 ran with 001's session: %s", got)
	}
	if got := scalar[string](t, conn, `SELECT string_agg(state, ',' ORDER BY version) FROM dbinit.schema_migrations`); got != "applied,applied" {
		t.Fatalf("history = %s", got)
	}
}

// TestFileChangingStringSettings: a file may change standard_conforming_strings
// and client_encoding; its history row is still written.
func TestFileChangingStringSettings(t *testing.T) {
	t.Parallel()
	set := load(t, map[string]string{
		"001_a.sql": "SET standard_conforming_strings = off;\nSET client_encoding = 'LATIN1';\nCREATE TABLE a (id int);",
		"002_b.sql": "CREATE TABLE b (id int);",
	})
	conn := emptydb.Conn(t, emptydb.New(t))
	if _, err := newMigrator(t, set).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	if n := scalar[int64](t, conn, `SELECT count(*) FROM dbinit.schema_migrations`); n != 2 {
		t.Fatalf("history rows = %d", n)
	}
}

// TestPartialWithNothingLeft: deleting the failed tail of a partial file
// completes it on the next run instead of leaving it partial forever.
func TestPartialWithNothingLeft(t *testing.T) {
	t.Parallel()
	conn := emptydb.Conn(t, emptydb.New(t))
	file := "-- dbinit:no-transaction\nCREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY t_a ON t (a);\nCREATE INDEX CONCURRENTLY t_x ON t (nope);\n"
	if _, err := newMigrator(t, load(t, map[string]string{"001_ix.sql": file})).Up(ctx(t), conn, all); err == nil {
		t.Fatal("want an error")
	}
	trimmed := strings.Replace(file, "CREATE INDEX CONCURRENTLY t_x ON t (nope);\n", "", 1)
	set := load(t, map[string]string{"001_ix.sql": trimmed, "002_next.sql": "CREATE TABLE n (id int);"})
	if _, err := newMigrator(t, set).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	if got := scalar[string](t, conn, `SELECT string_agg(state || ':' || statements_done, ',' ORDER BY version) FROM dbinit.schema_migrations`); got != "applied:2,applied:1" {
		t.Fatalf("history = %s", got)
	}
	applied, err := migrate.ReadHistory(ctx(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	if st := migrate.Status(set, applied); st[0].State != migrate.StateApplied {
		t.Fatalf("status = %+v", st)
	}
}

// TestErrorStatementNumbers: a syntax error names its own statement even
// though the server parsed the whole file first; an error raised in a
// function called from a DO block is placed on the DO block's line.
func TestErrorStatementNumbers(t *testing.T) {
	t.Parallel()
	set := load(t, map[string]string{"001_a.sql": "SELECT 1;\nSELECT 2;\nSELEC 3;\n"})
	conn := emptydb.Conn(t, emptydb.New(t))
	_, err := newMigrator(t, set).Up(ctx(t), conn, all)
	var se *migrate.SQLError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *SQLError", err)
	}
	if se.Statement != 3 || se.Line != 3 {
		t.Fatalf("err = %v (statement %d, line %d), want statement 3 on line 3", err, se.Statement, se.Line)
	}
	set = load(t, map[string]string{"001_a.sql": "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$;\nDO $$\nBEGIN\n  PERFORM 1;\n  PERFORM f();\nEND $$;"})
	conn = emptydb.Conn(t, emptydb.New(t))
	_, err = newMigrator(t, set).Up(ctx(t), conn, all)
	if !errors.As(err, &se) || se.Line != 5 || se.Col != 3 {
		t.Fatalf("err = %v", err)
	}
}

// TestEnumValueAcrossFiles: a file may use what the file before it
// committed (an enum value): up commits each file on its own. The template
// build, which runs up on a side database, is tested the same way in
// internal/provision.
func TestEnumValueAcrossFiles(t *testing.T) {
	t.Parallel()
	set := load(t, map[string]string{
		"001_type.sql":  "CREATE TYPE status AS ENUM ('new');",
		"002_value.sql": "ALTER TYPE status ADD VALUE 'done';",
		"003_use.sql":   "CREATE TABLE s (v status DEFAULT 'done');\nINSERT INTO s VALUES ('done');",
	})
	conn := emptydb.Conn(t, emptydb.New(t))
	if _, err := newMigrator(t, set).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
}
