package dbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/internal/emptydb"
)

// TestParallelDatabasesAreIsolated: 32 parallel tests each get a database of
// their own, with the schema, and see none of the others' rows.
func TestParallelDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	names := map[string]bool{}
	for i := range 32 {
		t.Run(fmt.Sprintf("db%02d", i), func(t *testing.T) {
			t.Parallel()
			pool := New(t)
			ctx := context.Background()
			if _, err := pool.Exec(ctx, `INSERT INTO graph.nodes (kind, name, slug) VALUES ('person', $1, $1)`, t.Name()); err != nil {
				t.Fatal(err)
			}
			var n int
			var db string
			if err := pool.QueryRow(ctx, `SELECT count(*), current_database() FROM graph.nodes`).Scan(&n, &db); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("%d rows: databases are shared", n)
			}
			if !strings.HasPrefix(db, "dbt_") || !strings.Contains(db, fmt.Sprintf("db%02d", i)) {
				t.Fatalf("name %q is not recognisable", db)
			}
			mu.Lock()
			names[db] = true
			mu.Unlock()
		})
	}
	t.Cleanup(func() {
		if len(names) != 32 {
			t.Errorf("%d distinct databases for 32 tests", len(names))
		}
		// Every database was dropped by its test's cleanup.
		conn := emptydb.Conn(t, emptydb.Server(t))
		for name := range names {
			var exists bool
			if err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil || exists {
				t.Errorf("%s still exists after its test (%v)", name, err)
			}
		}
	})
}

// recorder is a TB that records instead of stopping, to test failure paths.
type recorder struct {
	name     string
	failed   bool
	logs     []string
	fatal    string
	cleanups []func()
}

func (r *recorder) Helper()                  {}
func (r *recorder) Name() string             { return r.name }
func (r *recorder) Cleanup(f func())         { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Failed() bool             { return r.failed }
func (r *recorder) Logf(f string, a ...any)  { r.logs = append(r.logs, fmt.Sprintf(f, a...)) }
func (r *recorder) Skipf(f string, a ...any) { panic("skip: " + fmt.Sprintf(f, a...)) }
func (r *recorder) Fatalf(f string, a ...any) {
	r.fatal = fmt.Sprintf(f, a...)
	r.failed = true
	panic(r)
}
func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// call runs f with r, catching the panic its Fatalf raises.
func (r *recorder) call(f func()) {
	defer func() {
		if v := recover(); v != nil && v != r {
			panic(v)
		}
	}()
	f()
}

func TestFailedTestKeepsItsDatabase(t *testing.T) {
	t.Parallel()
	r := &recorder{name: "TestKeep/sub"}
	var url string
	r.call(func() { url = URL(r) })
	r.failed = true
	r.runCleanups()
	if len(r.logs) != 1 || !strings.Contains(r.logs[0], "kept the database") {
		t.Fatalf("logs = %v", r.logs)
	}
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.logs[0], cc.Password) {
		t.Fatalf("password in the log line: %s", r.logs[0])
	}
	conn := emptydb.Conn(t, emptydb.Server(t))
	var exists bool
	_ = conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, cc.Database).Scan(&exists)
	if !exists {
		t.Fatal("the failed test's database was dropped")
	}
	emptydb.Drop(t, emptydb.Server(t), cc.Database)

	// KeepOnFailure(false) drops it anyway.
	r = &recorder{name: "TestNoKeep"}
	r.call(func() { url = URL(r, KeepOnFailure(false)) })
	r.failed = true
	r.runCleanups()
	cc, _ = pgx.ParseConfig(url)
	_ = conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, cc.Database).Scan(&exists)
	if exists {
		t.Fatal("KeepOnFailure(false) kept the database")
	}
}

// TestChangedFileRebuildsOnce: a new folder content gets its own template,
// built once even when many tests ask at the same time; a broken file fails
// with its place.
func TestChangedFileRebuildsOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "001_a.sql"), []byte("CREATE TABLE a (id int);"), 0o644)
	res := Migration(&recorder{name: "x"}, Dir(dir))
	if !res.Success || len(res.FilesExecuted) != 1 {
		t.Fatalf("result = %+v", res)
	}
	// A second process would reuse the template and read the result from
	// its history: simulate with a fresh cache entry.
	templates.Lock()
	abs, _ := filepath.Abs(dir)
	delete(templates.byKey, "dir:"+abs)
	templates.Unlock()
	res2 := Migration(&recorder{name: "y"}, Dir(dir))
	if !res2.Success || len(res2.FilesExecuted) != 1 || res2.FilesExecuted[0] != res.FilesExecuted[0] {
		t.Fatalf("result from history = %+v", res2)
	}

	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "001_a.sql"), []byte("CREATE TABLE a (id int);\nCREATE TABLE a (id int);"), 0o644)
	res3 := Migration(&recorder{name: "z"}, Dir(bad))
	if res3.Success || len(res3.Errors) == 0 || !strings.Contains(res3.Errors[0].Error(), "001_a.sql:2:1") {
		t.Fatalf("broken set: %+v", res3)
	}
	r := &recorder{name: "w"}
	r.call(func() { New(r, Dir(bad)) })
	if !strings.Contains(r.fatal, "001_a.sql:2:1: ERROR 42P07") {
		t.Fatalf("New on a broken set: %q", r.fatal)
	}
}

func TestSweepRemovesOldDatabases(t *testing.T) {
	t.Parallel()
	srv := emptydb.Server(t)
	old := "dbt_" + strconv.FormatInt(time.Now().Add(-2*time.Hour).Unix(), 36) + "_killed_run_abcdef"
	young := "dbt_" + strconv.FormatInt(time.Now().Unix(), 36) + "_still_running_abcdef"
	emptydb.Exec(t, srv, "CREATE DATABASE "+old)
	emptydb.Exec(t, srv, "CREATE DATABASE "+young)
	t.Cleanup(func() { emptydb.Drop(t, srv, young); emptydb.Drop(t, srv, old) })
	tp := templateFor(t, collect(nil))
	if tp.err != nil {
		t.Fatal(tp.err)
	}
	ctx := context.Background()
	if err := tp.withConn(ctx, func(p *provision.Provisioner) error { return sweep(ctx, p, tp.name) }); err != nil {
		t.Fatal(err)
	}
	conn := emptydb.Conn(t, srv)
	var n int
	_ = conn.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname IN ($1, $2)`, old, young).Scan(&n)
	var youngExists bool
	_ = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, young).Scan(&youngExists)
	if n != 1 || !youngExists {
		t.Fatalf("after the sweep %d of the two remain (young kept: %v)", n, youngExists)
	}
}
