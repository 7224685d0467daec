package provision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/migrate"
)

// Test databases are named <prefix><base-36 unix seconds>_<test name>_<6 hex>,
// "dbt_t3k9qz_testusers_create_1a2b3c", so a person can tell whose they
// are and how old. The sweep goes by their marker (MarkTest), not by the
// name.

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// TestDatabaseName returns a new database name for the test called test:
// prefix, the time, as much of the end of the test's name as fits in 63
// bytes (the end of a subtest name says most), and a random suffix.
func TestDatabaseName(prefix, test string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	base := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(test), "_"), "_")
	ts := strconv.FormatInt(time.Now().Unix(), 36)
	room := 63 - len(prefix) - len(ts) - 1 - 1 - 6
	if len(base) > room {
		base = base[len(base)-room:]
	}
	return prefix + ts + "_" + base + "_" + hex.EncodeToString(b[:])
}

// MarkTest marks a test database dbinit just cloned as its own (the comment
// only: test servers are throwaway, and the sweep needs no more).
func (s *Server) MarkTest(ctx context.Context, name string) error {
	_, err := s.mark(ctx, name, Marker{Kind: KindTest})
	return err
}

// ClaimTest gives the test database from, made ahead by MarkTest and not
// yet used, to a test: renamed to, and marked again so that its age counts
// from now. Both in one transaction, so a failed claim leaves from as it
// was. ok is false when from no longer exists (a sweep removed it); the
// caller then clones a database of its own.
func (s *Server) ClaimTest(ctx context.Context, from, to string) (ok bool, err error) {
	d, found, err := s.info(ctx, from)
	if err != nil || !found {
		return false, err
	}
	m := Marker{Kind: KindTest, OID: d.OID, ID: newMarkerID(), Created: time.Now().UTC().Truncate(time.Second), Version: s.version}
	q := "ALTER DATABASE " + dbconn.Ident(from) + " RENAME TO " + dbconn.Ident(to) +
		"; COMMENT ON DATABASE " + dbconn.Ident(to) + " IS " + dbconn.Literal(m.Comment())
	if _, err := s.conn.Exec(ctx, q); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // gone between the look-up and the rename
			return false, nil
		}
		return false, fmt.Errorf("claim test database %s as %s: %w", from, to, err)
	}
	return true, nil
}

// nameTime reads the time TestDatabaseName put in a name.
func nameTime(prefix, name string) (time.Time, bool) {
	ts, _, ok := strings.Cut(strings.TrimPrefix(name, prefix), "_")
	if !ok {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(ts, 36, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// Sweep says what SweepTestDatabases removes.
type Sweep struct {
	DatabasePrefix string // "dbt_": names made by TestDatabaseName with it
	TemplatePrefix string // "dbtpl_": templates are <prefix><16 hex digits>
	Current        string // the template in use: never removed
	// MaxAge: test databases older than this and with no session are
	// removed (a run still going, or a failure kept for inspection, is
	// younger). 1h.
	MaxAge time.Duration
	// KeepTemplates is how many templates to keep, the current one
	// included, newest first by build time. 3.
	KeepTemplates int
	Lock          migrate.Locker // held while sweeping
}

// SweepTestDatabases removes what killed test runs left: test databases
// older than MaxAge, build leftovers of other templates, and templates of
// old migration sets beyond the newest KeepTemplates.
func (s *Server) SweepTestDatabases(ctx context.Context, sw Sweep) error {
	if sw.MaxAge <= 0 {
		sw.MaxAge = time.Hour
	}
	if sw.KeepTemplates <= 0 {
		sw.KeepTemplates = 3
	}
	unlock, err := sw.Lock.Lock(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	rows, err := s.conn.Query(ctx, `SELECT `+dbColumns+` FROM pg_database WHERE starts_with(datname, $1) OR starts_with(datname, $2)`,
		sw.DatabasePrefix, sw.TemplatePrefix)
	if err != nil {
		return fmt.Errorf("sweep: list databases: %w", err)
	}
	all, err := pgx.CollectRows(rows, scanDB)
	if err != nil {
		return fmt.Errorf("sweep: list databases: %w", err)
	}
	templateRE := regexp.MustCompile(`^` + regexp.QuoteMeta(sw.TemplatePrefix) + `[0-9a-f]{16}$`)
	type tmpl struct {
		d     dbInfo
		built time.Time
	}
	var old []tmpl
	for _, d := range all {
		// Only what dbinit made, by its marker: a name is not enough. A
		// test database whose marking was interrupted (dbinit's creating
		// connection limit) is swept by the time in its name.
		m, ok := d.marker()
		if !ok && d.creating() && strings.HasPrefix(d.Name, sw.DatabasePrefix) {
			if created, ok := nameTime(sw.DatabasePrefix, d.Name); ok {
				m, ok = Marker{Kind: KindTest, Created: created}, true
			}
		}
		if !ok && d.creating() && strings.HasPrefix(d.Name, sw.TemplatePrefix) {
			m, ok = Marker{Kind: KindBuild}, true
		}
		if !ok {
			s.warnForeign(d.Name, "it has no dbinit marker for its own OID")
			continue
		}
		switch {
		case d.Name == sw.Current:
		case templateRE.MatchString(d.Name) && m.Kind == KindTemplate:
			old = append(old, tmpl{d, m.Created})
		case strings.HasPrefix(d.Name, sw.TemplatePrefix):
			// A build or swap leftover of another migration set; nobody is
			// building while we hold the lock, unless a session says so.
			if n, err := s.sessions(ctx, d.Name); err != nil || n > 0 {
				continue
			}
			if ok, _, err := s.ours(ctx, d, KindBuild, KindOld, KindCheck); err != nil || !ok {
				continue
			}
			if err := s.Drop(ctx, d.Name); err != nil {
				return err
			}
		case m.Kind == KindTest:
			if time.Since(m.Created) < sw.MaxAge {
				continue
			}
			// A long test still using it, or someone inspecting a kept one.
			if n, err := s.sessions(ctx, d.Name); err != nil || n > 0 {
				continue
			}
			if err := s.Drop(ctx, d.Name); err != nil {
				return err
			}
		}
	}
	// Newest first by build time; the current template counts as one kept.
	slices.SortFunc(old, func(a, b tmpl) int { return b.built.Compare(a.built) })
	for i, t := range old {
		if i < sw.KeepTemplates-1 {
			continue
		}
		if err := s.DropTemplate(ctx, t.d.Name); err != nil {
			return err
		}
	}
	return nil
}
