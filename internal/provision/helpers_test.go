package provision

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/migrate"
)

// fixture is one test's corner of the shared test server: a maintenance
// database of its own (so its advisory lock never delays another test) and
// names for its template and working database, all dropped at the end.
type fixture struct {
	t        *testing.T
	maint    *pgx.ConnConfig
	conn     *pgx.Conn
	srv      *Server
	log      *logBuffer
	template string
	working  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	maint := emptydb.New(t)
	f := &fixture{t: t, maint: maint, log: &logBuffer{}}
	base := emptydb.Name(t)
	f.template, f.working = base+"_t", base+"_w"
	f.conn = emptydb.Conn(t, maint)
	f.srv = New(f.conn, Options{Logger: slog.New(slog.NewTextHandler(f.log, nil)), Version: "test"})
	t.Cleanup(func() { dropAll(t, base) })
	return f
}

// dropAll removes every database whose name starts with prefix.
func dropAll(t *testing.T, prefix string) {
	conn := emptydb.Conn(t, emptydb.Server(t))
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, prefix)
	if err != nil {
		t.Error(err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Error(err)
		return
	}
	for _, n := range names {
		id := pgx.Identifier{n}.Sanitize()
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+id+" IS_TEMPLATE false"); err != nil {
			t.Error(err)
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE "+id+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	}
}

// target is the fixture's template built from files.
func (f *fixture) target(files map[string]string) Target {
	f.t.Helper()
	return f.targetOn(f.conn, files)
}

func (f *fixture) targetOn(conn *pgx.Conn, files map[string]string) Target {
	f.t.Helper()
	m := fstest.MapFS{}
	for name, text := range files {
		m[name] = &fstest.MapFile{Data: []byte(text)}
	}
	set, err := migrate.Load(m, "db")
	if err != nil {
		f.t.Fatal(err)
	}
	return Target{
		Template: f.template,
		Set:      set,
		Lock:     AdvisoryLocks(conn, 30*time.Second, slog.New(slog.NewTextHandler(f.log, nil))),
	}
}

// sql runs q on the maintenance connection, as a DBA would: databases made
// this way are not dbinit's.
func (f *fixture) sql(q string) {
	f.t.Helper()
	if _, err := f.conn.Exec(context.Background(), q); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

// db connects to database name of the server.
func (f *fixture) db(name string) *pgx.Conn {
	f.t.Helper()
	cc := f.maint.Copy()
	cc.Database = name
	return emptydb.Conn(f.t, cc)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func query[T any](t *testing.T, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var twoFiles = map[string]string{
	"001_users.sql": "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);",
	"002_posts.sql": "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);",
}

// with returns a copy of files with name set to text.
func with(files map[string]string, name, text string) map[string]string {
	out := map[string]string{}
	for k, v := range files {
		out[k] = v
	}
	out[name] = text
	return out
}

// copyOf clones database name (a template) into a new database of the
// fixture and connects to it.
func (f *fixture) copyOf(name string) *pgx.Conn {
	f.t.Helper()
	copyName := f.template + "_copy_" + strconv.Itoa(int(copies.Add(1)))
	if err := f.srv.Clone(ctxFor(f.t), name, copyName, CloneOptions{}); err != nil {
		f.t.Fatal(err)
	}
	cc := f.maint.Copy()
	cc.Database = copyName
	return emptydb.Conn(f.t, cc)
}

var copies atomic.Int64
