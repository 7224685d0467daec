package provision

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/internal/retry"
)

// Snapshots are server-side copies of the working database made before
// migrating it (CREATE DATABASE ... TEMPLATE: no client-side dump, seconds
// for gigabytes with the file_copy strategy). A copy needs the source to
// itself: no other session may be connected while it is made.

// Snapshot modes.
const (
	SnapshotNever  = "never"
	SnapshotAuto   = "auto"   // skip, with a warning, when it cannot be made (others connected, no CREATEDB)
	SnapshotAlways = "always" // stop when it cannot be made
)

// SnapshotError says a snapshot was required (always) and could not be made.
type SnapshotError struct {
	Database string
	Reason   string
	Busy     bool // other sessions were connected: worth a later try (exit 6)
	Err      error
}

func (e *SnapshotError) Error() string {
	msg := fmt.Sprintf("snapshot of %s before migrating (DBINIT_SNAPSHOT=always): %s; nothing was migrated", e.Database, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *SnapshotError) Unwrap() error { return e.Err }

// SnapshotInfo describes one of dbinit's snapshots of a working database.
type SnapshotInfo struct {
	Name     string    `json:"name"`
	Of       string    `json:"of"`
	Created  time.Time `json:"created"`
	Bytes    int64     `json:"bytes"`
	Replaced bool      `json:"replaced"` // the working database a restore put aside (never removed by keep)
}

// snapshotPrefix is how snapshot names of database start, kept within
// 63 bytes with room for "_replaced_20261129T051234_99".
func snapshotPrefix(database string) string {
	return truncateUTF8(database, 63-len("_replaced_20261129T051234_99"))
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}

func snapshotRE(database string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(snapshotPrefix(database)) + `_(snap|replaced)_[0-9]{8}T[0-9]{6}(_[0-9]+)?$`)
}

// freeName returns base, or base_2, base_3... whichever does not exist.
func (s *Server) freeName(ctx context.Context, base string) (string, error) {
	name := base
	for i := 2; ; i++ {
		ok, err := s.Exists(ctx, name)
		if err != nil || !ok {
			return name, err
		}
		name = fmt.Sprintf("%s_%d", base, i)
	}
}

// Snapshot copies database into <database>_snap_<UTC time>, marked as
// dbinit's, then removes dbinit's oldest snapshots of it beyond keep. In
// mode auto it returns "" and logs a warning when the copy cannot be made
// (other sessions connected, no CREATEDB); in mode always that is a
// *SnapshotError. The caller must hold no connection to database.
func (s *Server) Snapshot(ctx context.Context, database, mode string, keep int) (string, error) {
	if mode == SnapshotNever || mode == "" {
		return "", nil
	}
	skip := func(reason string, busy bool, err error) (string, error) {
		if mode == SnapshotAlways {
			return "", &SnapshotError{Database: database, Reason: reason, Busy: busy, Err: err}
		}
		attrs := []any{"database", database, "reason", reason}
		if err != nil {
			attrs = append(attrs, "error", err)
		}
		s.log.Warn("no snapshot before migrating (DBINIT_SNAPSHOT=auto)", attrs...)
		return "", nil
	}
	// Sessions that just closed (dbinit's own check of the database, a
	// client that disconnected) leave pg_stat_activity a moment later.
	n := 0
	err := retry.Do(ctx, retry.Policy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Timeout: 2 * time.Second},
		func(context.Context, retry.Attempt) error {
			var err error
			if n, err = s.sessions(ctx, database); err != nil || n == 0 {
				return err
			}
			return retry.Again(errors.New("sessions connected"))
		})
	var ex *retry.ExhaustedError
	switch {
	case errors.As(err, &ex):
		why := fmt.Sprintf("%d other sessions are connected to it, and a copy needs it to itself (DBINIT_DUMP_DIR makes a dump instead)", n)
		if mode == SnapshotAuto {
			why = fmt.Sprintf("%d other sessions are connected to it, and a copy needs it to itself (set DBINIT_SNAPSHOT=always to stop instead, or DBINIT_DUMP_DIR for a dump)", n)
		}
		return skip(why, true, nil)
	case err != nil:
		return "", err
	}
	var owner string
	if err := s.conn.QueryRow(ctx, `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1`, database).Scan(&owner); err != nil {
		return "", fmt.Errorf("snapshot of %s: %w", database, err)
	}
	name, err := s.freeName(ctx, snapshotPrefix(database)+"_snap_"+time.Now().UTC().Format("20060102T150405"))
	if err != nil {
		return "", err
	}
	t0 := time.Now()
	if err := s.Clone(ctx, database, name, CloneOptions{Owner: owner}); err != nil {
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "55006":
			return skip("another session connected to it while the copy was being made", true, nil)
		case errors.As(err, &pgErr) && pgErr.Code == "42501":
			return skip("this role may not create databases (it lacks CREATEDB)", false, err)
		}
		return "", fmt.Errorf("snapshot of %s: %w", database, err)
	}
	if _, err := s.mark(ctx, name, Marker{Kind: KindSnapshot}); err != nil {
		if derr := s.Drop(context.WithoutCancel(ctx), name); derr != nil {
			s.log.Error("could not drop a snapshot dbinit could not mark", "database", name, "error", derr)
		}
		return "", err
	}
	s.log.Info("snapshot made before migrating", "database", database, "snapshot", name, "duration_ms", time.Since(t0).Milliseconds())
	s.prune(ctx, database, keep)
	return name, nil
}

// prune drops dbinit's oldest snapshots of database beyond keep (not the
// working databases a restore put aside).
func (s *Server) prune(ctx context.Context, database string, keep int) {
	snaps, err := s.Snapshots(ctx, database)
	if err != nil {
		s.log.Warn("could not list snapshots to remove old ones", "error", err)
		return
	}
	kept := 0
	for _, sn := range snaps { // newest first
		if sn.Replaced {
			continue
		}
		if kept++; kept <= keep {
			continue
		}
		// Without FORCE: somebody looking at an old snapshot keeps it.
		if _, err := s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+dbconn.Ident(sn.Name)); err != nil {
			s.log.Warn("could not remove an old snapshot", "snapshot", sn.Name, "error", err)
			continue
		}
		s.log.Info("removed an old snapshot", "snapshot", sn.Name, "keep", keep)
	}
}

// Snapshots lists dbinit's snapshots of database, newest first.
func (s *Server) Snapshots(ctx context.Context, database string) ([]SnapshotInfo, error) {
	rows, err := s.conn.Query(ctx, `SELECT `+dbColumns+`, pg_database_size(oid) FROM pg_database WHERE starts_with(datname, $1)`,
		snapshotPrefix(database)+"_")
	if err != nil {
		return nil, fmt.Errorf("list snapshots of %s: %w", database, err)
	}
	type withSize struct {
		d    dbInfo
		size int64
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (withSize, error) {
		var w withSize
		err := r.Scan(&w.d.Name, &w.d.OID, &w.d.IsTemplate, &w.d.AllowConn, &w.d.ConnLimit, &w.d.Comment, &w.size)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots of %s: %w", database, err)
	}
	re := snapshotRE(database)
	var out []SnapshotInfo
	for _, w := range all {
		m, ok := w.d.marker()
		if !re.MatchString(w.d.Name) || !ok || m.Kind != KindSnapshot {
			continue
		}
		out = append(out, SnapshotInfo{Name: w.d.Name, Of: database, Created: m.Created, Bytes: w.size,
			Replaced: strings.Contains(strings.TrimPrefix(w.d.Name, snapshotPrefix(database)), "_replaced_")})
	}
	slices.SortFunc(out, func(a, b SnapshotInfo) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
	return out, nil
}

// Restore puts snapshot name in place of database: the working database
// is renamed aside as <database>_replaced_<time> (kept, never removed by
// keep), the snapshot takes its name. Sessions on both are ended: a
// restore is an explicit act. Under the database's lock.
func (s *Server) Restore(ctx context.Context, t Target, database, name string) (replacedAs string, err error) {
	if err := s.Reserved(database); err != nil {
		return "", err
	}
	snaps, err := s.Snapshots(ctx, database)
	if err != nil {
		return "", err
	}
	if !slices.ContainsFunc(snaps, func(sn SnapshotInfo) bool { return sn.Name == name }) {
		return "", &RefusedError{Database: name, Reason: "is not one of dbinit's snapshots of " + database, Hint: "`dbinit snapshot list` shows them"}
	}
	unlock, err := t.Lock(database).Lock(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	snap, ok, err := s.info(ctx, name)
	if err != nil || !ok {
		return "", fmt.Errorf("restore %s: it is gone (%v)", name, err)
	}
	cur, exists, err := s.info(ctx, database)
	if err != nil {
		return "", err
	}
	if exists {
		if replacedAs, err = s.freeName(ctx, snapshotPrefix(database)+"_replaced_"+time.Now().UTC().Format("20060102T150405")); err != nil {
			return "", err
		}
	}
	for _, d := range []string{database, name} {
		if d == database && !exists {
			continue
		}
		if _, err := s.conn.Exec(ctx, "ALTER DATABASE "+dbconn.Ident(d)+" ALLOW_CONNECTIONS false"); err != nil {
			return "", fmt.Errorf("restore: close %s to new connections: %w", d, err)
		}
		if err := s.terminate(ctx, d); err != nil {
			return "", err
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	err = pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		var stmts []string
		if exists {
			stmts = append(stmts, "ALTER DATABASE "+dbconn.Ident(database)+" RENAME TO "+dbconn.Ident(replacedAs),
				"ALTER DATABASE "+dbconn.Ident(replacedAs)+" ALLOW_CONNECTIONS true")
			// The working database, kept as a snapshot if it was dbinit's;
			// a database dbinit did not make keeps its own comment.
			if m, ok := cur.marker(); ok {
				m.Kind, m.Created = KindSnapshot, now
				stmts = append(stmts, "COMMENT ON DATABASE "+dbconn.Ident(replacedAs)+" IS "+dbconn.Literal(m.Comment()))
			}
		}
		m, _ := snap.marker()
		m.Kind, m.Created = KindWorking, now
		stmts = append(stmts, "ALTER DATABASE "+dbconn.Ident(name)+" RENAME TO "+dbconn.Ident(database),
			"COMMENT ON DATABASE "+dbconn.Ident(database)+" IS "+dbconn.Literal(m.Comment()),
			"ALTER DATABASE "+dbconn.Ident(database)+" ALLOW_CONNECTIONS true")
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		// Open both again: nothing was renamed.
		for _, d := range []string{database, name} {
			_, _ = s.conn.Exec(context.WithoutCancel(ctx), "ALTER DATABASE "+dbconn.Ident(d)+" ALLOW_CONNECTIONS true")
		}
		return "", fmt.Errorf("restore %s as %s: %w", name, database, err)
	}
	s.log.Warn("restored a snapshot as the working database", "database", database, "snapshot", name, "previous_kept_as", replacedAs)
	return replacedAs, nil
}
