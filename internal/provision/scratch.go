package provision

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/migrate"
)

// Latest asks Scratch for the set's latest version.
const Latest = -1

// Scratch gives fn a private database at version to of t.Set (Latest for
// the set's last version, 0 for an empty database) and a connection to it,
// and drops it afterwards, also when fn fails: a copy of the
// template when the template holds exactly those files (EnsureTemplate
// builds or updates it first), otherwise an empty database migrated to
// that version. It is named like the template's other temporary databases
// (<template>_check_<hex>) and marked, so an interrupted run's copy is
// dropped by the next build. In production mode (no template) it is
// always built, and named after the working database.
func (s *Server) Scratch(ctx context.Context, t Target, database string, to int64, fn func(ctx context.Context, name string, conn *pgx.Conn) error) error {
	latest := t.Set.Latest()
	if to < 0 || to > latest {
		to = latest
	}
	prefix := t.Template
	if prefix == "" || prefix == "none" {
		prefix = database
	}
	name := tempName(prefix, "check")
	created := false
	defer func() {
		if !created {
			return
		}
		if err := s.Drop(context.WithoutCancel(ctx), name); err != nil {
			s.log.Warn("could not drop the scratch database; drop it yourself (it is dbinit's)", "database", name, "error", err)
		}
	}()
	fromTemplate := prefix == t.Template && to == latest
	if fromTemplate {
		if _, err := s.EnsureTemplate(ctx, t); err != nil {
			return err
		}
		if err := s.Clone(ctx, t.Template, name, CloneOptions{Strategy: t.Strategy}); err != nil {
			return fmt.Errorf("copy the template into a scratch database: %w", err)
		}
	} else if err := s.Create(ctx, name, ""); err != nil {
		return fmt.Errorf("create a scratch database: %w", err)
	}
	created = true
	m, err := s.mark(ctx, name, Marker{Kind: KindCheck})
	if err != nil {
		return err
	}
	conn, err := s.connect(ctx, name)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := writeOrigin(ctx, conn, m); err != nil {
		return fmt.Errorf("mark %s: %w", name, err)
	}
	if !fromTemplate && to > 0 {
		mig, err := migrate.New(t.Set, migrate.Options{Logger: s.log, Locker: noLock{}, Version: s.version})
		if err != nil {
			return err
		}
		if _, err := mig.Up(ctx, conn, migrate.UpOptions{To: to}); err != nil {
			return err
		}
	}
	// The connection stays open while fn runs: a build of the template
	// drops leftover scratch databases, but only those nobody is
	// connected to.
	return fn(ctx, name, conn)
}
