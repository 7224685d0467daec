package provision

import (
	"context"
	"time"

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
}

// Init is `dbinit init`: build or reuse the template, then bring the
// working database to the template's state: clone it when it does not
// exist, apply what is pending when it does. It is dropped and cloned again
// only when reset is true.
func (s *Server) Init(ctx context.Context, t Target, database string, reset bool) (*InitOutcome, error) {
	out := &InitOutcome{Database: database, State: StateUnchanged}
	tmpl, err := s.EnsureTemplate(ctx, t)
	out.Template = tmpl
	if err != nil {
		return out, err
	}
	exists, err := s.Exists(ctx, database)
	if err != nil {
		return out, err
	}
	if !exists || reset {
		if reset && exists {
			s.log.Warn("DBINIT_RESET=true: DROPPING the working database and every row in it, then cloning it again from the template",
				"database", database)
		}
		t0 := time.Now()
		created, err := s.cloneLocked(ctx, t, database, reset)
		if err != nil {
			return out, err
		}
		out.CloneDuration = time.Since(t0)
		switch {
		case created && reset:
			out.State = StateReset
		case created:
			out.State = StateCreated
		}
	}
	// Also after a clone: another runner with other files (an older image)
	// may have rebuilt the template between our build and our clone. Up
	// takes no lock when nothing is pending, which is the normal case.
	applied, err := s.catchUp(ctx, t, database)
	if err != nil {
		return out, err
	}
	out.FilesApplied = applied
	if applied > 0 && out.State == StateUnchanged {
		out.State = StateUpdated
	}
	return out, nil
}

// CloneTemplate is `dbinit clone`: it creates database name from the
// template, building the template first when it is stale. An existing name
// is an *ExistsError unless replace is set, which drops it first.
func (s *Server) CloneTemplate(ctx context.Context, t Target, name string, replace bool) error {
	if name == t.Template {
		return &RefusedError{Database: name, Reason: "is the template itself", Hint: "give the clone another name"}
	}
	if s.reserved(name) {
		return &RefusedError{Database: name, Reason: "is a database PostgreSQL or dbinit needs for itself", Hint: "give the clone another name"}
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
	created, err := s.cloneLocked(ctx, t, name, replace)
	if err != nil {
		return err
	}
	if !created {
		return &ExistsError{Database: name, Hint: "another runner created it meanwhile"}
	}
	// The template may have been rebuilt from other files between the build
	// and the clone; catch up, normally a no-op.
	_, err = s.catchUp(ctx, t, name)
	return err
}

// CreateIfMissing creates database name, empty, when it does not exist,
// under the lock; `dbinit up` uses it. It reports whether it created it.
func (s *Server) CreateIfMissing(ctx context.Context, t Target, name string) (bool, error) {
	exists, err := s.Exists(ctx, name)
	if err != nil || exists {
		return false, err
	}
	unlock, err := t.Lock.Lock(ctx)
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
	s.log.Info("created empty database", "database", name)
	return true, nil
}

// cloneLocked clones under the lock, so that two runners do not both try
// and a drop (replace) never ends another runner's session mid-migration.
// It reports false when the database already existed and replace is off.
func (s *Server) cloneLocked(ctx context.Context, t Target, name string, replace bool) (bool, error) {
	unlock, err := t.Lock.Lock(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	exists, err := s.Exists(ctx, name)
	if err != nil {
		return false, err
	}
	if exists && !replace {
		return false, nil
	}
	if exists {
		if err := s.Drop(ctx, name); err != nil {
			return false, err
		}
		s.log.Warn("dropped database to clone it again", "database", name)
	}
	t0 := time.Now()
	if err := s.Clone(ctx, t.Template, name, CloneOptions{Owner: t.Owner, Strategy: t.Strategy}); err != nil {
		return false, err
	}
	s.log.Info("cloned database from template", "database", name, "template", t.Template, "duration_ms", time.Since(t0).Milliseconds())
	return true, nil
}

// catchUp applies what is pending to database name.
func (s *Server) catchUp(ctx context.Context, t Target, name string) (int, error) {
	conn, err := s.connect(ctx, name)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := migrate.New(t.Set, migrate.Options{Logger: s.log, Locker: t.Lock, Version: t.Version})
	if err != nil {
		return 0, err
	}
	res, err := m.Up(ctx, conn, migrate.UpOptions{AllowOutOfOrder: t.AllowOutOfOrder})
	return len(res.FilesExecuted), err
}
