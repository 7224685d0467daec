package provision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/migrate"
)

// Test databases are named <prefix><base-36 unix seconds>_<test name>_<6 hex>,
// "dbt_t3k9qz_testusers_create_1a2b3c", so the sweep can tell their age
// and a person can tell whose they are.

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

// testDatabaseCreated reads the creation time from a name TestDatabaseName
// made with prefix.
func testDatabaseCreated(prefix, name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return time.Time{}, false
	}
	ts, _, ok := strings.Cut(rest, "_")
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
	rows, err := s.conn.Query(ctx, `
SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '')
FROM pg_database WHERE starts_with(datname, $1) OR starts_with(datname, $2)`, sw.DatabasePrefix, sw.TemplatePrefix)
	if err != nil {
		return fmt.Errorf("sweep: list databases: %w", err)
	}
	type db struct {
		name  string
		built time.Time
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (db, error) {
		var d db
		var comment string
		err := r.Scan(&d.name, &comment)
		if m, ok := ParseMarker(comment); ok {
			d.built = m.Built
		}
		return d, err
	})
	if err != nil {
		return fmt.Errorf("sweep: list databases: %w", err)
	}
	templateRE := regexp.MustCompile(`^` + regexp.QuoteMeta(sw.TemplatePrefix) + `[0-9a-f]{16}$`)
	var old []db
	for _, d := range all {
		switch {
		case d.name == sw.Current:
		case templateRE.MatchString(d.name):
			old = append(old, d)
		case strings.HasPrefix(d.name, sw.TemplatePrefix):
			// A build or swap leftover of another migration set; nobody is
			// building while we hold the lock.
			if err := s.Drop(ctx, d.name); err != nil {
				return err
			}
		default:
			created, ok := testDatabaseCreated(sw.DatabasePrefix, d.name)
			if !ok || time.Since(created) < sw.MaxAge {
				continue
			}
			// A long test still using it, or someone inspecting a kept one.
			if n, err := s.sessions(ctx, d.name); err != nil || n > 0 {
				continue
			}
			if err := s.Drop(ctx, d.name); err != nil {
				return err
			}
		}
	}
	// Newest first by build time; the current template counts as one kept.
	slices.SortFunc(old, func(a, b db) int { return b.built.Compare(a.built) })
	for i, d := range old {
		if i < sw.KeepTemplates-1 {
			continue
		}
		if err := s.DropTemplate(ctx, d.name); err != nil {
			return err
		}
	}
	return nil
}
