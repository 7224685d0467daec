package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/internal/dbconn"
)

// Server is one PostgreSQL server, reached through a connection to its
// maintenance database. It is not safe for concurrent use, as the
// connection is not.
type Server struct {
	conn    *pgx.Conn
	log     *slog.Logger
	version string
	connect func(ctx context.Context, database string) (*pgx.Conn, error)
	warned  map[string]bool // databases already reported as not dbinit's
}

// Options configure a Server.
type Options struct {
	Logger *slog.Logger // progress and warnings; nil = nowhere
	// Connect opens a connection to another database of the same server,
	// with the maintenance connection's settings. nil = connect directly,
	// waiting up to 30s (a database just created accepts connections at
	// once; only a server restarting makes it wait).
	Connect func(ctx context.Context, database string) (*pgx.Conn, error)
	// Version is dbinit's version, recorded in history rows and markers,
	// "v1.2.0".
	Version string
}

// New returns a Server working through conn, a connection to the
// maintenance database. The caller keeps ownership of conn.
func New(conn *pgx.Conn, opts Options) *Server {
	s := &Server{conn: conn, log: opts.Logger, connect: opts.Connect, version: opts.Version}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.connect == nil {
		s.connect = func(ctx context.Context, database string) (*pgx.Conn, error) {
			return dbconn.Connect(ctx, dbconn.ForDatabase(conn.Config(), database), dbconn.Options{Timeout: 30 * time.Second, AcceptInitServer: true})
		}
	}
	return s
}

// Conn is the maintenance connection.
func (s *Server) Conn() *pgx.Conn { return s.conn }

// Major is the server's major version, 17 for "17.2 (Debian 17.2-1)".
func (s *Server) Major() int {
	v := s.conn.PgConn().ParameterStatus("server_version")
	n, _ := strconv.Atoi(strings.SplitN(strings.SplitN(v, ".", 2)[0], " ", 2)[0])
	return n
}

// Exists reports whether database name exists.
func (s *Server) Exists(ctx context.Context, name string) (bool, error) {
	var ok bool
	if err := s.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	return ok, nil
}

// Create creates an empty database, owned by owner ("" = the connecting
// user).
func (s *Server) Create(ctx context.Context, name, owner string) error {
	if _, err := s.conn.Exec(ctx, "CREATE DATABASE "+dbconn.Ident(name)+ownerClause(owner)+creatingClause); err != nil {
		return privilege(ownerError(owner, fmt.Errorf("create database %s: %w", name, err)),
			"create database "+name, "CREATEDB (CREATE ROLE ... CREATEDB, or ALTER ROLE ... CREATEDB)")
	}
	return nil
}

// Strategies CREATE DATABASE knows (PostgreSQL 15 and later).
const (
	StrategyDefault  = ""          // the server's default: wal_log
	StrategyWALLog   = "wal_log"   // copies block by block through the WAL
	StrategyFileCopy = "file_copy" // copies the files, then checkpoints; faster for small databases
)

// CheckStrategy rejects a CREATE DATABASE strategy PostgreSQL does not know.
func CheckStrategy(strategy string) error {
	switch strings.ToLower(strategy) {
	case StrategyDefault, StrategyWALLog, StrategyFileCopy:
		return nil
	}
	return fmt.Errorf("clone strategy %q: must be %s or %s", strategy, StrategyWALLog, StrategyFileCopy)
}

// CloneOptions say how Clone creates its database.
type CloneOptions struct {
	Owner    string // "" = the connecting user
	Strategy string // StrategyWALLog, StrategyFileCopy or StrategyDefault; ignored, with a warning, before PostgreSQL 15
}

// Clone creates database name from template. It fails if name exists.
func (s *Server) Clone(ctx context.Context, template, name string, o CloneOptions) error {
	if err := CheckStrategy(o.Strategy); err != nil {
		return err
	}
	q := "CREATE DATABASE " + dbconn.Ident(name) + " TEMPLATE " + dbconn.Ident(template) + ownerClause(o.Owner) + creatingClause
	if o.Strategy != StrategyDefault {
		if major := s.Major(); major < 15 {
			s.log.Warn("a clone strategy needs PostgreSQL 15 or later; using the server's only one", "strategy", o.Strategy, "server_major", major)
		} else {
			q += " STRATEGY " + strings.ToUpper(o.Strategy)
		}
	}
	if _, err := s.conn.Exec(ctx, q); err != nil {
		return privilege(ownerError(o.Owner, fmt.Errorf("clone %s from %s: %w", name, template, err)),
			"create database "+name+" from "+template, "CREATEDB, and the source must be a template or owned by it")
	}
	return nil
}

// Drop removes a database, ending its sessions. dbinit drops only
// databases it made, or that the user asked it to replace.
func (s *Server) Drop(ctx context.Context, name string) error {
	if _, err := s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+dbconn.Ident(name)+" WITH (FORCE)"); err != nil {
		return privilege(fmt.Errorf("drop database %s: %w", name, err), "drop database "+name,
			"ownership of the database, and the right to end its sessions (sessions of a superuser cannot be ended by other roles)")
	}
	return nil
}

// DropTemplate removes a template database: unmarks it, then drops it.
func (s *Server) DropTemplate(ctx context.Context, name string) error {
	if _, err := s.conn.Exec(ctx, "ALTER DATABASE "+dbconn.Ident(name)+" IS_TEMPLATE false"); err != nil {
		return privilege(fmt.Errorf("unmark template %s: %w", name, err), "unmark template "+name, "ownership of the database")
	}
	return s.Drop(ctx, name)
}

// sessions counts the client sessions connected to database name, other
// than ours. Autovacuum workers do not count: they are no user of the
// database, and DROP DATABASE ... WITH (FORCE) ends them.
func (s *Server) sessions(ctx context.Context, name string) (int, error) {
	var n int
	err := s.conn.QueryRow(ctx, `
SELECT count(*) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`, name).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count sessions on %s: %w", name, err)
	}
	return n, nil
}

// Reserved refuses a database PostgreSQL or dbinit needs for itself as a
// database dbinit would create, fill, replace or drop: postgres,
// template0, template1, and the maintenance database.
func (s *Server) Reserved(name string) error {
	if name == s.conn.Config().Database {
		return s.reservedError(name)
	}
	return s.reservedExceptMaintenance(name)
}

// reservedExceptMaintenance is Reserved for production mode, where the
// URL may name the working database itself.
func (s *Server) reservedExceptMaintenance(name string) error {
	switch name {
	case "postgres", "template0", "template1":
		return s.reservedError(name)
	}
	return nil
}

func (s *Server) reservedError(name string) error {
	return &RefusedError{Database: name, Reason: "is a database PostgreSQL or dbinit needs for itself (postgres, template0, template1 and the maintenance database are never migrated, replaced or dropped)",
		Hint: "choose another name (DBINIT_DATABASE, DBINIT_TEMPLATE, --database)"}
}

// ownerError turns "role does not exist" for the owner into a
// *MissingRoleError.
func ownerError(owner string, err error) error {
	var pgErr *pgconn.PgError
	if owner != "" && errors.As(err, &pgErr) && pgErr.Code == "42704" {
		return &MissingRoleError{Role: owner}
	}
	return err
}

// creatingClause gives a new database dbinit's creating connection limit
// until it is marked (see creatingConnLimit).
var creatingClause = " CONNECTION LIMIT " + strconv.Itoa(creatingConnLimit)

func ownerClause(owner string) string {
	if owner == "" {
		return ""
	}
	return " OWNER " + dbconn.Ident(owner)
}
