package provision

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/catalog"
	"github.com/savvi-studio/dbinit/migrate"
)

// previous is the version of the file before version in set (0 when it is
// the first).
func previous(set *migrate.Set, version int64) int64 {
	var prev int64
	for _, m := range set.Migrations {
		if m.Version >= version {
			break
		}
		prev = m.Version
	}
	return prev
}

// quiet is a migrator for scratch databases: no lock, no log lines per file.
func (s *Server) quiet(set *migrate.Set) (*migrate.Migrator, error) {
	return migrate.New(set, migrate.Options{Logger: slog.New(slog.DiscardHandler), Locker: noLock{}, Version: s.version})
}

// GenerateDown writes the down file of version from the catalog: on a
// scratch database at the version before it, it reads the catalog, applies
// the up file, reads it again, and returns the SQL that goes back (see
// catalog.Down) with what it cannot undo. The scratch database is dropped
// afterwards, also on error.
func (s *Server) GenerateDown(ctx context.Context, t Target, database string, version int64) (sql string, warnings []string, err error) {
	if t.Set.Find(version) == nil {
		return "", nil, &migrate.PlanError{Problems: []string{fmt.Sprintf("there is no file with version %d in %s", version, t.Set.Dir)}}
	}
	err = s.Scratch(ctx, t, database, previous(t.Set, version), func(ctx context.Context, _ string, conn *pgx.Conn) error {
		before, err := catalog.Take(ctx, conn)
		if err != nil {
			return err
		}
		mig, err := s.quiet(t.Set)
		if err != nil {
			return err
		}
		if _, err := mig.Up(ctx, conn, migrate.UpOptions{To: version}); err != nil {
			return err
		}
		after, err := catalog.Take(ctx, conn)
		if err != nil {
			return err
		}
		sql, warnings = catalog.Down(before, after)
		return nil
	})
	return sql, warnings, err
}

// DownCheck is what check-down found for one version.
type DownCheck struct {
	Version int64
	Path    string // the down file
	NoDown  bool   // there is no down file to check
	// Missing are the catalog facts the database had before the up file
	// and lacks after the down file; Extra the ones it gained.
	Missing, Extra []string
	Err            error // the up or down file failed
	// Reapply: the up file failed when applied again after its down file
	// (the down file left schema or rows behind); the versions after it
	// were checked on a scratch database built anew.
	Reapply error
}

// OK reports whether the down file put the schema back as it was.
func (c DownCheck) OK() bool {
	return !c.NoDown && c.Err == nil && len(c.Missing) == 0 && len(c.Extra) == 0
}

// CheckDown proves each down file from version from on reverses its up
// file: on a scratch database, for each version in order, it takes the
// catalog's fingerprint, applies the up file, applies the down file,
// compares the fingerprint with the one before, and applies the up file
// again for the next version. When that last step fails (the down file
// left something behind), the next versions are checked on a scratch
// database built anew. A file that fails to run ends the check. Scratch
// databases are dropped afterwards.
func (s *Server) CheckDown(ctx context.Context, t Target, database string, from int64) ([]DownCheck, error) {
	var out []DownCheck
	next := max(from, 1)
	for next > 0 {
		start, resume := previous(t.Set, next), int64(0)
		err := s.Scratch(ctx, t, database, start, func(ctx context.Context, _ string, conn *pgx.Conn) error {
			mig, err := s.quiet(t.Set)
			if err != nil {
				return err
			}
			for i, m := range t.Set.Migrations {
				if m.Version <= start {
					continue
				}
				c := DownCheck{Version: m.Version, Path: m.Up.Path}
				if m.Down != nil {
					c.Path = m.Down.Path
				}
				snap, err := catalog.Take(ctx, conn)
				if err != nil {
					return err
				}
				before := snap.Fingerprint()
				if _, err := mig.Up(ctx, conn, migrate.UpOptions{To: m.Version}); err != nil {
					c.Err = err
					out = append(out, c)
					return nil
				}
				if m.Down == nil && len(m.Up.Statements) > 0 {
					c.NoDown = true
					out = append(out, c)
					continue
				}
				if _, err := mig.Down(ctx, conn, migrate.DownOptions{Steps: 1}); err != nil {
					c.Err = err
					out = append(out, c)
					return nil
				}
				if snap, err = catalog.Take(ctx, conn); err != nil {
					return err
				}
				c.Missing, c.Extra = catalog.Diff(before, snap.Fingerprint())
				if _, err := mig.Up(ctx, conn, migrate.UpOptions{To: m.Version}); err != nil {
					c.Reapply = err
					out = append(out, c)
					if i+1 < len(t.Set.Migrations) {
						resume = t.Set.Migrations[i+1].Version
					}
					return nil
				}
				out = append(out, c)
			}
			return nil
		})
		if err != nil {
			return out, err
		}
		next = resume
	}
	return out, nil
}
