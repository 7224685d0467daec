package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/migrate"
)

// provisioner loads the folder (before any connection), connects to the
// maintenance database and returns a Provisioner on it.
func (r *run) provisioner(ctx context.Context) (*provision.Provisioner, error) {
	set, err := migrate.LoadDir(r.cfg.Dir)
	if err != nil {
		return nil, err
	}
	maint, err := r.connectMaintenance(ctx)
	if err != nil {
		return nil, err
	}
	strategy := r.cfg.CloneStrategy
	if v := serverMajor(maint); strategy != "" && v < 15 {
		r.log.Warn("DBINIT_CLONE_STRATEGY needs PostgreSQL 15 or later; using the server's only strategy", "server_major", v)
		strategy = ""
	}
	return &provision.Provisioner{
		Maint:    maint,
		Lock:     &migrate.AdvisoryLock{Conn: maint, Key: migrate.DefaultLockKey, Timeout: r.cfg.LockTimeout, Logger: r.log},
		Set:      set,
		Logger:   r.log,
		Version:  version(),
		Strategy: strategy,
		Owner:    r.cfg.Owner,
	}, nil
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
		p, err := r.provisioner(ctx)
		if err != nil {
			return err
		}
		defer p.Maint.Close(context.WithoutCancel(ctx))

		tmpl, err := p.EnsureTemplate(ctx, r.cfg.Template)
		if err != nil {
			return err
		}
		templateState := "reused"
		if tmpl.Built {
			templateState = "built"
		}

		workState, files, err := r.initWorking(ctx, p)
		if err != nil {
			return err
		}
		r.log.Info("init done",
			"template", r.cfg.Template, "template_state", templateState, "template_ms", tmpl.Duration.Milliseconds(),
			"database", r.cfg.Database, "database_state", workState, "files_applied", files,
			"duration_ms", time.Since(start).Milliseconds())
		return nil
	}
}

// initWorking brings the working database to the template's state.
func (r *run) initWorking(ctx context.Context, p *provision.Provisioner) (state string, files int, err error) {
	name := r.cfg.Database
	exists, err := p.Exists(ctx, name)
	if err != nil {
		return "", 0, err
	}
	state = "unchanged"
	if !exists || r.cfg.Reset {
		if r.cfg.Reset && exists {
			r.log.Warn("DBINIT_RESET=true: DROPPING the working database and every row in it, then cloning it again from the template",
				"database", name)
		}
		created, err := r.cloneLocked(ctx, p, name, r.cfg.Reset)
		if err != nil {
			return "", 0, err
		}
		switch {
		case created && r.cfg.Reset:
			state = "reset"
		case created:
			state = "created"
		}
	}
	// Also after a clone: another runner with other files (an older image)
	// may have rebuilt the template between our build and our clone. Up
	// takes no lock when nothing is pending, which is the normal case.
	applied, err := r.catchUp(ctx, p, name)
	if err != nil {
		return "", 0, err
	}
	if applied > 0 && state == "unchanged" {
		state = "updated"
	}
	return state, applied, nil
}

// catchUp applies what is pending to database name.
func (r *run) catchUp(ctx context.Context, p *provision.Provisioner, name string) (int, error) {
	target, err := dbconn.Connect(ctx, dbconn.ForDatabase(p.Maint.Config(), name), dbconn.Options{Timeout: r.cfg.WaitTimeout, Logger: r.log, AcceptInitServer: r.acceptInitServer()})
	if err != nil {
		return 0, err
	}
	defer target.Close(context.WithoutCancel(ctx))
	m := migrate.New(p.Set, migrate.Options{Logger: r.log, Locker: p.Lock, AllowOutOfOrder: r.cfg.AllowOutOfOrder, Version: version()})
	res, err := m.Up(ctx, target, 0)
	if err != nil {
		return 0, err
	}
	return len(res.FilesExecuted), nil
}

// cloneLocked clones under the lock, so that two runners do not both try
// and a drop (replace) never ends another runner's session mid-migration.
// It reports false when the database already existed and replace is off.
func (r *run) cloneLocked(ctx context.Context, p *provision.Provisioner, name string, replace bool) (bool, error) {
	unlock, err := p.Lock.Lock(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	exists, err := p.Exists(ctx, name)
	if err != nil {
		return false, err
	}
	if exists && !replace {
		return false, nil
	}
	if exists {
		if err := p.Drop(ctx, name); err != nil {
			return false, err
		}
		r.log.Warn("dropped database to clone it again", "database", name)
	}
	t0 := time.Now()
	if err := p.Clone(ctx, r.cfg.Template, name); err != nil {
		return false, err
	}
	r.log.Info("cloned database from template", "database", name, "template", r.cfg.Template, "duration_ms", time.Since(t0).Milliseconds())
	return true, nil
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
		if name == r.cfg.Template {
			return &usageError{fmt.Sprintf("dbinit clone: %q is the template itself", name)}
		}
		p, err := r.provisioner(ctx)
		if err != nil {
			return err
		}
		defer p.Maint.Close(context.WithoutCancel(ctx))
		// A clone of a stale template would be wrong; building is a no-op
		// when the template is current.
		if _, err := p.EnsureTemplate(ctx, r.cfg.Template); err != nil {
			return err
		}
		exists, err := p.Exists(ctx, name)
		if err != nil {
			return err
		}
		if exists && !*replace {
			return &usageError{fmt.Sprintf("dbinit clone: database %q already exists; add --replace to drop and re-create it", name)}
		}
		created, err := r.cloneLocked(ctx, p, name, *replace)
		if err != nil {
			return err
		}
		if !created {
			return &usageError{fmt.Sprintf("dbinit clone: database %q was created by another runner meanwhile", name)}
		}
		// The template may have been rebuilt from other files between the
		// build and the clone; catch up, normally a no-op.
		if _, err := r.catchUp(ctx, p, name); err != nil {
			return err
		}
		fmt.Fprintln(r.stdout, name)
		return nil
	}
}

// serverMajor is the server's major version, 17 for "17.2 (Debian 17.2-1)".
func serverMajor(conn *pgx.Conn) int {
	v := conn.PgConn().ParameterStatus("server_version")
	n, _ := strconv.Atoi(strings.SplitN(strings.SplitN(v, ".", 2)[0], " ", 2)[0])
	return n
}
