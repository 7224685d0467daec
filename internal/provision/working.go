package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/migrate"
)

// What Init did to the working database.
const (
	StateCreated   = "created"   // it did not exist and was cloned from the template
	StateReset     = "reset"     // it was dropped and cloned again (reset requested)
	StateUpdated   = "updated"   // pending files were applied to it
	StateUnchanged = "unchanged" // it was up to date
)

// InitOutcome says what Init did.
type InitOutcome struct {
	Template      *TemplateOutcome
	Database      string
	State         string // StateCreated, StateReset, StateUpdated or StateUnchanged
	FilesApplied  int    // files applied to the working database itself
	CloneDuration time.Duration
	Result        *migrate.Result // of the files applied to the working database; nil when none were planned
}

// Init is `dbinit init`: build or reuse the template, then bring the
// working database to the template's state: clone it when it does not
// exist, apply what is pending when it does. Before anything is built, an
// existing working database is checked: it must be dbinit's to migrate
// (history, or empty) and its history must agree with the folder. It is
// dropped and cloned again only when reset is true, and only when dbinit
// made it.
func (s *Server) Init(ctx context.Context, t Target, database string, reset bool) (*InitOutcome, error) {
	out := &InitOutcome{Database: database, State: StateUnchanged}
	if err := s.checkWorkingName(t, database); err != nil {
		return out, err
	}
	w, err := s.openWorking(ctx, t, database, reset, 0)
	defer w.close(ctx)
	if err != nil {
		return out, err
	}
	if reset && w.exists {
		t.Rebuild = true // everything is made anew from the folder
	}
	tmpl, err := s.EnsureTemplate(ctx, t)
	out.Template = tmpl
	if err != nil {
		return out, err
	}
	if !w.exists || reset {
		if reset && w.exists {
			s.log.Warn("DBINIT_RESET=true: DROPPING the working database and every row in it, then cloning it again from the template",
				"database", database)
		}
		w.close(ctx) // a drop must not wait for our own session
		t0 := time.Now()
		m, created, err := s.cloneLocked(ctx, t, database, reset, KindWorking)
		if err != nil {
			return out, err
		}
		out.CloneDuration = time.Since(t0)
		switch {
		case created && reset:
			out.State, w.origin = StateReset, &m
		case created:
			out.State, w.origin = StateCreated, &m
		default:
			// Somebody else made it while the template was built: check it
			// as any existing database before migrating it.
			w.close(ctx)
			if w, err = s.openWorking(ctx, t, database, false, 0); err != nil {
				w.close(ctx)
				return out, err
			}
			defer w.close(ctx)
		}
	}
	// Also after a clone: another runner with other files (an older image)
	// may have rebuilt the template between our build and our clone. Up
	// takes no lock when nothing is pending, which is the normal case.
	return out, s.finishWorking(ctx, t, w, out)
}

// Update is `dbinit init` in production mode (no template): it brings the
// working database up to date with up only. It creates the database, empty,
// only when it does not exist (which needs CREATEDB); an existing one is
// checked as Init checks it, snapshotted and dumped when asked, then
// migrated. The working database may be the maintenance database here.
//
// to stops at that version (0 = all), for `dbinit up --to N`.
func (s *Server) Update(ctx context.Context, t Target, database string, to int64) (*InitOutcome, error) {
	out := &InitOutcome{Database: database, State: StateUnchanged}
	if err := s.reservedExceptMaintenance(database); err != nil {
		return out, err
	}
	exists, err := s.Exists(ctx, database)
	if err != nil {
		return out, err
	}
	if !exists {
		created, err := s.CreateIfMissing(ctx, t, database)
		if err != nil {
			return out, err
		}
		if created {
			out.State = StateCreated
		}
	}
	w, err := s.openWorking(ctx, t, database, false, to)
	defer w.close(ctx)
	if err != nil {
		return out, err
	}
	return out, s.finishWorking(ctx, t, w, out)
}

// working is the working database while Init or Update works on it.
type working struct {
	name    string
	exists  bool              // it existed when the run started
	conn    *pgx.Conn         // open while it is checked and migrated
	origin  *Marker           // to write into dbinit.origin: it was just made (or marked)
	pending int               // files the plan would apply to it
	applied []migrate.Applied // its history, as read when it was checked
	to      int64             // apply up to this version; 0 = all
}

func (w *working) close(ctx context.Context) {
	if w.conn != nil {
		w.conn.Close(context.WithoutCancel(ctx))
		w.conn = nil
	}
}

// openWorking looks at an existing working database before anything is
// built: it must be dbinit's to migrate (history, or empty) and its history
// must agree with the folder (drift stops the run here). With reset, it must
// be dbinit's own, to be dropped.
func (s *Server) openWorking(ctx context.Context, t Target, database string, reset bool, to int64) (*working, error) {
	w := &working{name: database, to: to}
	d, exists, err := s.info(ctx, database)
	if err != nil {
		return w, err
	}
	w.exists = exists
	if !exists {
		return w, nil
	}
	if reset {
		if ok, why, err := s.ours(ctx, d, KindWorking, KindClone); err != nil {
			return w, err
		} else if !ok {
			return w, &RefusedError{Database: database, Reason: "would be dropped for DBINIT_RESET, but " + why,
				Hint: "dbinit drops only databases it made; drop it yourself if you mean it, or unset DBINIT_RESET"}
		}
		return w, nil
	}
	if w.conn, err = s.connect(ctx, database); err != nil {
		return w, err
	}
	if err := s.CheckAdoptable(ctx, w.conn); err != nil {
		return w, err
	}
	applied, err := migrate.ReadHistory(ctx, w.conn)
	if err != nil {
		return w, err
	}
	plan, err := migrate.PlanUp(t.Set, applied, migrate.UpOptions{To: w.to, AllowOutOfOrder: t.AllowOutOfOrder})
	if err != nil {
		return w, err
	}
	w.pending, w.applied = len(plan.Steps), applied
	if d.creating() {
		// An earlier run created it (a clone, or up's empty database) and
		// was killed before marking it; it passed the checks of any
		// existing database above. Finish the marking, under its lock.
		unlock, err := t.Lock(database).Lock(ctx)
		if err != nil {
			return w, err
		}
		defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
		if d2, ok, err := s.info(ctx, database); err != nil || !ok || d2.OID != d.OID || !d2.creating() {
			return w, err // marked by another runner meanwhile, or gone
		}
		m, err := s.mark(ctx, database, Marker{Kind: KindWorking})
		if err != nil {
			return w, err
		}
		s.log.Info("marked a working database an interrupted run created", "database", database)
		w.origin = &m
	}
	return w, nil
}

// finishWorking snapshots and dumps an existing working database that has
// files pending (as the target asks), applies them, and verifies the
// result.
func (s *Server) finishWorking(ctx context.Context, t Target, w *working, out *InitOutcome) error {
	if w.exists && w.pending > 0 && out.State == StateUnchanged {
		if (t.Snapshot != SnapshotNever && t.Snapshot != "") || t.Dump != nil {
			// A copy needs the database to itself; a dump may take long
			// enough for an idle connection to be cut: a new one after.
			w.close(ctx)
		}
		if _, err := s.Snapshot(ctx, w.name, t.Snapshot, t.SnapshotKeep); err != nil {
			return err
		}
		if t.Dump != nil {
			path, err := t.Dump(ctx, w.name)
			if err != nil {
				return err
			}
			s.log.Info("dump written before migrating", "database", w.name, "file", path)
		}
	}
	if w.exists && w.pending == 0 && w.origin == nil && w.conn != nil && out.State == StateUnchanged {
		// Nothing to do (the common case): the history read above is
		// current; verify it without reading it again.
		out.Result = &migrate.Result{Database: w.name}
		return migrate.VerifyHistory(ctx, w.conn, t.Set, w.to, w.applied)
	}
	if w.conn == nil {
		var err error
		if w.conn, err = s.connect(ctx, w.name); err != nil {
			return err
		}
	}
	res, err := s.migrateTo(ctx, t, w.conn, w.name, w.origin, w.to)
	out.FilesApplied = len(res.FilesExecuted)
	out.Result = res
	if out.FilesApplied > 0 && out.State == StateUnchanged {
		out.State = StateUpdated
	}
	if err != nil {
		return err
	}
	return migrate.Verify(ctx, w.conn, t.Set, w.to)
}

// checkWorkingName refuses names dbinit must never migrate or replace in
// template mode.
func (s *Server) checkWorkingName(t Target, name string) error {
	if name == t.Template {
		return &RefusedError{Database: name, Reason: "is the template itself", Hint: "the working database and every clone need a name of their own"}
	}
	return s.Reserved(name)
}

// CloneTemplate is `dbinit clone`: it creates database name from the
// template, building the template first when the folder added files. An
// existing name is an *ExistsError unless replace is set, which drops it
// first, and only if dbinit made it.
func (s *Server) CloneTemplate(ctx context.Context, t Target, name string, replace bool) error {
	if err := s.checkWorkingName(t, name); err != nil {
		return err
	}
	// A clone of a stale template would be wrong; building is a no-op when
	// the template is current.
	if _, err := s.EnsureTemplate(ctx, t); err != nil {
		return err
	}
	exists, err := s.Exists(ctx, name)
	if err != nil {
		return err
	}
	if exists && !replace {
		return &ExistsError{Database: name, Hint: "add --replace to drop and re-create it"}
	}
	m, created, err := s.cloneLocked(ctx, t, name, replace, KindClone)
	if err != nil {
		return err
	}
	if !created {
		return &ExistsError{Database: name, Hint: "another runner created it meanwhile"}
	}
	// The template may have been rebuilt from other files between the build
	// and the clone; catch up, normally a no-op.
	conn, err := s.connect(ctx, name)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = s.catchUp(ctx, t, conn, name, &m)
	return err
}

// CreateIfMissing creates database name, empty and marked as dbinit's,
// when it does not exist, under its lock; `dbinit up` uses it. It reports
// whether it created it.
func (s *Server) CreateIfMissing(ctx context.Context, t Target, name string) (bool, error) {
	if err := s.checkWorkingName(t, name); err != nil {
		return false, err
	}
	exists, err := s.Exists(ctx, name)
	if err != nil || exists {
		return false, err
	}
	unlock, err := t.Lock(name).Lock(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	if exists, err = s.Exists(ctx, name); err != nil || exists {
		return false, err
	}
	if err := s.Create(ctx, name, t.Owner); err != nil {
		return false, err
	}
	if err := s.markNew(ctx, name, KindWorking); err != nil {
		return false, err
	}
	s.log.Info("created empty database", "database", name)
	return true, nil
}

// markNew marks a database dbinit just created: the comment, then the row
// inside. A database that cannot be marked is dropped again, so nothing
// unmarked is left that dbinit made.
func (s *Server) markNew(ctx context.Context, name, kind string) error {
	err := func() error {
		m, err := s.mark(ctx, name, Marker{Kind: kind})
		if err != nil {
			return err
		}
		conn, err := s.connect(ctx, name)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return writeOrigin(ctx, conn, m)
	}()
	if err != nil {
		if derr := s.Drop(context.WithoutCancel(ctx), name); derr != nil {
			s.log.Error("could not drop a database dbinit could not mark", "database", name, "error", derr)
		}
		return fmt.Errorf("mark %s as dbinit's: %w", name, err)
	}
	return nil
}

// cloneLocked clones under the template's lock (so it does not change
// meanwhile) and the database's own (so two runners do not both clone,
// and a drop never ends another runner's migration). It reports false when
// the database already existed and replace is off. replace drops an
// existing database only when dbinit made it, as a working database or a
// clone. The clone is marked as kind.
func (s *Server) cloneLocked(ctx context.Context, t Target, name string, replace bool, kind string) (Marker, bool, error) {
	unlockT, err := t.Lock(t.Template).Lock(ctx)
	if err != nil {
		return Marker{}, false, err
	}
	defer func() { _ = unlockT(context.WithoutCancel(ctx)) }()
	unlock, err := t.Lock(name).Lock(ctx)
	if err != nil {
		return Marker{}, false, err
	}
	defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	d, exists, err := s.info(ctx, name)
	if err != nil {
		return Marker{}, false, err
	}
	if exists && !replace {
		return Marker{}, false, nil
	}
	if exists {
		ok, why, err := s.ours(ctx, d, KindWorking, KindClone)
		if err != nil {
			return Marker{}, false, err
		}
		if !ok {
			return Marker{}, false, &RefusedError{Database: name, Reason: "would be replaced, but " + why,
				Hint: "dbinit drops only databases it made; drop it yourself if you mean it"}
		}
		if err := s.Drop(ctx, name); err != nil {
			return Marker{}, false, err
		}
		s.log.Warn("dropped database to clone it again", "database", name)
	}
	t0 := time.Now()
	if err := s.Clone(ctx, t.Template, name, CloneOptions{Owner: t.Owner, Strategy: t.Strategy}); err != nil {
		return Marker{}, false, err
	}
	m, err := s.mark(ctx, name, Marker{Kind: kind})
	if err != nil {
		if derr := s.Drop(context.WithoutCancel(ctx), name); derr != nil {
			s.log.Error("could not drop a clone dbinit could not mark", "database", name, "error", derr)
		}
		return Marker{}, false, err
	}
	s.log.Info("cloned database from template", "database", name, "template", t.Template, "duration_ms", time.Since(t0).Milliseconds())
	return m, true, nil
}

// catchUp applies what is pending to the database conn is connected to.
// origin, when set, is the marker of a database just cloned: its row
// replaces the one the clone inherited from the template.
func (s *Server) catchUp(ctx context.Context, t Target, conn *pgx.Conn, name string, origin *Marker) (int, error) {
	res, err := s.migrateTo(ctx, t, conn, name, origin, 0)
	return len(res.FilesExecuted), err
}

// migrateTo applies what is pending up to version to (0 = all). The
// Result is never nil.
func (s *Server) migrateTo(ctx context.Context, t Target, conn *pgx.Conn, name string, origin *Marker, to int64) (*migrate.Result, error) {
	if origin != nil {
		if err := writeOrigin(ctx, conn, *origin); err != nil {
			return &migrate.Result{Database: name}, fmt.Errorf("mark %s as dbinit's: %w", name, err)
		}
	}
	m, err := migrate.New(t.Set, migrate.Options{Logger: s.log, Locker: t.Lock(name), Version: s.version,
		DDLLockTimeout: t.DDLLockTimeout, DDLRetryTimeout: t.DDLRetryTimeout, StatementTimeout: t.StatementTimeout})
	if err != nil {
		return &migrate.Result{Database: name}, err
	}
	return m.Up(ctx, conn, migrate.UpOptions{To: to, AllowOutOfOrder: t.AllowOutOfOrder})
}

// userObjects says whether a database holds anything of its users: a
// relation, routine, type or schema outside the system schemas and dbinit's
// own, not installed by an extension (template1 may carry extensions, and
// every new database has them).
const userObjects = `
WITH user_ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'dbinit')
      AND nspname !~ '^pg_(toast|temp_|toast_temp_)'
), ext AS (
    SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
)
SELECT
    EXISTS (SELECT 1 FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
            WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_class'::regclass AND objid = c.oid))
 OR EXISTS (SELECT 1 FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
            WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_proc'::regclass AND objid = p.oid))
 OR EXISTS (SELECT 1 FROM pg_type ty JOIN user_ns n ON n.oid = ty.typnamespace
            WHERE ty.typtype IN ('e', 'd', 'r', 'm')
              AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_type'::regclass AND objid = ty.oid))
 OR EXISTS (SELECT 1 FROM user_ns n WHERE n.nspname <> 'public'
            AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_namespace'::regclass AND objid = n.oid))`

// CheckAdoptable refuses a database that holds objects but no dbinit
// history, as Flyway refuses a non-empty schema: applying every migration
// to somebody else's database would fail half-way or, worse, succeed. An
// empty database, or one with a history, is fine. conn is connected to it.
func (s *Server) CheckAdoptable(ctx context.Context, conn *pgx.Conn) error {
	var hasHistory bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('dbinit.schema_migrations') IS NOT NULL`).Scan(&hasHistory); err != nil {
		return fmt.Errorf("read history of %s: %w", conn.Config().Database, err)
	}
	if hasHistory {
		return nil
	}
	var nonEmpty bool
	if err := conn.QueryRow(ctx, userObjects).Scan(&nonEmpty); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return fmt.Errorf("look into %s: %w", conn.Config().Database, err)
		}
		return err
	}
	if nonEmpty {
		return &RefusedError{Database: conn.Config().Database, Reason: "is not empty and has no dbinit history, so dbinit does not know which migrations it already has",
			Hint: "adopt it with `dbinit baseline --version N` (N: the last file whose changes it already has), or choose another database"}
	}
	return nil
}
