package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/migrate"
)

func noArgs(name string, args []string) error {
	if len(args) > 0 {
		return &usageError{fmt.Sprintf("%s takes no arguments, got %q", name, args)}
	}
	return nil
}

func cmdWait(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("wait", args); err != nil {
			return err
		}
		conn, err := r.connectMaintenance(ctx)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		r.log.Info("server is accepting connections", "target", dbconn.Target(conn.Config()))
		return nil
	}
}

func cmdUp(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	to := fs.Int64("to", 0, "apply up to and including this version")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("up", args); err != nil {
			return err
		}
		start := time.Now()
		srv, target, closeAll, err := r.server(ctx)
		if err != nil {
			return err
		}
		defer closeAll()
		out, err := srv.Update(ctx, target, r.cfg.Database, *to)
		if err != nil {
			return err
		}
		r.log.Info("up done", "database", r.cfg.Database, "database_state", out.State, "files", out.FilesApplied,
			"duration_ms", time.Since(start).Milliseconds())
		closeAll() // the hook may take long; hold no connection or lock meanwhile
		return r.afterHook(ctx, out.State != provision.StateUnchanged || out.FilesApplied > 0)
	}
}

func cmdDown(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	to := fs.Int64("to", -1, "revert every version above this one (0 = all)")
	steps := fs.Int("steps", 0, "revert this many of the most recent versions")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("down", args); err != nil {
			return err
		}
		if (*to >= 0) == (*steps > 0) {
			return &usageError{"down: needs exactly one of --to N or --steps K (K > 0)"}
		}
		opts := migrate.DownOptions{Steps: *steps}
		if *to >= 0 {
			opts.To = *to
		}
		return r.migrateWith(ctx, "down", func(s *session) (*migrate.Result, error) {
			return s.migrator.Down(ctx, s.target, opts)
		})
	}
}

func cmdBaseline(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	v := fs.Int64("version", 0, "record every file up to this version as applied")
	force := fs.Bool("force", false, "also on a database with a history, which would mark files it lacks as applied")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("baseline", args); err != nil {
			return err
		}
		if *v <= 0 {
			return &usageError{"baseline: needs --version N (N > 0)"}
		}
		return r.migrateWith(ctx, "baseline", func(s *session) (*migrate.Result, error) {
			return s.migrator.Baseline(ctx, s.target, migrate.BaselineOptions{Version: *v, Force: *force})
		})
	}
}

func cmdAccept(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	return func(ctx context.Context, r *run, args []string) error {
		if len(args) != 1 {
			return &usageError{"accept: needs exactly one VERSION"}
		}
		v, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || v <= 0 {
			return &usageError{fmt.Sprintf("accept: %q is not a version number", args[0])}
		}
		return r.migrateWith(ctx, "", func(s *session) (*migrate.Result, error) {
			return nil, s.migrator.Accept(ctx, s.target, v)
		})
	}
}

func cmdNew(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	return func(ctx context.Context, r *run, args []string) error {
		if len(args) != 1 {
			return &usageError{"new: needs exactly one NAME, e.g. dbinit new add_users"}
		}
		up, down, err := migrate.Scaffold(os.DirFS(r.cfg.Dir), args[0])
		var nameErr *migrate.NameError
		if errors.As(err, &nameErr) {
			return &usageError{"new: " + err.Error()}
		}
		if err != nil {
			return &config.Error{Msg: fmt.Sprintf("migrations folder %s: %v", r.cfg.Dir, err)}
		}
		for _, f := range []migrate.NewFile{up, down} {
			path := filepath.Join(r.cfg.Dir, f.Name)
			if err := writeNew(path, f.Text); err != nil {
				return err
			}
			fmt.Fprintln(r.stdout, path)
		}
		return nil
	}
}

// writeNew writes a file that must not exist yet.
func writeNew(path, text string) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return &config.Error{Msg: fmt.Sprintf("new: %v", err)}
	}
	_, werr := file.WriteString(text)
	if cerr := file.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("new: write %s: %w", path, werr)
	}
	return nil
}

// migrateWith runs one migrator call on the working database and logs what
// it did.
func (r *run) migrateWith(ctx context.Context, what string, f func(*session) (*migrate.Result, error)) error {
	s, err := r.session(ctx)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	res, err := f(s)
	r.summary(what, res, err)
	return err
}

// summary logs what a run did.
func (r *run) summary(what string, res *migrate.Result, err error) {
	if res == nil || what == "" {
		return
	}
	if err == nil {
		r.log.Info(what+" done", "database", res.Database, "files", len(res.FilesExecuted), "duration_ms", res.Duration.Milliseconds())
		return
	}
	r.log.Error(what+" failed", "database", res.Database, "files", len(res.FilesExecuted), "duration_ms", res.Duration.Milliseconds())
}

// session is what the commands that change a working database share: the
// loaded folder, the server with its locks, and a connection to the working
// database.
type session struct {
	target   *pgx.Conn
	closeAll func()
	migrator *migrate.Migrator
}

func (s *session) close(ctx context.Context) {
	if s.target != nil {
		s.target.Close(context.WithoutCancel(ctx))
	}
	if s.closeAll != nil {
		s.closeAll()
	}
}

// session loads the folder first (a bad folder never touches a database),
// then connects.
func (r *run) session(ctx context.Context) (*session, error) {
	srv, target, closeAll, err := r.server(ctx)
	if err != nil {
		return nil, err
	}
	s := &session{closeAll: closeAll}
	fail := func(err error) (*session, error) {
		s.close(ctx)
		return nil, err
	}
	if err := srv.Reserved(r.cfg.Database); err != nil {
		return fail(err)
	}
	s.migrator, err = migrate.New(target.Set, migrate.Options{Logger: r.log, Locker: target.Lock(r.cfg.Database), Version: version(),
		DDLLockTimeout: r.cfg.DDLLockTimeout, DDLRetryTimeout: r.cfg.DDLRetryTimeout, StatementTimeout: r.cfg.StatementTimeout})
	if err != nil {
		return fail(err)
	}
	if s.target, err = r.connectTo(srv.Conn())(ctx, r.cfg.Database); err != nil {
		return fail(err)
	}
	return s, nil
}

func (r *run) connectMaintenance(ctx context.Context) (*pgx.Conn, error) {
	cc, err := r.cfg.ConnConfig()
	if err != nil {
		return nil, err
	}
	conn, err := dbconn.Connect(ctx, cc, r.connectOptions(r.cfg.WaitTimeout))
	var noDB *dbconn.NoDatabaseError
	if errors.As(err, &noDB) {
		return nil, fmt.Errorf("maintenance database (set it in DATABASE_URL or PGDATABASE): %w", err)
	}
	return conn, err
}

// acceptInitServer is set by the postgres image's entrypoint, where dbinit
// runs against the temporary first-start server on purpose.
func (r *run) acceptInitServer() bool {
	return r.cfg.EntrypointMode
}

// connectOptions are the dbconn options every connection of a run uses.
// Read-only commands do not narrate the wait: their error says it all once.
func (r *run) connectOptions(timeout time.Duration) dbconn.Options {
	o := dbconn.Options{Timeout: timeout, Logger: r.log, AcceptInitServer: r.acceptInitServer()}
	if r.readOnly {
		o.Logger = nil
	}
	return o
}
