package dbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/internal/testserver"
	"github.com/savvi-studio/dbinit/migrate"
)

// templates is the per-process cache: one template per migration folder.
var templates struct {
	sync.Mutex
	byKey map[string]*template
}

type template struct {
	once   sync.Once
	name   string
	set    *migrate.Set
	server *pgx.ConnConfig
	source string // testserver.Server.Source: where the server came from
	maint  *pgxpool.Pool
	result *migrate.Result // when this process built it
	err    error

	poolsMu sync.Mutex
	pools   map[string]*pool // ready clones, by strategy
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
		tp.source = srv.Source
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
	return tp.withServer(ctx, func(s *provision.Server, target provision.Target) error {
		out, err := s.EnsureTemplate(ctx, target)
		if out != nil && out.Result != nil {
			tp.result = out.Result
		}
		if err != nil {
			return fmt.Errorf("build template %s from %s:\n%w", tp.name, tp.set.Dir, err)
		}
		return s.SweepTestDatabases(ctx, provision.Sweep{
			DatabasePrefix: dbPrefix, TemplatePrefix: templatePrefix, Current: tp.name, Lock: target.Lock(tp.name),
		})
	})
}

// lockKey is the one lock of dbtest's builds and sweeps on the test server,
// apart from dbinit's own runs there.
var lockKey = migrate.LockKey("dbtest")

// withServer runs f with a maintenance connection of the pool.
func (tp *template) withServer(ctx context.Context, f func(*provision.Server, provision.Target) error) error {
	c, err := tp.maint.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	conn := c.Conn()
	lock := &migrate.AdvisoryLock{Conn: conn, Key: lockKey, Timeout: 10 * time.Minute}
	return f(provision.New(conn, provision.Options{Version: "dbtest"}), provision.Target{
		Template: tp.name,
		Set:      tp.set,
		Lock:     func(string) migrate.Locker { return lock },
		// A new file builds the new template from the previous one.
		Siblings: templatePrefix,
	})
}
