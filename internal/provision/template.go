package provision

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/internal/retry"
	"github.com/savvi-studio/dbinit/migrate"
)

// LockFunc returns the lock that serialises runners working on the named
// database (the template, or a database made from it). Locks on different
// names must not wait for each other; a lock must be reentrant on its
// session (advisory locks are).
type LockFunc func(database string) migrate.Locker

// Target is what a run manages on a server: a template built from a
// migration set, and the databases cloned from it.
type Target struct {
	Template string       // "savvi_studio_template"
	Set      *migrate.Set // the migrations the template is built from
	Lock     LockFunc     // taken on the template, and on each database made from it, around every change
	// Owner of the databases created from the template; "" = the
	// connecting user.
	Owner string
	// Strategy for CREATE DATABASE ... TEMPLATE: StrategyWALLog,
	// StrategyFileCopy or StrategyDefault.
	Strategy string
	// AllowOutOfOrder applies, when catching a database up, a new file
	// below the highest applied version.
	AllowOutOfOrder bool
	// Rebuild replaces a template whose files disagree with the folder (an
	// applied file edited or removed). Without it that is a
	// *TemplateDriftError; a folder that only adds files is always built.
	Rebuild bool
	// Timeouts of migration statements on the working database and clones
	// (see migrate.Options); template builds run on a private database and
	// need none.
	DDLLockTimeout, DDLRetryTimeout, StatementTimeout time.Duration
	// Before files are applied to an existing working database: a snapshot
	// (SnapshotNever, SnapshotAuto, SnapshotAlways; keeping SnapshotKeep of
	// them) and, when Dump is set, a dump (it returns the file written).
	Snapshot     string
	SnapshotKeep int
	Dump         func(ctx context.Context, database string) (path string, err error)
	// Siblings is the name prefix of other templates of the same folder
	// (dbtest's, one per set hash): a missing template is built from the
	// newest of them whose files the set only extends.
	Siblings string
}

// TemplateOutcome says what EnsureTemplate did.
type TemplateOutcome struct {
	Name  string
	Built bool // false: an up-to-date template was reused
	// From is the template the build started from when the folder only
	// added files to it ("" = built from an empty database).
	From     string
	Result   *migrate.Result // the build's result, when built (also when the build failed)
	Duration time.Duration
}

// templateMarker reads a template's marker: one dbinit wrote for this
// database, or the comment of a dbinit that did not mark OIDs yet, which
// counts only on a database marked IS_TEMPLATE under the template's own
// name (so an upgraded dbinit can replace the template an older one built).
func (d dbInfo) templateMarker() (Marker, bool) {
	if m, ok := d.marker(); ok {
		return m, m.Kind == KindTemplate
	}
	m, ok := ParseMarker(d.Comment)
	return m, ok && m.Kind == KindTemplate && m.OID == 0 && d.IsTemplate
}

// complete reports whether the template is finished and built from hash.
func (d dbInfo) complete(hash string) bool {
	m, ok := d.templateMarker()
	return ok && d.IsTemplate && m.Set == hash
}

// EnsureTemplate reuses t.Template when it is complete and built from
// t.Set, and builds it otherwise. Reuse takes no lock. A template built from
// files the folder no longer has as they were is a *TemplateDriftError
// unless t.Rebuild is set.
func (s *Server) EnsureTemplate(ctx context.Context, t Target) (*TemplateOutcome, error) {
	start := time.Now()
	out := &TemplateOutcome{Name: t.Template}
	if err := s.Reserved(t.Template); err != nil {
		return nil, err
	}
	hash := t.Set.Hash()
	d, exists, err := s.info(ctx, t.Template)
	if err != nil {
		return nil, err
	}
	if exists {
		if err := s.checkTemplate(d); err != nil {
			return nil, err
		}
	}
	if exists && d.complete(hash) {
		leftovers, err := s.leftovers(ctx, t.Template)
		if err != nil || len(leftovers) == 0 {
			out.Duration = time.Since(start)
			return out, err
		}
	}
	unlock, err := t.Lock(t.Template).Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	// Under the lock nobody else builds, so every build database left is
	// from a runner that died.
	s.dropLeftovers(ctx, t.Template)
	// Another runner may have built it while we waited for the lock.
	if d, exists, err = s.info(ctx, t.Template); err != nil {
		return nil, err
	}
	from := ""
	if exists {
		if err := s.checkTemplate(d); err != nil {
			return nil, err
		}
		if d.complete(hash) {
			out.Duration = time.Since(start)
			return out, nil
		}
		switch {
		case s.extends(d, t.Set):
			from = t.Template // only new files: start from it
		case !t.Rebuild:
			if err := s.templateDrift(ctx, t, d); err != nil {
				return nil, err
			}
		}
	} else if t.Siblings != "" {
		from = s.nearest(ctx, t)
	}
	res, from, err := s.build(ctx, t, hash, exists, from)
	out.Built, out.Result, out.From, out.Duration = true, res, from, time.Since(start)
	return out, err
}

// nearest returns the newest template named with t.Siblings whose files
// t.Set only extends, or "".
func (s *Server) nearest(ctx context.Context, t Target) string {
	rows, err := s.conn.Query(ctx, `SELECT `+dbColumns+` FROM pg_database WHERE datistemplate AND starts_with(datname, $1)`, t.Siblings)
	if err != nil {
		return ""
	}
	dbs, err := pgx.CollectRows(rows, scanDB)
	if err != nil {
		return ""
	}
	best, bestLatest := "", int64(-1)
	for _, d := range dbs {
		m, ok := d.templateMarker()
		if ok && m.Latest > bestLatest && s.extends(d, t.Set) {
			best, bestLatest = d.Name, m.Latest
		}
	}
	return best
}

// checkTemplate refuses to replace a database that is not a template dbinit
// made: a wrong DBINIT_TEMPLATE must never drop somebody's data.
func (s *Server) checkTemplate(d dbInfo) error {
	if _, ok := d.templateMarker(); ok {
		return nil
	}
	why := "has no dbinit marker (dbinit did not make it)"
	if m, ok := ParseMarker(d.Comment); ok {
		switch {
		case m.OID != 0 && m.OID != d.OID:
			why = "has a dbinit comment that names another database's OID (a copy of a template, or a comment written by hand)"
		default:
			why = fmt.Sprintf("was made by dbinit as a %s database, not as a template", m.Kind)
		}
	}
	return &RefusedError{Database: d.Name, Reason: "exists and " + why,
		Hint: "dbinit will not replace it: choose another DBINIT_TEMPLATE, or drop it yourself"}
}

// extends reports whether set holds the template's files unchanged and
// only adds files after them: the template's set hash equals the set's
// hash up to the template's highest version (or, for a template an older
// dbinit built, the hash as it computed it).
func (s *Server) extends(d dbInfo, set *migrate.Set) bool {
	m, ok := d.templateMarker()
	return ok && m.Latest <= set.Latest() && (set.HashUpTo(m.Latest) == m.Set || set.LegacyHashUpTo(m.Latest) == m.Set)
}

// templateDrift names the files that differ between the template and the
// folder: it reads the history of a scratch copy of the template (a
// template cannot be connected to), then drops the copy. It returns nil
// when the only difference is files squashed into one: then the template
// is rebuilt.
func (s *Server) templateDrift(ctx context.Context, t Target, d dbInfo) error {
	generic := &TemplateDriftError{Template: t.Template, Drift: &migrate.DriftError{Dir: t.Set.Dir, Changed: []migrate.DriftItem{{
		File: "a file at or below the template's highest version", Msg: "changed, was renamed or removed, or a new file was numbered below it"}}}}
	check := tempName(t.Template, "check")
	if err := s.Clone(ctx, t.Template, check, CloneOptions{}); err != nil {
		s.log.Warn("could not copy the template to name the files that differ", "error", err)
		return generic
	}
	defer func() {
		if err := s.Drop(context.WithoutCancel(ctx), check); err != nil {
			s.log.Warn("could not drop the scratch copy of the template; the next run will", "database", check, "error", err)
		}
	}()
	m, err := s.mark(ctx, check, Marker{Kind: KindCheck})
	if err != nil {
		return err
	}
	conn, err := s.connect(ctx, check)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", check, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := writeOrigin(ctx, conn, m); err != nil {
		return fmt.Errorf("mark %s: %w", check, err)
	}
	applied, err := migrate.ReadHistory(ctx, conn)
	if err != nil {
		return err
	}
	plan, err := migrate.PlanUp(t.Set, applied, migrate.UpOptions{})
	var drift *migrate.DriftError
	var planErr *migrate.PlanError
	switch {
	case errors.As(err, &drift):
		return &TemplateDriftError{Template: t.Template, Drift: drift}
	case errors.As(err, &planErr) && squashed(t.Set):
		// A template built to part of a squashed range: a working database
		// would be refused, but a template is only a cache; build it anew.
		return nil
	case err != nil:
		return err
	}
	// Files squashed into one (dbinit:replaces) are not drift: the
	// template is rebuilt from the folder as it is.
	for _, st := range plan.Steps {
		if st.Replace {
			return nil
		}
	}
	return generic
}

// Build databases are named <template>_build_<8 hex>, a replaced template
// <template>_old_<8 hex> until it is dropped, and a scratch copy of the
// template <template>_check_<8 hex>.
func leftoverRE(name string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(tempPrefix(name)) + `_(build|old|check)_[0-9a-f]{8}$`)
}

// tempPrefix keeps temporary names within 63 bytes. A long name is cut and
// ends with 8 hex digits of its hash, so two long names that share their
// beginning never take each other's temporary databases for their own.
func tempPrefix(name string) string {
	const room = 63 - len("_check_") - 8
	if len(name) <= room {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return truncateUTF8(name, room-9) + "_" + hex.EncodeToString(sum[:4])
}

func tempName(name, kind string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return tempPrefix(name) + "_" + kind + "_" + hex.EncodeToString(b[:])
}

// leftovers lists the temporary databases of builds of template name that
// dbinit made (by their marker, not their name).
func (s *Server) leftovers(ctx context.Context, name string) ([]dbInfo, error) {
	rows, err := s.conn.Query(ctx, `SELECT `+dbColumns+` FROM pg_database WHERE starts_with(datname, $1)`, tempPrefix(name)+"_")
	if err != nil {
		return nil, fmt.Errorf("list leftover builds: %w", err)
	}
	all, err := pgx.CollectRows(rows, scanDB)
	if err != nil {
		return nil, fmt.Errorf("list leftover builds: %w", err)
	}
	re := leftoverRE(name)
	var out []dbInfo
	for _, d := range all {
		if !re.MatchString(d.Name) {
			continue
		}
		// The cheap check first: without a marker for its own OID (or the
		// connection limit of one dbinit is creating) it is somebody
		// else's, whatever its name.
		if _, ok := d.marker(); !ok && !d.creating() {
			s.warnForeign(d.Name, "it has no dbinit marker for its own OID")
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// warnForeign says, once per database and run, that a database named like
// one of dbinit's is left alone.
func (s *Server) warnForeign(name, why string) {
	if s.warned == nil {
		s.warned = map[string]bool{}
	}
	if !s.warned[name] {
		s.warned[name] = true
		s.log.Warn("a database named like one dbinit makes is not dbinit's; leaving it alone", "database", name, "reason", why)
	}
}

// dropLeftovers removes build databases of runners that died. One with a
// session is in use (a runner locking elsewhere) and is left alone; one that
// cannot be dropped is reported and does not stop the run.
func (s *Server) dropLeftovers(ctx context.Context, name string) {
	left, err := s.leftovers(ctx, name)
	if err != nil {
		s.log.Warn("could not list leftover builds", "error", err)
		return
	}
	for _, d := range left {
		if n, err := s.sessions(ctx, d.Name); err != nil || n > 0 {
			s.log.Warn("leaving a build database that is in use", "database", d.Name, "sessions", n)
			continue
		}
		// Not KindTemplate: a template a DBA renamed to keep it (its marker
		// goes with it) is theirs now; dbinit marks its own replaced
		// template as old in the swap.
		ok, why, err := s.ours(ctx, d, KindBuild, KindOld, KindCheck)
		if err != nil || !ok {
			if err != nil {
				why = err.Error()
			}
			s.warnForeign(d.Name, why)
			continue
		}
		s.log.Info("dropping leftover of an interrupted build", "database", d.Name)
		if err := s.Drop(ctx, d.Name); err != nil {
			s.log.Warn("could not drop a leftover build", "database", d.Name, "error", err)
		}
	}
}

// build applies the set to a fresh, marked database and swaps it in. With
// from, a template whose files the set only extends, the build database is
// a copy of it and only the new files are applied; when the copy cannot be
// made (someone is connected to it), the build starts from an empty
// database.
func (s *Server) build(ctx context.Context, t Target, hash string, replace bool, from string) (*migrate.Result, string, error) {
	buildName := tempName(t.Template, "build")
	created := false
	if from != "" {
		if err := s.Clone(ctx, from, buildName, CloneOptions{Strategy: t.Strategy}); err != nil {
			s.log.Warn("could not copy the template to add the new files to it; building it from every file", "template", from, "error", err)
			if exists, _ := s.Exists(ctx, buildName); exists {
				s.Drop(context.WithoutCancel(ctx), buildName)
			}
			from = ""
		} else {
			created = true
			s.log.Info("extending template", "template", t.Template, "from", from, "build_database", buildName, "files", len(t.Set.Migrations))
		}
	}
	if !created {
		s.log.Info("building template", "template", t.Template, "build_database", buildName, "files", len(t.Set.Migrations))
		if err := s.Create(ctx, buildName, ""); err != nil {
			return nil, "", fmt.Errorf("create build database: %w", err)
		}
	}
	res, err := s.buildIn(ctx, t, buildName, hash, replace)
	if err != nil {
		// A failed build is simply dropped; the old template stays as it was.
		if derr := s.Drop(context.WithoutCancel(ctx), buildName); derr != nil {
			s.log.Error("could not drop the failed build; the next run will", "database", buildName, "error", derr)
		}
	}
	return res, from, err
}

func (s *Server) buildIn(ctx context.Context, t Target, buildName, hash string, replace bool) (*migrate.Result, error) {
	m, err := s.mark(ctx, buildName, Marker{Kind: KindBuild})
	if err != nil {
		return nil, err
	}
	conn, err := s.connect(ctx, buildName)
	if err != nil {
		return nil, fmt.Errorf("connect to build database %s: %w", buildName, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := writeOrigin(ctx, conn, m); err != nil {
		return nil, fmt.Errorf("mark build database %s: %w", buildName, err)
	}
	mig, err := migrate.New(t.Set, migrate.Options{
		Logger:  s.log,
		Locker:  noLock{}, // the build database is private, and we hold the lock
		Version: s.version,
	})
	if err != nil {
		return nil, err
	}
	// One commit per file, as in `up`: a file may need the one before it
	// committed (ALTER TYPE ... ADD VALUE, pending trigger events), and
	// asynchronous commit makes the extra commits cheap.
	res, err := mig.Up(ctx, conn, migrate.UpOptions{})
	if err != nil {
		return res, err
	}
	conn.Close(context.WithoutCancel(ctx)) // the swap renames it: no session may stay
	tm := Marker{Kind: KindTemplate, OID: m.OID, ID: m.ID, Set: hash, Files: len(t.Set.Migrations), Latest: t.Set.Latest(),
		Created: time.Now().UTC().Truncate(time.Second), Version: s.version}
	return res, s.swap(ctx, t.Template, buildName, tm, replace)
}

// swap puts the build in place of the old template in one transaction:
// rename the old template away, rename the build to the template's name, and
// mark it complete. Then the old one is dropped.
func (s *Server) swap(ctx context.Context, name, buildName string, m Marker, replace bool) error {
	var trash string
	if replace {
		trash = tempName(name, "old")
		// Renaming needs the database to have no sessions. Close the door,
		// then end whoever is still inside (a connection held open to the
		// template must not block the rebuild).
		if _, err := s.conn.Exec(ctx, "ALTER DATABASE "+dbconn.Ident(name)+" ALLOW_CONNECTIONS false"); err != nil {
			return privilege(fmt.Errorf("close template %s to new connections: %w", name, err), "close template "+name, "ownership of the template")
		}
		if err := s.terminate(ctx, name); err != nil {
			return err
		}
	}
	// The build is private, but a pooler in session mode (PgBouncer) keeps
	// the server session dbinit's build connection used: end it.
	if _, err := s.conn.Exec(ctx, "ALTER DATABASE "+dbconn.Ident(buildName)+" ALLOW_CONNECTIONS false"); err != nil {
		return privilege(fmt.Errorf("close build %s to new connections: %w", buildName, err), "close build "+buildName, "ownership of the build database")
	}
	if err := s.terminate(ctx, buildName); err != nil {
		return err
	}
	// The replaced template is marked old in the same transaction, so that
	// only a replaced template dbinit renamed counts as its leftover.
	var oldComment string
	if replace {
		if d, ok, err := s.info(ctx, name); err == nil && ok {
			if om, ok := d.templateMarker(); ok {
				om.Kind, om.Created = KindOld, time.Now().UTC().Truncate(time.Second)
				if om.OID == 0 { // a template of a dbinit from before the markers
					om.OID, om.ID, om.Version = d.OID, newMarkerID(), s.version
				}
				oldComment = om.Comment()
			}
		}
	}
	// 55006: a session still starting up on the old template, which
	// pg_stat_activity did not show yet. End it and try again.
	err := retry.Do(ctx, retry.Policy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Attempts: 5}, func(ctx context.Context, a retry.Attempt) error {
		if a.N > 1 {
			if err := s.terminate(ctx, buildName); err != nil {
				return err
			}
			if replace {
				if err := s.terminate(ctx, name); err != nil {
					return err
				}
			}
		}
		err := s.swapOnce(ctx, name, buildName, trash, m.Comment(), oldComment, replace)
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
		return privilege(fmt.Errorf("swap in template %s: %w", name, err), "swap in template "+name,
			"ownership of the old template (ALTER DATABASE ... RENAME, IS_TEMPLATE)")
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
func (s *Server) swapOnce(ctx context.Context, name, buildName, trash, comment, oldComment string, oldExists bool) error {
	return pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		stmts := []string{}
		if oldExists {
			stmts = append(stmts,
				"ALTER DATABASE "+dbconn.Ident(name)+" IS_TEMPLATE false",
				"ALTER DATABASE "+dbconn.Ident(name)+" RENAME TO "+dbconn.Ident(trash))
			if oldComment != "" {
				stmts = append(stmts, "COMMENT ON DATABASE "+dbconn.Ident(trash)+" IS "+dbconn.Literal(oldComment))
			}
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
	err := retry.Do(ctx, retry.Policy{Initial: 100 * time.Millisecond, Max: 100 * time.Millisecond, Timeout: 10 * time.Second}, func(_ context.Context, a retry.Attempt) error {
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
			s.log.Warn("ended the sessions on a database dbinit renames", "database", name, "sessions", left)
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

// squashed reports whether the set has a squashed file.
func squashed(set *migrate.Set) bool {
	for _, m := range set.Migrations {
		if m.Up.Replaces != nil {
			return true
		}
	}
	return false
}
