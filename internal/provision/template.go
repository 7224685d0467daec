package provision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/internal/retry"
	"github.com/savvi-studio/dbinit/migrate"
)

// Target is what a run manages on a server: a template built from a
// migration set, and the databases cloned from it.
type Target struct {
	Template string       // "savvi_studio_template"
	Set      *migrate.Set // the migrations the template is built from
	// Lock serialises runners; it is held on the maintenance connection
	// around every change and must be reentrant on that session (an
	// advisory lock is).
	Lock    migrate.Locker
	Version string // dbinit's version, recorded in history rows and the marker, "v1.2.0"
	// Owner of the databases created from the template; "" = the
	// connecting user.
	Owner string
	// Strategy for CREATE DATABASE ... TEMPLATE: StrategyWALLog,
	// StrategyFileCopy or StrategyDefault.
	Strategy string
	// AllowOutOfOrder applies, when catching a database up, a new file
	// below the highest applied version.
	AllowOutOfOrder bool
}

// TemplateOutcome says what EnsureTemplate did.
type TemplateOutcome struct {
	Name     string
	Built    bool            // false: an up-to-date template was reused
	Result   *migrate.Result // the build's result, when built (also when the build failed)
	Duration time.Duration
}

// templateInfo is what the server says about a template name.
type templateInfo struct {
	exists, isTemplate bool
	comment            string
}

func (s *Server) inspect(ctx context.Context, name string) (templateInfo, error) {
	var ti templateInfo
	err := s.conn.QueryRow(ctx, `
SELECT datistemplate, coalesce(shobj_description(oid, 'pg_database'), '')
FROM pg_database WHERE datname = $1`, name).Scan(&ti.isTemplate, &ti.comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return ti, nil
	}
	if err != nil {
		return ti, fmt.Errorf("inspect %s: %w", name, err)
	}
	ti.exists = true
	return ti, nil
}

// complete reports whether the template is finished and built from hash.
func (ti templateInfo) complete(hash string) bool {
	m, ok := ParseMarker(ti.comment)
	return ti.exists && ti.isTemplate && ok && m.Set == hash
}

// EnsureTemplate reuses t.Template when it is complete and built from
// t.Set, and builds it otherwise. Reuse takes no lock.
func (s *Server) EnsureTemplate(ctx context.Context, t Target) (*TemplateOutcome, error) {
	start := time.Now()
	out := &TemplateOutcome{Name: t.Template}
	hash := t.Set.Hash()
	ti, err := s.inspect(ctx, t.Template)
	if err != nil {
		return nil, err
	}
	if err := s.checkOurs(t.Template, ti); err != nil {
		return nil, err
	}
	if ti.complete(hash) {
		leftovers, err := s.leftovers(ctx, t.Template)
		if err != nil || len(leftovers) == 0 {
			out.Duration = time.Since(start)
			return out, err
		}
	}
	unlock, err := t.Lock.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	// Under the lock nobody else builds, so every build database left is
	// from a runner that died.
	s.dropLeftovers(ctx, t.Template)
	// Another runner may have built it while we waited for the lock.
	if ti, err = s.inspect(ctx, t.Template); err != nil {
		return nil, err
	}
	if err := s.checkOurs(t.Template, ti); err != nil {
		return nil, err
	}
	if ti.complete(hash) {
		out.Duration = time.Since(start)
		return out, nil
	}
	res, err := s.build(ctx, t, hash, ti)
	out.Built, out.Result, out.Duration = true, res, time.Since(start)
	return out, err
}

// reserved reports whether name is a database PostgreSQL or dbinit needs
// for itself.
func (s *Server) reserved(name string) bool {
	return name == "template0" || name == "template1" || name == "postgres" || name == s.conn.Config().Database
}

// checkOurs refuses to build over a database dbinit did not make: a wrong
// DBINIT_TEMPLATE must never replace (and so drop) somebody's data.
func (s *Server) checkOurs(name string, ti templateInfo) error {
	switch {
	case s.reserved(name):
		return &RefusedError{Database: name, Reason: "is a database PostgreSQL or dbinit needs for itself", Hint: "choose another DBINIT_TEMPLATE"}
	case ti.exists && !strings.HasPrefix(ti.comment, markerPrefix):
		return &RefusedError{Database: name, Reason: fmt.Sprintf("exists and was not made by dbinit (its comment does not start with %q)", markerPrefix),
			Hint: "dbinit will not replace it: choose another DBINIT_TEMPLATE, or drop it yourself"}
	}
	return nil
}

// Build databases are named <template>_build_<8 hex> and a replaced
// template <template>_old_<8 hex> until it is dropped.
func leftoverRE(name string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(tempPrefix(name)) + `_(build|old)_[0-9a-f]{8}$`)
}

// tempPrefix keeps temporary names within 63 bytes.
func tempPrefix(name string) string {
	const room = 63 - len("_build_") - 8
	if len(name) > room {
		name = name[:room]
		// Do not cut a UTF-8 sequence in half.
		for len(name) > 0 && name[len(name)-1]&0xC0 == 0x80 {
			name = name[:len(name)-1]
		}
		if len(name) > 0 && name[len(name)-1] >= 0xC0 {
			name = name[:len(name)-1]
		}
	}
	return name
}

func tempName(name, kind string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return tempPrefix(name) + "_" + kind + "_" + hex.EncodeToString(b[:])
}

func (s *Server) leftovers(ctx context.Context, name string) ([]string, error) {
	rows, err := s.conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, tempPrefix(name)+"_")
	if err != nil {
		return nil, fmt.Errorf("list leftover builds: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list leftover builds: %w", err)
	}
	re := leftoverRE(name)
	var out []string
	for _, n := range names {
		if re.MatchString(n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// dropLeftovers removes build databases of runners that died. One with a
// session is in use (a runner locking on another maintenance database, which
// dbinit's lock cannot see) and is left alone; one that cannot be dropped is
// reported and does not stop the run.
func (s *Server) dropLeftovers(ctx context.Context, name string) {
	left, err := s.leftovers(ctx, name)
	if err != nil {
		s.log.Warn("could not list leftover builds", "error", err)
		return
	}
	for _, db := range left {
		n, err := s.sessions(ctx, db)
		if err != nil || n > 0 {
			s.log.Warn("leaving a build database that is in use", "database", db, "sessions", n)
			continue
		}
		s.log.Info("dropping leftover of an interrupted build", "database", db)
		if err := s.Drop(ctx, db); err != nil {
			s.log.Warn("could not drop a leftover build", "database", db, "error", err)
		}
	}
}

// build applies the whole set to a fresh database and swaps it in.
func (s *Server) build(ctx context.Context, t Target, hash string, old templateInfo) (*migrate.Result, error) {
	buildName := tempName(t.Template, "build")
	s.log.Info("building template", "template", t.Template, "build_database", buildName, "files", len(t.Set.Migrations))
	if err := s.Create(ctx, buildName, ""); err != nil {
		return nil, fmt.Errorf("create build database: %w", err)
	}
	res, err := s.migrateBuild(ctx, t, buildName)
	if err == nil {
		m := Marker{Set: hash, Files: len(t.Set.Migrations), Latest: t.Set.Latest(), Built: time.Now().UTC().Truncate(time.Second), Version: t.Version}
		err = s.swap(ctx, t.Template, buildName, m, old)
	}
	if err != nil {
		// A failed build is simply dropped; the old template stays as it was.
		if derr := s.Drop(context.WithoutCancel(ctx), buildName); derr != nil {
			s.log.Error("could not drop the failed build; the next run will", "database", buildName, "error", derr)
		}
		return res, err
	}
	return res, nil
}

func (s *Server) migrateBuild(ctx context.Context, t Target, buildName string) (*migrate.Result, error) {
	conn, err := s.connect(ctx, buildName)
	if err != nil {
		return nil, fmt.Errorf("connect to build database %s: %w", buildName, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := migrate.New(t.Set, migrate.Options{
		Logger:  s.log,
		Locker:  noLock{}, // the build database is private, and we hold the lock
		Version: t.Version,
	})
	if err != nil {
		return nil, err
	}
	// One commit per file, as in `up`: a file may need the one before it
	// committed (ALTER TYPE ... ADD VALUE, pending trigger events), and
	// asynchronous commit makes the extra commits cheap.
	return m.Up(ctx, conn, migrate.UpOptions{})
}

// swap puts the build in place of the old template in one transaction:
// rename the old template away, rename the build to the template's name, and
// mark it complete. Then the old one is dropped.
func (s *Server) swap(ctx context.Context, name, buildName string, m Marker, old templateInfo) error {
	var trash string
	if old.exists {
		trash = tempName(name, "old")
		// Renaming needs the database to have no sessions. Close the door,
		// then end whoever is still inside (a connection held open to the
		// template must not block the rebuild).
		if _, err := s.conn.Exec(ctx, "ALTER DATABASE "+dbconn.Ident(name)+" ALLOW_CONNECTIONS false"); err != nil {
			return fmt.Errorf("close template %s to new connections: %w", name, err)
		}
		if err := s.terminate(ctx, name); err != nil {
			return err
		}
	}
	// 55006: a session still starting up on the old template, which
	// pg_stat_activity did not show yet. End it and try again.
	err := retry.Do(ctx, retry.Policy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Attempts: 5}, func(ctx context.Context, a retry.Attempt) error {
		if a.N > 1 && old.exists {
			if err := s.terminate(ctx, name); err != nil {
				return err
			}
		}
		err := s.swapOnce(ctx, name, buildName, trash, m.Comment(), old.exists)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" {
			return retry.Again(err)
		}
		return err
	})
	var ex *retry.ExhaustedError
	if errors.As(err, &ex) {
		err = ex.Last
	}
	if err != nil {
		return fmt.Errorf("swap in template %s: %w", name, err)
	}
	s.log.Info("template ready", "template", name, "set", m.Set[:12])
	if trash != "" {
		if err := s.Drop(ctx, trash); err != nil {
			s.log.Warn("could not drop the previous template; the next run will", "database", trash, "error", err)
		}
	}
	return nil
}

// swapOnce renames and marks in one transaction.
func (s *Server) swapOnce(ctx context.Context, name, buildName, trash, comment string, oldExists bool) error {
	return pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		stmts := []string{}
		if oldExists {
			stmts = append(stmts,
				"ALTER DATABASE "+dbconn.Ident(name)+" IS_TEMPLATE false",
				"ALTER DATABASE "+dbconn.Ident(name)+" RENAME TO "+dbconn.Ident(trash))
		}
		stmts = append(stmts,
			"ALTER DATABASE "+dbconn.Ident(buildName)+" RENAME TO "+dbconn.Ident(name),
			"COMMENT ON DATABASE "+dbconn.Ident(name)+" IS "+dbconn.Literal(comment),
			// Marked complete last, in the same transaction as the rename.
			"ALTER DATABASE "+dbconn.Ident(name)+" IS_TEMPLATE true ALLOW_CONNECTIONS false")
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
}

// terminate ends every session on database name and waits, up to 10s,
// until they are gone.
func (s *Server) terminate(ctx context.Context, name string) error {
	err := retry.Do(ctx, retry.Policy{Initial: 100 * time.Millisecond, Max: 100 * time.Millisecond, Timeout: 10 * time.Second}, func(ctx context.Context, a retry.Attempt) error {
		var left int
		err := s.conn.QueryRow(ctx, `
SELECT count(*) FROM (
  SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
) t`, name).Scan(&left)
		if err != nil {
			return fmt.Errorf("end sessions on %s: %w", name, err)
		}
		if left == 0 {
			return nil
		}
		if a.N == 1 {
			s.log.Warn("ended sessions connected to the old template", "template", name, "sessions", left)
		}
		return retry.Again(fmt.Errorf("%d still connected", left))
	})
	var ex *retry.ExhaustedError
	if errors.As(err, &ex) {
		return fmt.Errorf("end sessions on %s: %v after %s", name, ex.Last, ex.Elapsed.Round(time.Second))
	}
	return err
}

// noLock is for databases nobody else can see.
type noLock struct{}

func (noLock) Lock(context.Context) (func(context.Context) error, error) {
	return func(context.Context) error { return nil }, nil
}
