package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/migrate"
)

// server loads the folder (before any connection), connects to the
// maintenance database and to the database the locks live in, and returns
// the server and the target dbinit manages on it. close closes both
// connections.
func (r *run) server(ctx context.Context) (srv *provision.Server, target provision.Target, closeAll func(), err error) {
	// Connecting takes about as long as loading the folder, so both run at
	// once; nothing is sent to a database before the folder is known to be
	// good, and a bad folder is reported as such even when the server is
	// not reachable.
	cctx, cancel := context.WithCancel(ctx)
	maintC := make(chan connResult, 1)
	go func() {
		c, err := r.connectMaintenance(cctx)
		maintC <- connResult{c, err}
	}()
	set, err := r.loadSet()
	if err != nil {
		cancel()
		if m := <-maintC; m.conn != nil {
			m.conn.Close(context.WithoutCancel(ctx))
		}
		return nil, target, nil, err
	}
	m := <-maintC
	cancel() // the connection is made: its context is no longer needed
	maint, err := m.conn, m.err
	if err != nil {
		return nil, target, nil, err
	}
	lockConn, err := r.lockConnection(ctx, maint)
	if err != nil {
		maint.Close(context.WithoutCancel(ctx))
		return nil, target, nil, err
	}
	closeAll = func() {
		if lockConn != maint {
			lockConn.Close(context.WithoutCancel(ctx))
		}
		maint.Close(context.WithoutCancel(ctx))
	}
	srv = provision.New(maint, provision.Options{Logger: r.log, Connect: r.connectTo(maint), Version: version()})
	target = provision.Target{
		Template:         r.cfg.Template,
		Set:              set,
		Lock:             provision.AdvisoryLocks(lockConn, r.cfg.LockTimeout, r.log),
		Owner:            r.cfg.Owner,
		Strategy:         r.cfg.CloneStrategy,
		AllowOutOfOrder:  r.cfg.AllowOutOfOrder,
		DDLLockTimeout:   r.cfg.DDLLockTimeout,
		DDLRetryTimeout:  r.cfg.DDLRetryTimeout,
		StatementTimeout: r.cfg.StatementTimeout,
		Snapshot:         r.cfg.SnapshotMode(),
		SnapshotKeep:     r.cfg.SnapshotKeep,
		Dump:             r.dumper(),
	}
	return srv, target, closeAll, nil
}

// loadSet loads and checks the migration folder: a folder without
// migrations is a mistake (a wrong DBINIT_DIR, a mount that did not
// happen), not version 0; a folder that disagrees with its manifest never
// reaches a database (exit 5).
func (r *run) loadSet() (*migrate.Set, error) {
	set, err := migrate.LoadDir(r.cfg.Dir)
	if err != nil {
		return nil, err
	}
	if len(set.Migrations) == 0 {
		return nil, r.noMigrations(set)
	}
	if err := set.CheckManifest(); err != nil {
		return nil, err
	}
	tuneGC(set)
	return set, nil
}

// largeFolder is the size of a folder's text from which tuneGC keeps the
// heap closer to what is live.
const largeFolder = 8 << 20

// tuneGC: the text of every file stays in memory for the whole run, and
// with Go's default GOGC=100 the heap grows to twice what is live before
// it is collected. For a large folder (5,000 files, 21 MB of SQL: 73 MB
// peak RSS by default, 58 MB with this) collect at 25 % growth instead: a
// collection every few seconds of such a run, nothing next to the
// server's work. Small folders keep the default, which makes fewer
// collections while the process starts. A GOGC the user set wins.
func tuneGC(set *migrate.Set) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	total := 0
	for _, m := range set.Migrations {
		total += len(m.Up.SQL)
		if m.Down != nil {
			total += len(m.Down.SQL)
		}
	}
	if total >= largeFolder {
		debug.SetGCPercent(25)
	}
}

func (r *run) noMigrations(set *migrate.Set) error {
	return &config.Error{Msg: "no migrations in " + set.Dir +
		" (files named NNN_name.sql; `dbinit new NAME` writes the first; check DBINIT_DIR, --dir and the volume mount)"}
}

// lockDatabase is where every runner takes its locks, whatever database
// its URL names: an advisory lock lives in one database, and runners that
// manage the same template or working database must meet in the same one.
const lockDatabase = "postgres"

// lockConnection returns a connection to lockDatabase: maint itself when
// it is that database, else a second connection. When the server has no
// such database or refuses this user there, the locks are taken in the
// maintenance database, with a warning: then only runners that name the
// same maintenance database exclude each other.
func (r *run) lockConnection(ctx context.Context, maint *pgx.Conn) (*pgx.Conn, error) {
	if maint.Config().Database == lockDatabase {
		return maint, nil
	}
	conn, err := dbconn.Connect(ctx, dbconn.ForDatabase(maint.Config(), lockDatabase),
		r.connectOptions(5*time.Second))
	if err == nil {
		return conn, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r.log.Warn("cannot take the lock in the database "+lockDatabase+"; taking it in the maintenance database: runners whose DATABASE_URL names another database will not wait for this one",
		"maintenance_database", maint.Config().Database, "reason", dbconn.Reason(err))
	return maint, nil
}

// connectTo connects to other databases of maint's server the way the
// configuration says (wait timeout, entrypoint mode).
func (r *run) connectTo(maint *pgx.Conn) func(context.Context, string) (*pgx.Conn, error) {
	return func(ctx context.Context, database string) (*pgx.Conn, error) {
		return dbconn.Connect(ctx, dbconn.ForDatabase(maint.Config(), database), r.connectOptions(r.cfg.WaitTimeout))
	}
}

type connResult struct {
	conn *pgx.Conn
	err  error
}

// cmdInit is what the init container runs: template first, then the working
// database, which is cloned when absent and migrated when present; never
// dropped unless DBINIT_RESET=true.
func cmdInit(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("init", args); err != nil {
			return err
		}
		start := time.Now()
		srv, target, closeAll, err := r.server(ctx)
		if err != nil {
			return err
		}
		defer closeAll()
		if r.cfg.Production() {
			if r.cfg.Reset {
				return &usageError{"DBINIT_RESET=true has no meaning in production mode (DBINIT_TEMPLATE=none): dbinit never drops a production database"}
			}
			out, err := srv.Update(ctx, target, r.cfg.Database, 0)
			if err != nil {
				return err
			}
			r.log.Info("init done", "mode", "production", "template", "none",
				"database", r.cfg.Database, "database_state", out.State, "files_applied", out.FilesApplied,
				"version", target.Set.Latest(), "duration_ms", time.Since(start).Milliseconds())
			closeAll() // the hook may take long; hold no connection meanwhile
			return r.afterHook(ctx, out.State != provision.StateUnchanged || out.FilesApplied > 0)
		}
		out, err := srv.Init(ctx, target, r.cfg.Database, r.cfg.Reset)
		if err != nil {
			return err
		}
		attrs := []any{"template", r.cfg.Template, "template_state", "reused"}
		if out.Template.Built {
			attrs = []any{"template", r.cfg.Template, "template_state", "built"}
			if out.Template.From != "" {
				// Only the new files were applied, to a copy of the old template.
				attrs = []any{"template", r.cfg.Template, "template_state", "extended"}
			}
			if res := out.Template.Result; res != nil {
				attrs = append(attrs, "template_files", len(res.FilesExecuted))
			}
		}
		attrs = append(attrs, "template_ms", out.Template.Duration.Milliseconds(),
			"database", r.cfg.Database, "database_state", out.State, "files_applied", out.FilesApplied,
			"version", target.Set.Latest(), "duration_ms", time.Since(start).Milliseconds())
		r.log.Info("init done", attrs...)
		closeAll()
		return r.afterHook(ctx, out.Template.Built || out.State != provision.StateUnchanged || out.FilesApplied > 0)
	}
}

func cmdClone(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	replace := fs.Bool("replace", false, "drop the database first if it exists (only one dbinit made)")
	rebuild := fs.Bool("rebuild", false, "rebuild the template when its files differ from the folder (an applied file edited or removed)")
	return func(ctx context.Context, r *run, args []string) error {
		if len(args) != 1 {
			return &usageError{"clone: needs exactly one database NAME"}
		}
		name := args[0]
		if r.cfg.Production() {
			return &usageError{"clone: production mode (DBINIT_TEMPLATE=none) has no template to clone"}
		}
		if err := config.CheckName(name); err != nil {
			return &usageError{"clone: " + err.Error()}
		}
		if name == r.cfg.Database {
			return &usageError{fmt.Sprintf("clone: %q is the working database (DBINIT_DATABASE); clone makes other databases (DBINIT_RESET=true re-clones the working one, in development)", name)}
		}
		srv, target, closeAll, err := r.server(ctx)
		if err != nil {
			return err
		}
		defer closeAll()
		target.Rebuild = *rebuild
		if err := srv.CloneTemplate(ctx, target, name, *replace); err != nil {
			return err
		}
		fmt.Fprintln(r.stdout, name)
		return nil
	}
}
