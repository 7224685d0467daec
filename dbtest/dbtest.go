// Package dbtest gives every Go test a brand-new PostgreSQL database, cloned
// in milliseconds from a template that holds the fully migrated schema.
//
//	func TestUsers(t *testing.T) {
//		t.Parallel()
//		pool := dbtest.New(t) // a fresh database with every migration in ./db applied
//		_, err := pool.Exec(context.Background(), `INSERT INTO users (name) VALUES ('ada')`)
//		...
//	}
//
// The template is built once per migration set (versions, names and bytes of
// the up files) and reused by every test, package and later run, until a file
// changes; then exactly one process rebuilds it, under an advisory lock, while
// the others wait. Each database is dropped when its test ends; a failed test
// keeps its database and logs how to connect to it (see [KeepOnFailure]).
//
// # Where the server comes from
//
//  1. TEST_DATABASE_URL, a superuser URL of the maintenance database, e.g.
//     postgres://postgres:secret@127.0.0.1:5432/postgres?sslmode=disable.
//  2. Otherwise a throwaway cluster started from the local PostgreSQL server
//     binaries (initdb, pg_ctl), one per `go test` run, shared by all its
//     packages and removed when go test exits. TEST_PG_BINDIR names the
//     binaries' folder when they are not found on PATH or under
//     /usr/lib/postgresql/*/bin.
//  3. Otherwise, if the test binary imports
//     github.com/savvi-studio/dbinit/dbtest/dbtestcontainers, a container from
//     a locally available PostgreSQL image.
//
// When none is available the test fails under CI=true and is skipped, loudly,
// elsewhere.
//
// # Where the migrations come from
//
// DBINIT_DIR if set, else the db folder at the root of the module (the
// nearest parent folder with a go.mod), else [Dir] or [FS].
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/internal/testserver"
	"github.com/savvi-studio/dbinit/migrate"
)

// TB is the part of testing.TB that dbtest uses; *testing.T and *testing.B
// satisfy it.
type TB interface {
	Helper()
	Name() string
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// An Option changes how New finds the migrations or treats the database.
type Option func(*options)

type options struct {
	dir           string
	fsys          fs.FS
	fsName        string
	keepOnFailure bool
	strategy      string
}

// Dir reads the migrations from a folder, e.g. Dir("../../db").
func Dir(path string) Option { return func(o *options) { o.dir, o.fsys = path, nil } }

// FS reads the migrations from the top of fsys, e.g. FS(migrations, "db")
// with an embed.FS; name is how the folder is called in messages.
func FS(fsys fs.FS, name string) Option {
	return func(o *options) { o.fsys, o.fsName, o.dir = fsys, name, "" }
}

// KeepOnFailure keeps the database of a failed test and logs how to connect
// to it (without the password), e.g. KeepOnFailure(false) in CI to save
// space. Default true. Kept databases are swept after an hour.
func KeepOnFailure(keep bool) Option { return func(o *options) { o.keepOnFailure = keep } }

// Strategy sets CREATE DATABASE's STRATEGY, "file_copy" or "wal_log"
// (PostgreSQL 15+). Default "file_copy", which is faster for the small
// templates of test suites (see docs/benchmarks.md).
func Strategy(s string) Option { return func(o *options) { o.strategy = s } }

func collect(opts []Option) options {
	o := options{keepOnFailure: true, strategy: "file_copy"}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// New creates a database cloned from the template of the migration set,
// returns a ready pool connected to it, and drops it when the test ends.
// If the migrations fail, the test fails with the file, line and column.
func New(t TB, opts ...Option) *pgxpool.Pool {
	t.Helper()
	db := create(t, collect(opts))
	pool, err := pgxpool.NewWithConfig(context.Background(), db.poolConfig())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = pool.Ping(ctx)
		cancel()
	}
	if err != nil {
		t.Fatalf("dbtest: connect to %s: %v", db.name, err)
	}
	t.Cleanup(pool.Close) // runs before the drop: cleanups run last-in first-out
	return pool
}

// URL creates a database like New and returns a URL for it, with the
// password, for code that does not use pgx (database/sql, a subprocess).
func URL(t TB, opts ...Option) string {
	t.Helper()
	db := create(t, collect(opts))
	return db.url(true)
}

// Migration returns the result of applying the migration set, for tests that
// assert on it like the fixtures of other stacks do:
//
//	res := dbtest.Migration(t)
//	if !res.Success { t.Fatal(res.Errors) }
//
// If this process built the template, it is that build's result. If the
// template was built earlier (by another package or run), the result is read
// from the history the build recorded in it, file by file.
// A failing migration set does not fail the test here: Success is false and
// Errors says why.
func Migration(t TB, opts ...Option) *migrate.Result {
	t.Helper()
	o := collect(opts)
	tp := templateFor(t, o)
	if tp.err != nil {
		if tp.result != nil {
			return tp.result
		}
		t.Fatalf("dbtest: %v", tp.err)
	}
	if tp.result != nil {
		return tp.result
	}
	db := create(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, db.connConfig())
	if err != nil {
		t.Fatalf("dbtest: connect to %s: %v", db.name, err)
	}
	defer conn.Close(context.Background())
	applied, err := migrate.ReadHistory(ctx, conn)
	if err != nil {
		t.Fatalf("dbtest: read history of %s: %v", db.name, err)
	}
	return resultFromHistory(tp.set, applied, db.name)
}

func resultFromHistory(set *migrate.Set, applied []migrate.Applied, database string) *migrate.Result {
	res := &migrate.Result{Database: database}
	byVersion := map[int64]migrate.Applied{}
	for _, a := range applied {
		byVersion[a.Version] = a
	}
	for _, m := range set.Migrations {
		a, ok := byVersion[m.Version]
		if !ok || a.State != migrate.StateApplied || a.Checksum != m.Up.Checksum {
			res.Errors = append(res.Errors, fmt.Errorf("%s is not recorded as applied in the template", m.Up.Path))
			continue
		}
		d := time.Duration(a.ExecutionMS) * time.Millisecond
		res.Duration += d
		res.FilesExecuted = append(res.FilesExecuted, m.Up.Path)
		res.Files = append(res.Files, migrate.FileResult{Version: m.Version, Name: m.Name, Path: m.Up.Path,
			Statements: a.StatementsTotal, Duration: d})
	}
	res.Success = len(res.Errors) == 0
	return res
}

// database is one test's clone.
type database struct {
	name   string
	server *pgx.ConnConfig
}

func (d *database) connConfig() *pgx.ConnConfig { return dbconn.ForDatabase(d.server, d.name) }

func (d *database) poolConfig() *pgxpool.Config {
	cfg, _ := pgxpool.ParseConfig("")
	cfg.ConnConfig = d.connConfig()
	return cfg
}

func (d *database) url(withPassword bool) string {
	cc := d.server
	user := url.User(cc.User)
	if withPassword && cc.Password != "" {
		user = url.UserPassword(cc.User, cc.Password)
	}
	u := url.URL{Scheme: "postgres", User: user, Host: fmt.Sprintf("%s:%d", cc.Host, cc.Port), Path: "/" + d.name}
	if cc.TLSConfig == nil {
		u.RawQuery = "sslmode=disable"
	}
	return u.String()
}

// create clones a database for t and registers its removal.
func create(t TB, o options) *database {
	t.Helper()
	tp := templateFor(t, o)
	if tp.err != nil {
		t.Fatalf("dbtest: %v", tp.err)
	}
	db := &database{name: dbName(t.Name()), server: tp.server}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := tp.withConn(ctx, func(p *provision.Provisioner) error {
		if tp.version >= 150000 {
			p.Strategy = o.strategy
		}
		return p.Clone(ctx, tp.name, db.name)
	})
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && o.keepOnFailure {
			t.Logf("dbtest: kept the database of the failed test: %s", db.url(false))
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := tp.withConn(ctx, func(p *provision.Provisioner) error { return p.Drop(ctx, db.name) }); err != nil {
			t.Logf("dbtest: drop %s: %v (the sweep will remove it)", db.name, err)
		}
	})
	return db
}

// Database names: "dbt_<base-36 unix seconds>_<test name>_<random>", so the
// sweep can tell their age and a person can tell whose they are.
const (
	dbPrefix       = "dbt_"
	templatePrefix = "dbtpl_"
)

var (
	unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)
	dbNameRE    = regexp.MustCompile(`^dbt_([0-9a-z]+)_`)
)

func dbName(test string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	base := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(test), "_"), "_")
	ts := strconv.FormatInt(time.Now().Unix(), 36)
	room := 63 - len(dbPrefix) - len(ts) - 1 - 1 - 6
	if len(base) > room {
		base = base[len(base)-room:] // the end of a subtest name says most
	}
	return dbPrefix + ts + "_" + base + "_" + hex.EncodeToString(b[:])
}

// defaultDir is DBINIT_DIR, or the db folder at the module root.
func defaultDir() (string, error) {
	if d := os.Getenv("DBINIT_DIR"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "db"), nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no DBINIT_DIR and no go.mod above %s; pass dbtest.Dir(...)", wd)
		}
	}
}

// templates is the per-process cache: one template per migration folder.
var templates struct {
	sync.Mutex
	byKey map[string]*template
}

type template struct {
	once    sync.Once
	name    string
	set     *migrate.Set
	server  *pgx.ConnConfig
	maint   *pgxpool.Pool
	version int             // server_version_num
	result  *migrate.Result // when this process built it
	err     error
}

func templateFor(t TB, o options) *template {
	t.Helper()
	key := "fs:" + o.fsName
	if o.fsys == nil {
		dir := o.dir
		if dir == "" {
			d, err := defaultDir()
			if err != nil {
				t.Fatalf("dbtest: %v", err)
			}
			dir = d
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			t.Fatalf("dbtest: %v", err)
		}
		o.dir, key = abs, "dir:"+abs
	}
	srv := testserver.MustGet(t)
	if srv == nil {
		return &template{err: fmt.Errorf("no server")}
	}
	templates.Lock()
	if templates.byKey == nil {
		templates.byKey = map[string]*template{}
	}
	tp := templates.byKey[key]
	if tp == nil {
		tp = &template{}
		templates.byKey[key] = tp
	}
	templates.Unlock()
	tp.once.Do(func() {
		tp.version = srv.Version
		tp.err = tp.prepare(srv.URL, o)
	})
	return tp
}

// prepare loads the set and makes sure its template exists, building it if
// needed, then sweeps what killed runs left behind.
func (tp *template) prepare(serverURL string, o options) error {
	var err error
	if o.fsys != nil {
		tp.set, err = migrate.Load(o.fsys, o.fsName)
	} else {
		tp.set, err = migrate.LoadDir(o.dir)
	}
	if err != nil {
		return err
	}
	if tp.server, err = pgx.ParseConfig(serverURL); err != nil {
		return fmt.Errorf("server URL: %w", err)
	}
	cfg, _ := pgxpool.ParseConfig("")
	cfg.ConnConfig = tp.server.Copy()
	cfg.MaxConns = 8
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if tp.maint, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return err
	}
	tp.name = templatePrefix + tp.set.Hash()[:16]
	return tp.withConn(ctx, func(p *provision.Provisioner) error {
		out, err := p.EnsureTemplate(ctx, tp.name)
		if out != nil && out.Result != nil {
			tp.result = out.Result
		}
		if err != nil {
			return fmt.Errorf("build template %s from %s:\n%w", tp.name, tp.set.Dir, err)
		}
		return sweep(ctx, p, tp.name)
	})
}

// lockKey keeps dbtest's builds apart from dbinit's own runs on the server.
var lockKey = migrate.LockKey("dbtest")

func (tp *template) withConn(ctx context.Context, f func(p *provision.Provisioner) error) error {
	c, err := tp.maint.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	conn := c.Conn()
	p := &provision.Provisioner{
		Maint:   conn,
		Lock:    &migrate.AdvisoryLock{Conn: conn, Key: lockKey, Timeout: 10 * time.Minute},
		Set:     tp.set,
		Version: "dbtest",
	}
	return f(p)
}
