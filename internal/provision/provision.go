// Package provision builds the template database from a migration set and
// makes databases from it: the working database of `dbinit init`, the
// databases of `dbinit clone` and of the dbtest package.
//
// A template is complete only when it is marked IS_TEMPLATE and its comment
// carries the hash of the migration set it was built from. Builds happen in a
// database of their own and are swapped in with one transaction that renames
// and marks them, so a crash at any point leaves the previous complete
// template or none under the name, never a half-built one.
package provision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/migrate"
)

// Provisioner works on one server through a maintenance connection.
type Provisioner struct {
	Maint    *pgx.Conn      // connection to the maintenance database; holds the lock
	Lock     migrate.Locker // taken around every change; reentrant on the same session
	Set      *migrate.Set
	Logger   *slog.Logger
	Version  string // dbinit version, recorded in history rows
	Runner   string // recorded in history rows; "" = host and pid
	Strategy string // CREATE DATABASE STRATEGY for clones: "wal_log", "file_copy" or "" (server default)
	Owner    string // owner of cloned databases; "" = the connecting user
	// ConnectTimeout bounds connecting to a database just created.
	ConnectTimeout time.Duration
}

// TemplateOutcome says what EnsureTemplate did.
type TemplateOutcome struct {
	Name     string
	Built    bool            // false: an up-to-date template was reused
	Result   *migrate.Result // the build's result, when built
	Duration time.Duration
}

const commentPrefix = "dbinit template"

// templateInfo is what the server says about a template name.
type templateInfo struct {
	exists, isTemplate bool
	comment            string
}

func (p *Provisioner) inspect(ctx context.Context, name string) (templateInfo, error) {
	var ti templateInfo
	err := p.Maint.QueryRow(ctx, `
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
	return ti.exists && ti.isTemplate && strings.Contains(ti.comment, "set="+hash)
}

// EnsureTemplate reuses the template called name when it is complete and
// built from this migration set, and builds it otherwise. Reuse takes no lock.
func (p *Provisioner) EnsureTemplate(ctx context.Context, name string) (*TemplateOutcome, error) {
	start := time.Now()
	out := &TemplateOutcome{Name: name}
	hash := p.Set.Hash()
	ti, err := p.inspect(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := p.checkOurs(name, ti); err != nil {
		return nil, err
	}
	if ti.complete(hash) {
		leftovers, err := p.leftovers(ctx, name)
		if err != nil || len(leftovers) == 0 {
			out.Duration = time.Since(start)
			return out, err
		}
	}
	unlock, err := p.Lock.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	// Under the lock nobody else builds, so every build database left is
	// from a runner that died.
	p.dropLeftovers(ctx, name)
	// Another runner may have built it while we waited for the lock.
	if ti, err = p.inspect(ctx, name); err != nil {
		return nil, err
	}
	if err := p.checkOurs(name, ti); err != nil {
		return nil, err
	}
	if ti.complete(hash) {
		out.Duration = time.Since(start)
		return out, nil
	}
	res, err := p.build(ctx, name, hash, ti)
	out.Built, out.Result, out.Duration = true, res, time.Since(start)
	return out, err
}

// checkOurs refuses to build over a database dbinit did not make: a wrong
// DBINIT_TEMPLATE must never replace (and so drop) somebody's data.
func (p *Provisioner) checkOurs(name string, ti templateInfo) error {
	switch {
	case name == "template0" || name == "template1" || name == "postgres" || name == p.Maint.Config().Database:
		return &config.Error{Msg: fmt.Sprintf("template name %q is a database PostgreSQL or dbinit needs for itself; choose another DBINIT_TEMPLATE", name)}
	case ti.exists && !strings.HasPrefix(ti.comment, commentPrefix):
		return &config.Error{Msg: fmt.Sprintf("database %q exists and was not made by dbinit (its comment does not start with %q); dbinit will not replace it: choose another DBINIT_TEMPLATE, or drop it yourself", name, commentPrefix)}
	}
	return nil
}

// leftoverRE matches the databases a build makes besides the template.
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

func (p *Provisioner) leftovers(ctx context.Context, name string) ([]string, error) {
	rows, err := p.Maint.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, tempPrefix(name)+"_")
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
func (p *Provisioner) dropLeftovers(ctx context.Context, name string) {
	left, err := p.leftovers(ctx, name)
	if err != nil {
		p.log().Warn("could not list leftover builds", "error", err)
		return
	}
	for _, db := range left {
		var sessions int
		if err := p.Maint.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, db).Scan(&sessions); err != nil || sessions > 0 {
			p.log().Warn("leaving a build database that is in use", "database", db, "sessions", sessions)
			continue
		}
		p.log().Info("dropping leftover of an interrupted build", "database", db)
		if err := p.drop(ctx, db); err != nil {
			p.log().Warn("could not drop a leftover build", "database", db, "error", err)
		}
	}
}

// build applies the whole set to a fresh database and swaps it in.
func (p *Provisioner) build(ctx context.Context, name, hash string, old templateInfo) (*migrate.Result, error) {
	buildName := tempName(name, "build")
	p.log().Info("building template", "template", name, "build_database", buildName, "files", len(p.Set.Migrations))
	if _, err := p.Maint.Exec(ctx, "CREATE DATABASE "+dbconn.Ident(buildName)); err != nil {
		return nil, fmt.Errorf("create build database %s: %w", buildName, err)
	}
	res, err := p.migrateBuild(ctx, buildName)
	if err != nil {
		// A failed build is simply dropped; the old template stays as it was.
		if derr := p.drop(context.WithoutCancel(ctx), buildName); derr != nil {
			p.log().Error("could not drop the failed build; the next run will", "database", buildName, "error", derr)
		}
		return res, err
	}
	if err := p.swap(ctx, name, buildName, hash, old); err != nil {
		if derr := p.drop(context.WithoutCancel(ctx), buildName); derr != nil {
			p.log().Error("could not drop the build; the next run will", "database", buildName, "error", derr)
		}
		return res, err
	}
	return res, nil
}

func (p *Provisioner) migrateBuild(ctx context.Context, buildName string) (*migrate.Result, error) {
	conn, err := dbconn.Connect(ctx, dbconn.ForDatabase(p.Maint.Config(), buildName), dbconn.Options{Timeout: p.connectTimeout(), AcceptInitServer: true})
	if err != nil {
		return nil, fmt.Errorf("connect to build database %s: %w", buildName, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m := migrate.New(p.Set, migrate.Options{
		Logger:  p.log(),
		Locker:  noLock{}, // the build database is private, and we hold the lock
		Version: p.Version,
		Runner:  p.Runner,
		// One commit per file, as in `up`: a file may need the one before it
		// committed (ALTER TYPE ... ADD VALUE, pending trigger events), and
		// asynchronous commit makes the extra commits cheap.
	})
	return m.Up(ctx, conn, 0)
}

// swap puts the build in place of the old template in one transaction:
// rename the old template away, rename the build to the template's name, and
// mark it complete. Then the old one is dropped.
func (p *Provisioner) swap(ctx context.Context, name, buildName, hash string, old templateInfo) error {
	var trash string
	if old.exists {
		trash = tempName(name, "old")
		// Renaming needs the database to have no sessions. Close the door,
		// then end whoever is still inside (a connection held open to the
		// template must not block the rebuild).
		if _, err := p.Maint.Exec(ctx, "ALTER DATABASE "+dbconn.Ident(name)+" ALLOW_CONNECTIONS false"); err != nil {
			return fmt.Errorf("close template %s to new connections: %w", name, err)
		}
		if err := p.terminate(ctx, name); err != nil {
			return err
		}
	}
	comment := fmt.Sprintf("%s; set=%s; files=%d; latest=%d; built=%s by dbinit %s", commentPrefix, hash,
		len(p.Set.Migrations), p.Set.Latest(), time.Now().UTC().Format(time.RFC3339), p.Version)
	var err error
	for attempt := 1; ; attempt++ {
		err = p.swapOnce(ctx, name, buildName, trash, comment, old.exists)
		// 55006: a session still starting up on the old template, which
		// pg_stat_activity did not show yet. End it and try again.
		var pgErr *pgconn.PgError
		if err == nil || attempt == 5 || !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			break
		}
		if old.exists {
			if terr := p.terminate(ctx, name); terr != nil {
				return terr
			}
		}
	}
	if err != nil {
		return fmt.Errorf("swap in template %s: %w", name, err)
	}
	p.log().Info("template ready", "template", name, "set", hash[:12])
	if trash != "" {
		if err := p.drop(ctx, trash); err != nil {
			p.log().Warn("could not drop the previous template; the next run will", "database", trash, "error", err)
		}
	}
	return nil
}

// swapOnce renames and marks in one transaction.
func (p *Provisioner) swapOnce(ctx context.Context, name, buildName, trash, comment string, oldExists bool) error {
	return pgx.BeginFunc(ctx, p.Maint, func(tx pgx.Tx) error {
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
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
}

// terminate ends every session on database name and waits until they are gone.
func (p *Provisioner) terminate(ctx context.Context, name string) error {
	for i := 0; ; i++ {
		var left int
		err := p.Maint.QueryRow(ctx, `
SELECT count(*) FROM (
  SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
) t`, name).Scan(&left)
		if err != nil {
			return fmt.Errorf("end sessions on %s: %w", name, err)
		}
		if left == 0 {
			return nil
		}
		if i == 0 {
			p.log().Warn("ended sessions connected to the old template", "template", name, "sessions", left)
		}
		if i > 100 {
			return fmt.Errorf("end sessions on %s: %d still connected after 10s", name, left)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// drop removes a database, ending its sessions.
func (p *Provisioner) drop(ctx context.Context, name string) error {
	if _, err := p.Maint.Exec(ctx, "DROP DATABASE IF EXISTS "+dbconn.Ident(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// Drop removes database name, ending its sessions. dbinit uses it only
// where the user asked for it (DBINIT_RESET, clone --replace) and for
// databases it made itself.
func (p *Provisioner) Drop(ctx context.Context, name string) error { return p.drop(ctx, name) }

// DropTemplate removes a template database.
func (p *Provisioner) DropTemplate(ctx context.Context, name string) error {
	if _, err := p.Maint.Exec(ctx, "ALTER DATABASE "+dbconn.Ident(name)+" IS_TEMPLATE false"); err != nil {
		return fmt.Errorf("unmark template %s: %w", name, err)
	}
	return p.drop(ctx, name)
}

// Clone creates database name from the template. It fails if name exists.
func (p *Provisioner) Clone(ctx context.Context, template, name string) error {
	q := "CREATE DATABASE " + dbconn.Ident(name) + " TEMPLATE " + dbconn.Ident(template)
	if p.Owner != "" {
		q += " OWNER " + dbconn.Ident(p.Owner)
	}
	if p.Strategy != "" {
		q += " STRATEGY " + strings.ToUpper(p.Strategy)
	}
	if _, err := p.Maint.Exec(ctx, q); err != nil {
		return fmt.Errorf("clone %s from %s: %w", name, template, err)
	}
	return nil
}

// Exists reports whether database name exists.
func (p *Provisioner) Exists(ctx context.Context, name string) (bool, error) {
	var ok bool
	if err := p.Maint.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	return ok, nil
}

func (p *Provisioner) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

func (p *Provisioner) connectTimeout() time.Duration {
	if p.ConnectTimeout > 0 {
		return p.ConnectTimeout
	}
	return 30 * time.Second
}

func tempName(name, kind string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return tempPrefix(name) + "_" + kind + "_" + hex.EncodeToString(b[:])
}

// noLock is for databases nobody else can see.
type noLock struct{}

func (noLock) Lock(context.Context) (func(context.Context) error, error) {
	return func(context.Context) error { return nil }, nil
}
