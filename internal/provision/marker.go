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

	"github.com/savvi-studio/dbinit/internal/dbconn"
)

// dbinit marks every database it creates, so that it never mistakes
// somebody else's database for its own: a backup named like one of its
// temporary databases, a copy of its template, a database a DBA commented
// by hand. A database is dbinit's when
//
//   - its comment is a marker dbinit wrote, "dbinit <kind>; ...; oid=N; id=X",
//     naming the database's own OID. A comment is not copied with a
//     database (CREATE DATABASE ... TEMPLATE, pg_dump and restore), and a
//     copy has another OID, so no copy carries a valid marker;
//   - and, where dbinit can connect to it (not a template), the table
//     dbinit.origin inside it, when it has a row for its OID, agrees: the
//     same id. A copy inherits the row, with the wrong OID.
//
// Between CREATE DATABASE and the comment, a database has dbinit's
// creation-time connection limit (creatingConnLimit), which no copy
// inherits: a runner killed in that moment leaves a database the next run
// still knows for dbinit's.
//
// Only such databases are ever dropped or replaced: build leftovers, old
// templates, the working database on DBINIT_RESET, clone --replace, the
// sweep of test databases. Name patterns narrow the search, they never
// decide on their own.

// Kinds of databases dbinit makes.
const (
	KindTemplate = "template" // a complete template, also the previous one being dropped (<template>_old_<hex>)
	KindBuild    = "build"    // a template being built, <template>_build_<hex>
	KindOld      = "old"      // a replaced template on its way out, <template>_old_<hex>
	KindCheck    = "check"    // a scratch copy of the template, to read its history, <template>_check_<hex>
	KindWorking  = "working"  // the working database, created by init (clone) or up (empty)
	KindClone    = "clone"    // a database made by `dbinit clone`
	KindTest     = "test"     // a dbtest database
	KindSnapshot = "snapshot" // a copy of the working database before migrating it, <database>_snap_<time>
)

// markerPrefix starts the comment of every database dbinit made.
const markerPrefix = "dbinit "

// Marker is what dbinit's comment on a database says.
type Marker struct {
	Kind    string    // KindTemplate, KindBuild, ...
	OID     uint32    // the OID of the database it describes; 0 in a comment written before dbinit marked OIDs
	ID      string    // random, 32 hex digits; the same in the comment and in dbinit.origin
	Created time.Time // UTC, second precision: when the database was made (built, for a template)
	Version string    // dbinit version that made it, "v1.2.0"
	// A template's migration set.
	Set    string // migrate.Set.Hash
	Files  int    // number of up files
	Latest int64  // highest version
}

// Comment renders the marker, e.g.
// "dbinit template; set=3f...; files=7; latest=7; built=2026-11-29T05:09:45Z by dbinit v1.2.0; oid=16384; id=5e...".
// The template form keeps the fields of the comment dbinit wrote before it
// marked OIDs, in the same order, so older dbinits still read it.
func (m Marker) Comment() string {
	at := m.Created.UTC().Format(time.RFC3339)
	if m.Kind == KindTemplate {
		return fmt.Sprintf("dbinit template; set=%s; files=%d; latest=%d; built=%s by dbinit %s; oid=%d; id=%s",
			m.Set, m.Files, m.Latest, at, m.Version, m.OID, m.ID)
	}
	return fmt.Sprintf("dbinit %s; created=%s by dbinit %s; oid=%d; id=%s", m.Kind, at, m.Version, m.OID, m.ID)
}

var (
	templateMarkerRE = regexp.MustCompile(`^dbinit template; set=([0-9a-f]{64}); files=([0-9]+); latest=([0-9]+); built=(\S+) by dbinit (\S*)(?:; oid=([0-9]+); id=([0-9a-f]{32}))?$`)
	otherMarkerRE    = regexp.MustCompile(`^dbinit (build|old|check|working|clone|test|snapshot); created=(\S+) by dbinit (\S*); oid=([0-9]+); id=([0-9a-f]{32})$`)
)

// ParseMarker reads a database comment. ok is false when the comment is not
// a marker dbinit wrote. A template comment of a dbinit that did not mark
// OIDs yet parses with OID 0 and no ID.
func ParseMarker(comment string) (m Marker, ok bool) {
	if g := templateMarkerRE.FindStringSubmatch(comment); g != nil {
		files, err1 := strconv.Atoi(g[2])
		latest, err2 := strconv.ParseInt(g[3], 10, 64)
		built, err3 := time.Parse(time.RFC3339, g[4])
		var oid uint64
		var err4 error
		if g[6] != "" {
			oid, err4 = strconv.ParseUint(g[6], 10, 32)
		}
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return m, false
		}
		return Marker{Kind: KindTemplate, Set: g[1], Files: files, Latest: latest, Created: built, Version: g[5], OID: uint32(oid), ID: g[7]}, true
	}
	if g := otherMarkerRE.FindStringSubmatch(comment); g != nil {
		created, err1 := time.Parse(time.RFC3339, g[2])
		oid, err2 := strconv.ParseUint(g[4], 10, 32)
		if err1 != nil || err2 != nil {
			return m, false
		}
		return Marker{Kind: g[1], Created: created, Version: g[3], OID: uint32(oid), ID: g[5]}, true
	}
	return m, false
}

func newMarkerID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// dbInfo is what pg_database says about a database.
type dbInfo struct {
	Name       string
	OID        uint32
	IsTemplate bool
	AllowConn  bool
	ConnLimit  int32
	Comment    string
}

// creatingConnLimit is the connection limit of every database dbinit
// creates, from CREATE DATABASE until it is marked (mark sets it back to
// -1, no limit, in the same transaction as the comment). A database's
// connection limit is set by the CREATE DATABASE statement itself and is not
// copied to a clone, so a database that has it was created by dbinit and
// its marking was interrupted (the runner killed during CREATE DATABASE,
// whose backend finished the command). No person picks this number.
const creatingConnLimit = 1_999_999_937

// creating reports a database dbinit created and has not marked yet.
func (d dbInfo) creating() bool { return d.ConnLimit == creatingConnLimit }

// dbColumns and scan read dbInfo from pg_database.
const dbColumns = `datname, oid, datistemplate, datallowconn, datconnlimit, coalesce(shobj_description(oid, 'pg_database'), '')`

func scanDB(r pgx.CollectableRow) (dbInfo, error) {
	var d dbInfo
	err := r.Scan(&d.Name, &d.OID, &d.IsTemplate, &d.AllowConn, &d.ConnLimit, &d.Comment)
	return d, err
}

// marker returns the database's marker when it is one dbinit wrote for this
// very database (its OID). Legacy template markers (OID 0) do not count.
func (d dbInfo) marker() (Marker, bool) {
	m, ok := ParseMarker(d.Comment)
	if !ok || m.OID == 0 || m.OID != d.OID {
		return Marker{}, false
	}
	return m, true
}

// info reads pg_database; ok is false when the database does not exist.
func (s *Server) info(ctx context.Context, name string) (dbInfo, bool, error) {
	d := dbInfo{Name: name}
	err := s.conn.QueryRow(ctx, `
SELECT oid, datistemplate, datallowconn, datconnlimit, coalesce(shobj_description(oid, 'pg_database'), '')
FROM pg_database WHERE datname = $1`, name).Scan(&d.OID, &d.IsTemplate, &d.AllowConn, &d.ConnLimit, &d.Comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("look up database %s: %w", name, err)
	}
	return d, true, nil
}

// mark writes dbinit's comment on a database it has just made, naming its
// OID, and returns the marker.
func (s *Server) mark(ctx context.Context, name string, m Marker) (Marker, error) {
	d, ok, err := s.info(ctx, name)
	if err != nil {
		return m, err
	}
	if !ok {
		return m, fmt.Errorf("mark database %s: it does not exist", name)
	}
	m.OID = d.OID
	if m.ID == "" {
		m.ID = newMarkerID()
	}
	if m.Created.IsZero() {
		m.Created = time.Now().UTC().Truncate(time.Second)
	}
	if m.Version == "" {
		m.Version = s.version
	}
	// One transaction: the comment, and the end of the creating state.
	q := "COMMENT ON DATABASE " + dbconn.Ident(name) + " IS " + dbconn.Literal(m.Comment()) +
		"; ALTER DATABASE " + dbconn.Ident(name) + " CONNECTION LIMIT -1"
	if _, err := s.conn.Exec(ctx, q); err != nil {
		return m, privilege(fmt.Errorf("mark database %s as dbinit's: %w", name, err), "mark database "+name, "ownership of the database (COMMENT ON DATABASE)")
	}
	return m, nil
}

// originDDL is dbinit.origin, the marker's half inside a database.
const originDDL = `
CREATE SCHEMA IF NOT EXISTS dbinit;
CREATE TABLE IF NOT EXISTS dbinit.origin (
    database_oid oid         PRIMARY KEY,
    id           text        NOT NULL,
    kind         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL
);
COMMENT ON TABLE dbinit.origin IS 'dbinit: which database dbinit made this one as; a copy of it has another OID and is not dbinit''s';
REVOKE ALL ON dbinit.origin FROM PUBLIC;`

// writeOrigin writes the marker's row into the database conn is connected
// to, replacing the row a clone inherited from its template.
func writeOrigin(ctx context.Context, conn *pgx.Conn, m Marker) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, originDDL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM dbinit.origin`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO dbinit.origin (database_oid, id, kind, created_by) VALUES ($1, $2, $3, $4)`,
			m.OID, m.ID, m.Kind, "dbinit "+m.Version)
		return err
	})
}

// readOrigin reads the marker's row of the database conn is connected to.
// ok is false when there is none for the database's own OID.
func readOrigin(ctx context.Context, conn *pgx.Conn) (id string, ok bool, err error) {
	err = conn.QueryRow(ctx, `
SELECT o.id FROM dbinit.origin o
WHERE to_regclass('dbinit.origin') IS NOT NULL
  AND o.database_oid = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&id)
	var pgErr interface{ SQLState() string }
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case errors.As(err, &pgErr) && pgErr.SQLState() == "42P01": // no dbinit.origin
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read dbinit.origin: %w", err)
	}
	return id, true, nil
}

// ours says whether dbinit made the database d, of one of the given kinds:
// its comment is a marker for its own OID, and, when dbinit can connect to
// it, dbinit.origin inside agrees. why says what is missing when it is not.
func (s *Server) ours(ctx context.Context, d dbInfo, kinds ...string) (ok bool, why string, err error) {
	m, valid := d.marker()
	if !valid && d.creating() && slices.ContainsFunc(kinds, func(k string) bool { return k == KindBuild || k == KindCheck || k == KindTest }) {
		// Created by dbinit, which died before marking it. Only for the
		// names dbinit generates (builds, scratch copies, test databases),
		// which the callers have matched: a connection limit alone,
		// which a person or a restored dump can set, never makes a
		// working database or a clone dbinit's.
		return true, "", nil
	}
	switch {
	case !valid && strings.HasPrefix(d.Comment, markerPrefix):
		return false, "its comment looks like dbinit's but does not name this database's OID (a copy, or a comment written by hand)", nil
	case !valid:
		return false, "it has no dbinit marker (dbinit did not make it)", nil
	}
	kindOK := false
	for _, k := range kinds {
		kindOK = kindOK || m.Kind == k
	}
	if !kindOK {
		return false, fmt.Sprintf("dbinit made it as a %s database, not as %s", m.Kind, strings.Join(kinds, " or ")), nil
	}
	if !d.AllowConn || m.Kind == KindTest {
		return true, "", nil // a template cannot be entered; test databases carry the comment only
	}
	conn, err := s.connect(ctx, d.Name)
	if err != nil {
		return false, "", fmt.Errorf("connect to %s to check its marker: %w", d.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	id, found, err := readOrigin(ctx, conn)
	switch {
	case err != nil:
		return false, "", err
	case found && id != m.ID:
		return false, "its dbinit.origin table and its comment disagree", nil
	}
	// No row for its OID: the run that made it was interrupted between the
	// comment and the row, and the comment, which names this database's
	// OID, is proof enough.
	return true, "", nil
}
