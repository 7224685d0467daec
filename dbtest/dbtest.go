package dbtest

import (
	"context"
	"fmt"
	"io/fs"
	"net/url"
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
	poolSize      int
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
// (PostgreSQL 15+; older servers have one strategy and ignore it). Default
// "file_copy", which is faster for the small templates of test suites (see
// docs/benchmarks.md). Any other value fails the test before anything is
// created.
func Strategy(s string) Option { return func(o *options) { o.strategy = s } }

// collect applies opts and checks the result.
func collect(t TB, opts []Option) options {
	t.Helper()
	o := options{keepOnFailure: true, strategy: provision.StrategyFileCopy, poolSize: defaultPoolSize}
	for _, f := range opts {
		f(&o)
	}
	if err := provision.CheckStrategy(o.strategy); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return o
}

// New creates a database cloned from the template of the migration set,
// returns a ready pool connected to it, and drops it when the test ends.
// If the migrations fail, the test fails with the file, line and column.
func New(t TB, opts ...Option) *pgxpool.Pool {
	t.Helper()
	db := create(t, collect(t, opts))
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
	db := create(t, collect(t, opts))
	return db.url(true)
}

// Migration returns the result of applying the migration set, for tests
// that assert on it as the fixtures of other stacks do:
//
//	res, err := dbtest.Migration(t)
//	if err != nil {
//		t.Fatal(err) // names FILE:LINE:COL of a failing migration
//	}
//	t.Logf("%d files in %s", len(res.FilesExecuted), res.Duration)
//
// If this process built the template, it is that build's result (also when
// the build failed: then err says why and the failed file is the last of
// res.Files). If the template was built earlier, by another package or run,
// the result is read from the history the build recorded in it.
func Migration(t TB, opts ...Option) (*migrate.Result, error) {
	t.Helper()
	o := collect(t, opts)
	tp := templateFor(t, o)
	if tp.result != nil || tp.err != nil {
		return tp.result, tp.err
	}
	db := create(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, db.connConfig())
	if err != nil {
		return nil, fmt.Errorf("dbtest: connect to %s: %w", db.name, err)
	}
	defer conn.Close(context.Background())
	applied, err := migrate.ReadHistory(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("dbtest: read history of %s: %w", db.name, err)
	}
	return resultFromHistory(tp.set, applied, db.name)
}

func resultFromHistory(set *migrate.Set, applied []migrate.Applied, database string) (*migrate.Result, error) {
	res := &migrate.Result{Database: database}
	byVersion := map[int64]migrate.Applied{}
	for _, a := range applied {
		byVersion[a.Version] = a
	}
	for _, m := range set.Migrations {
		a, ok := byVersion[m.Version]
		if !ok || a.State != migrate.StateApplied || !m.Up.Matches(a) {
			return res, fmt.Errorf("dbtest: %s is not recorded as applied in the template", m.Up.Path)
		}
		d := time.Duration(a.ExecutionMS) * time.Millisecond
		res.Duration += d
		res.FilesExecuted = append(res.FilesExecuted, m.Up.Path)
		res.Files = append(res.Files, migrate.FileResult{Version: m.Version, Name: m.Name, Path: m.Up.Path,
			Statements: a.StatementsTotal, Duration: d})
	}
	return res, nil
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

// Names on the server.
const (
	dbPrefix       = "dbt_"
	templatePrefix = "dbtpl_"
)

// create clones a database for t and registers its removal.
func create(t TB, o options) *database {
	t.Helper()
	tp := templateFor(t, o)
	if tp.err != nil {
		t.Fatalf("dbtest: %v", tp.err)
	}
	db := &database{name: provision.TestDatabaseName(dbPrefix, t.Name()), server: tp.server}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ready := ""
	if o.poolSize > 0 {
		ready = tp.poolFor(o.strategy, o.poolSize).take()
	}
	err := tp.withServer(ctx, func(s *provision.Server, _ provision.Target) error {
		if ready != "" {
			// A clone made ahead: renamed for this test, which makes it
			// this test's alone. The pool is only a cache: if the clone
			// was swept meanwhile, or cannot be claimed, clone as without
			// it (a clone left unclaimed goes with the sweep).
			if ok, err := s.ClaimTest(ctx, ready, db.name); ok && err == nil {
				return nil
			}
		}
		if err := s.Clone(ctx, tp.name, db.name, provision.CloneOptions{Strategy: o.strategy}); err != nil {
			return err
		}
		// Marked, so the sweep may drop it after a killed run.
		return s.MarkTest(ctx, db.name)
	})
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && o.keepOnFailure {
			where := "it stays until you drop it"
			if tp.source != testserver.EnvDatabaseURL {
				where = "the server (" + tp.source + ") is a throwaway that stops when go test exits; " +
					"to look at the database afterwards, run the tests with TEST_DATABASE_URL set to a server of your own"
			}
			t.Logf("dbtest: kept the database of the failed test: %s (%s)", db.url(false), where)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		err := tp.withServer(ctx, func(s *provision.Server, _ provision.Target) error { return s.Drop(ctx, db.name) })
		if err != nil {
			t.Logf("dbtest: drop %s: %v (the sweep will remove it)", db.name, err)
		}
	})
	return db
}
