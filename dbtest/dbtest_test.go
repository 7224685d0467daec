package dbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestPoolHandsOutReadyClones: the first database makes no pool; after the
// second, the pool fills in the background; the next tests get a ready
// clone, renamed for them, with the schema and seed rows; every test's
// database is its own; a pooled clone that was swept meanwhile is replaced
// by a clone; PoolSize(0) makes no pool.
func TestPoolHandsOutReadyClones(t *testing.T) {
	t.Parallel()
	emptydb.Server(t)
	dir := t.TempDir()
	for _, f := range []string{"001_accounts.sql", "002_notes.sql"} {
		b, err := os.ReadFile(filepath.Join("testdata/db", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A set of its own, so that this test's template and pool are its own.
	if err := os.WriteFile(filepath.Join(dir, "003_marker.sql"), []byte("-- "+t.Name()+"\nCREATE TABLE app.pool_test (id int);\nINSERT INTO app.pool_test VALUES (7);"), 0o644); err != nil {
		t.Fatal(err)
	}
	newDB := func(name string, opts ...Option) (string, *recorder) {
		r := &recorder{name: name}
		var url string
		r.call(func() { url = URL(r, append([]Option{Dir(dir)}, opts...)...) })
		if r.fatal != "" {
			t.Fatal(r.fatal)
		}
		cc, err := pgx.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		return cc.Database, r
	}
	first, r1 := newDB("TestPool/first", PoolSize(2))
	defer r1.runCleanups()
	abs, _ := filepath.Abs(dir)
	templates.Lock()
	tp := templates.byKey["dir:"+abs]
	templates.Unlock()
	p := tp.poolFor(provisionStrategyDefault(), 2)
	// One database asked for: no clones made ahead.
	p.mu.Lock()
	idle := !p.filling && len(p.ready) == 0
	p.mu.Unlock()
	if !idle {
		t.Fatal("the pool started filling after the first database")
	}
	// The second one starts the pool.
	_, r0 := newDB("TestPool/zeroth", PoolSize(2))
	defer r0.runCleanups()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p.mu.Lock()
		n, failed := len(p.ready), p.failed
		p.mu.Unlock()
		if failed != nil {
			t.Fatal(failed)
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool has %d clones after a minute", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.mu.Lock()
	pooled := append([]string(nil), p.ready...)
	p.mu.Unlock()
	second, r2 := newDB("TestPool/second", PoolSize(2))
	defer r2.runCleanups()
	conn := emptydb.Conn(t, emptydb.Server(t))
	if second == first || !strings.Contains(second, "testpool_second") {
		t.Fatalf("names %q, %q", first, second)
	}
	gone := 0
	for _, name := range pooled {
		if !databaseExists(t, conn, name) {
			gone++ // renamed for the second test
		}
	}
	if gone != 1 {
		t.Fatalf("%d pooled clones were taken, want 1", gone)
	}
	cc := emptydb.Server(t).Copy()
	cc.Database = second
	c2 := emptydb.Conn(t, cc)
	var v int
	if err := c2.QueryRow(context.Background(), `SELECT id FROM app.pool_test`).Scan(&v); err != nil || v != 7 {
		t.Fatalf("the pooled clone lacks the template's rows: %v %d", err, v)
	}
	c2.Close(context.Background())
	// A pooled clone that a sweep removed meanwhile: the test clones one.
	p.mu.Lock()
	p.ready = append(p.ready, "dbt_swept_meanwhile")
	p.mu.Unlock()
	fourth, r4 := newDB("TestPool/fourth", PoolSize(2))
	defer r4.runCleanups()
	if !databaseExists(t, conn, fourth) {
		t.Fatalf("no database %s after a pooled clone was gone", fourth)
	}
	// Without a pool: no clones are made ahead.
	_, r3 := newDB("TestPool/third", PoolSize(0), Strategy("wal_log"))
	defer r3.runCleanups()
	tp.poolsMu.Lock()
	_, made := tp.pools["wal_log"]
	tp.poolsMu.Unlock()
	if made {
		t.Fatal("PoolSize(0) made a pool")
	}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, name := range p.ready {
			emptydb.Drop(t, emptydb.Server(t), name)
		}
	})
}

func provisionStrategyDefault() string { return collect(&recorder{}, nil).strategy }
