package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/migrate"
)

// server loads the folder (before any connection), connects to the
// maintenance database and returns the server and the target dbinit
// manages on it. The caller closes the server's connection.
func (r *run) server(ctx context.Context) (*provision.Server, provision.Target, error) {
	set, err := migrate.LoadDir(r.cfg.Dir)
	if err != nil {
		return nil, provision.Target{}, err
	}
	maint, err := r.connectMaintenance(ctx)
	if err != nil {
		return nil, provision.Target{}, err
	}
	srv := provision.New(maint, provision.Options{Logger: r.log, Connect: r.connectTo(maint)})
	return srv, r.target(set, maint), nil
}

// target describes what the configuration asks dbinit to manage.
func (r *run) target(set *migrate.Set, maint *pgx.Conn) provision.Target {
	return provision.Target{
		Template:        r.cfg.Template,
		Set:             set,
		Lock:            &migrate.AdvisoryLock{Conn: maint, Key: migrate.DefaultLockKey, Timeout: r.cfg.LockTimeout, Logger: r.log},
		Version:         version(),
		Owner:           r.cfg.Owner,
		Strategy:        r.cfg.CloneStrategy,
		AllowOutOfOrder: r.cfg.AllowOutOfOrder,
	}
}

// connectTo connects to other databases of maint's server the way the
// configuration says (wait timeout, entrypoint mode).
func (r *run) connectTo(maint *pgx.Conn) func(context.Context, string) (*pgx.Conn, error) {
	return func(ctx context.Context, database string) (*pgx.Conn, error) {
		return dbconn.Connect(ctx, dbconn.ForDatabase(maint.Config(), database),
			dbconn.Options{Timeout: r.cfg.WaitTimeout, Logger: r.log, AcceptInitServer: r.acceptInitServer()})
	}
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
		srv, target, err := r.server(ctx)
		if err != nil {
			return err
		}
		defer srv.Conn().Close(context.WithoutCancel(ctx))
		out, err := srv.Init(ctx, target, r.cfg.Database, r.cfg.Reset)
		if err != nil {
			return err
		}
		templateState := "reused"
		if out.Template.Built {
			templateState = "built"
		}
		r.log.Info("init done",
			"template", r.cfg.Template, "template_state", templateState, "template_ms", out.Template.Duration.Milliseconds(),
			"database", r.cfg.Database, "database_state", out.State, "files_applied", out.FilesApplied,
			"duration_ms", time.Since(start).Milliseconds())
		return nil
	}
}

func cmdClone(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	replace := fs.Bool("replace", false, "drop the database first if it exists")
	return func(ctx context.Context, r *run, args []string) error {
		if len(args) != 1 {
			return &usageError{"dbinit clone needs exactly one database NAME"}
		}
		name := args[0]
		if err := config.CheckName(name); err != nil {
			return &usageError{"dbinit clone: " + err.Error()}
		}
		srv, target, err := r.server(ctx)
		if err != nil {
			return err
		}
		defer srv.Conn().Close(context.WithoutCancel(ctx))
		if err := srv.CloneTemplate(ctx, target, name, *replace); err != nil {
			return err
		}
		fmt.Fprintln(r.stdout, name)
		return nil
	}
}
