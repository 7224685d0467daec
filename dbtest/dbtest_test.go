package dbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/emptydb"
)

// TestParallelDatabasesAreIsolated: 32 parallel tests each get a database of
// their own, with the schema, and see none of the others' rows.
func TestParallelDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	emptydb.Server(t) // skips under -short
	var mu sync.Mutex
	names := map[string]bool{}
	for i := range 32 {
		t.Run(fmt.Sprintf("db%02d", i), func(t *testing.T) {
			t.Parallel()
			pool := New(t, Dir("testdata/db"))
			ctx := context.Background()
			if _, err := pool.Exec(ctx, `INSERT INTO app.accounts (email, name) VALUES ($1, $1)`, t.Name()); err != nil {
				t.Fatal(err)
			}
			var n int
			var db string
			if err := pool.QueryRow(ctx, `SELECT count(*), current_database() FROM app.accounts`).Scan(&n, &db); err != nil {
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
			if databaseExists(t, conn, name) {
				t.Errorf("%s still exists after its test", name)
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

func databaseExists(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var exists bool
	if err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

func TestFailedTestKeepsItsDatabase(t *testing.T) {
	t.Parallel()
	emptydb.Server(t) // skips under -short; the recorder below cannot
	r := &recorder{name: "TestKeep/sub"}
	var url string
	r.call(func() { url = URL(r, Dir("testdata/db")) })
	if r.fatal != "" {
		t.Fatal(r.fatal)
	}
	r.failed = true
	r.runCleanups()
	if len(r.logs) != 1 || !strings.Contains(r.logs[0], "kept the database") {
		t.Fatalf("logs = %v", r.logs)
	}
	// Where the server came from decides whether the database outlives go test.
	if throwaway := os.Getenv("TEST_DATABASE_URL") == ""; throwaway != strings.Contains(r.logs[0], "throwaway") {
		t.Fatalf("log line does not say what becomes of the server: %s", r.logs[0])
	}
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.logs[0], cc.Password) {
		t.Fatalf("password in the log line: %s", r.logs[0])
	}
	conn := emptydb.Conn(t, emptydb.Server(t))
	if !databaseExists(t, conn, cc.Database) {
		t.Fatal("the failed test's database was dropped")
	}
	emptydb.Drop(t, emptydb.Server(t), cc.Database)

	// KeepOnFailure(false) drops it anyway.
	r = &recorder{name: "TestNoKeep"}
	r.call(func() { url = URL(r, Dir("testdata/db"), KeepOnFailure(false)) })
	if r.fatal != "" {
		t.Fatal(r.fatal)
	}
	cc, err = pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if !databaseExists(t, conn, cc.Database) {
		t.Fatal("the database was not created")
	}
	r.failed = true
	r.runCleanups()
	if databaseExists(t, conn, cc.Database) {
		t.Fatal("KeepOnFailure(false) kept the database")
	}
}

// TestChangedFileRebuildsOnce: a new folder content gets its own template,
// built once; a second process reads the result from its history; a broken
// file fails with its place.
func TestChangedFileRebuildsOnce(t *testing.T) {
	t.Parallel()
	emptydb.Server(t) // skips under -short; the recorder below cannot
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "001_a.sql"), []byte("CREATE TABLE a (id int);"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Migration(&recorder{name: "x"}, Dir(dir))
	if err != nil || len(res.FilesExecuted) != 1 {
		t.Fatalf("result = %+v, %v", res, err)
	}
	// A second process would reuse the template and read the result from
	// its history: simulate with a fresh cache entry.
	templates.Lock()
	abs, _ := filepath.Abs(dir)
	delete(templates.byKey, "dir:"+abs)
	templates.Unlock()
	res2, err := Migration(&recorder{name: "y"}, Dir(dir))
	if err != nil || len(res2.FilesExecuted) != 1 || res2.FilesExecuted[0] != res.FilesExecuted[0] {
		t.Fatalf("result from history = %+v, %v", res2, err)
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "001_a.sql"), []byte("CREATE TABLE a (id int);\nCREATE TABLE a (id int);"), 0o644); err != nil {
		t.Fatal(err)
	}
	res3, err := Migration(&recorder{name: "z"}, Dir(bad))
	if err == nil || !strings.Contains(err.Error(), "001_a.sql:2:1") {
		t.Fatalf("broken set: %v", err)
	}
	if res3 == nil || len(res3.Files) != 1 || res3.Files[0].Err == nil {
		t.Fatalf("broken set's result = %+v", res3)
	}
	r := &recorder{name: "w"}
	r.call(func() { New(r, Dir(bad)) })
	if !strings.Contains(r.fatal, "001_a.sql:2:1: ERROR 42P07") {
		t.Fatalf("New on a broken set: %q", r.fatal)
	}
}

// TestBadStrategyFailsFirst: an option that cannot work fails the test
// with a clear message before anything is created.
func TestBadStrategyFailsFirst(t *testing.T) {
	t.Parallel()
	r := &recorder{name: "bad"}
	r.call(func() { New(r, Dir(t.TempDir()), Strategy("copy_on_write")) })
	if !strings.Contains(r.fatal, `clone strategy "copy_on_write"`) {
		t.Fatalf("fatal = %q", r.fatal)
	}
}

type staticProvider struct{ srv *Server }

func (staticProvider) Name() string { return "static" }
func (p staticProvider) Start(context.Context) (*Server, error) {
	return p.srv, nil
}

// TestProviderAdapter: a user's Provider is reached through the public
// Server type.
func TestProviderAdapter(t *testing.T) {
	t.Parallel()
	a := provider{staticProvider{&Server{URL: "postgres://u@h/postgres", Source: "mine"}}}
	s, err := a.Start(context.Background())
	if err != nil || s.URL != "postgres://u@h/postgres" || s.Source != "mine" || a.Name() != "static" {
		t.Fatalf("adapted = %+v, %v", s, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("RegisterProvider(nil) did not panic")
		}
	}()
	RegisterProvider(nil)
}
