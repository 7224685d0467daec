// Package dbconn connects to PostgreSQL the way an init container must: it
// waits for a server that is still starting, tells a server that will never
// let it in from one that is not up yet, and never prints a password.
package dbconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/savvi-studio/dbinit/internal/retry"
)

// WaitError says the server did not accept connections in time. Exit code 3.
type WaitError struct {
	Waited time.Duration
	Target string // "127.0.0.1:5432/postgres"
	Last   error  // the last reason it was not ready
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("server %s not ready after %s (DBINIT_WAIT_TIMEOUT): %s", e.Target, e.Waited.Round(time.Millisecond), Reason(e.Last))
}

func (e *WaitError) Unwrap() error { return e.Last }

// ConnectError is a connection the server refused for good (a wrong
// password, a role that may not log in). Its text is the server's reason
// alone: pgx also lists its first attempt, which with sslmode=prefer is a
// TLS refusal that has nothing to do with the failure.
type ConnectError struct {
	Target string // "db:5432/postgres"
	User   string
	Err    error
}

func (e *ConnectError) Error() string {
	var pgErr *pgconn.PgError
	if errors.As(e.Err, &pgErr) {
		return fmt.Sprintf("connect to %s as %s: %s (SQLSTATE %s)", e.Target, e.User, pgErr.Message, pgErr.Code)
	}
	return fmt.Sprintf("connect to %s as %s: %s", e.Target, e.User, Reason(e.Err))
}

func (e *ConnectError) Unwrap() error { return e.Err }

// NoDatabaseError says the database to connect to does not exist. Exit code 2
// for the maintenance database (a configuration error).
type NoDatabaseError struct {
	Name string
	Err  error
}

func (e *NoDatabaseError) Error() string {
	return fmt.Sprintf("database %q does not exist on the server", e.Name)
}

func (e *NoDatabaseError) Unwrap() error { return e.Err }

// TLSRefusedError says the connection settings require TLS and the server
// does not offer it. Waiting does not change that: it is a configuration
// error (exit code 2).
type TLSRefusedError struct{ Target string }

func (e *TLSRefusedError) Error() string {
	return fmt.Sprintf("the server %s does not offer TLS, and the connection settings require it (sslmode=require, verify-ca or verify-full): "+
		"enable TLS on the server, or set sslmode=prefer or disable (in DATABASE_URL, or PGSSLMODE)", e.Target)
}

// tlsRefused: pgx says so only in words. With sslmode=prefer pgx tries
// without TLS too, and a server error of that attempt (a wrong password)
// is what counts.
func tlsRefused(err error) bool {
	var pgErr *pgconn.PgError
	return err != nil && strings.Contains(err.Error(), "server refused TLS connection") && !errors.As(err, &pgErr)
}

// Options control Connect.
type Options struct {
	Timeout  time.Duration // overall deadline for the server to accept us, 60s
	Logger   *slog.Logger  // progress while waiting; nil = silent
	LogEvery time.Duration // how often to say we are still waiting; 0 = 5s
	// AcceptInitServer accepts a server that listens on no TCP address: the
	// temporary server the postgres image runs during its first start.
	// Normally that server is about to go away, so it counts as not ready;
	// dbinit running inside that first start (entrypoint mode) wants it.
	AcceptInitServer bool
}

// Connect connects to cc, retrying while the server is starting up, until
// opts.Timeout. Authentication failures and a missing database fail at once.
func Connect(ctx context.Context, cc *pgx.ConnConfig, opts Options) (*pgx.Conn, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = 5 * time.Second
	}
	cc = cc.Copy()
	// On cancellation (SIGTERM), ask the server to cancel the running
	// statement so its transaction rolls back and its locks go now; pgx's
	// default only closes the socket, and a busy backend would not notice
	// until its statement ends.
	cc.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 2 * time.Second}
	}
	log := opts.Logger
	lastLog := time.Now()
	var lastErr error // the last reason an attempt gave, for the timeout error
	var conn *pgx.Conn
	// Polls every 20-125 ms: a server that becomes ready is noticed within
	// about 100 ms (compose starts dbinit with the server; the postgres
	// image restarts once on its first start). An attempt on a server
	// that is not listening costs nothing, one that is starting up a
	// backend that exits at once. A server out of connection slots is
	// tried once a second.
	err := retry.Do(ctx, retry.Policy{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: 0.25, Timeout: opts.Timeout},
		func(actx context.Context, a retry.Attempt) error {
			c, err := connectOnce(actx, cc, opts.AcceptInitServer)
			if err == nil {
				if a.N > 1 && log != nil {
					log.Info("server is ready", "target", Target(cc), "waited_ms", a.Elapsed.Milliseconds())
				}
				conn = c
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if tlsRefused(err) {
				return &TLSRefusedError{Target: Target(cc)}
			}
			var pooler *PoolerError
			if errors.As(err, &pooler) {
				return err
			}
			if !Retryable(err) {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "3D000" {
					return &NoDatabaseError{Name: cc.Database, Err: err}
				}
				return &ConnectError{Target: Target(cc), User: cc.User, Err: err}
			}
			// An attempt cut short by the deadline says less than the one
			// before it ("connection refused").
			if actx.Err() == nil || lastErr == nil {
				lastErr = err
			}
			if log != nil && (a.N == 1 || time.Since(lastLog) >= opts.LogEvery) {
				log.Info("waiting for the server", "target", Target(cc), "reason", Reason(err), "waited_ms", a.Elapsed.Milliseconds())
				lastLog = time.Now()
			}
			// No connection slots left: trying ten times a second would
			// only take slots from the applications on a busy server.
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "53300" {
				return retry.AgainAfter(err, time.Second)
			}
			return retry.Again(err)
		})
	var ex *retry.ExhaustedError
	if errors.As(err, &ex) {
		return nil, &WaitError{Waited: ex.Elapsed, Target: Target(cc), Last: lastErr}
	}
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// errInitServer marks a server that listens on no TCP address.
var errInitServer = errors.New("the server listens on no TCP address: the postgres image's temporary first-start server, about to restart")

func connectOnce(ctx context.Context, cc *pgx.ConnConfig, acceptInit bool) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*pgx.Conn, error) {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	// One round trip for both checks, by the simple protocol: behind a
	// transaction-mode pooler a prepared statement could land on another
	// client's server session.
	var listen string
	var pid uint32
	if err := conn.QueryRow(ctx, `SELECT current_setting('listen_addresses'), pg_backend_pid()`, pgx.QueryExecModeSimpleProtocol).Scan(&listen, &pid); err != nil {
		return fail(err)
	}
	if listen == "" && !acceptInit {
		return fail(errInitServer)
	}
	// The process id the server announced at connection (its cancel key)
	// is not the session's: a pooler (PgBouncer) stands in between and
	// gave its own. It must keep one server session per client.
	if pid != conn.PgConn().PID() {
		if err := checkPoolMode(ctx, cc, pid); err != nil {
			return fail(err)
		}
	}
	return conn, nil
}

// PoolerError says dbinit reaches the server through a connection pooler
// that does not give each client a session of its own (PgBouncer's
// pool_mode = transaction or statement): dbinit's lock, the session
// settings every file starts from and its prepared statements would land
// on other clients' sessions. Exit code 2.
type PoolerError struct{ Target string }

func (e *PoolerError) Error() string {
	return fmt.Sprintf("%s is reached through a connection pooler in transaction (or statement) pooling mode: dbinit needs one server session for a whole run "+
		"(its advisory lock, the session settings each file starts from, its prepared statements); nothing was run: "+
		"connect dbinit to PostgreSQL directly, or through a pool in session mode (PgBouncer pool_mode = session)", e.Target)
}

// checkPoolMode tells a session-mode pooler from a transaction-mode one: a
// second client of the same pool, asking right after the first one went
// idle, gets the same server session only when sessions are shared between
// clients (PgBouncer reuses the session released last).
func checkPoolMode(ctx context.Context, cc *pgx.ConnConfig, firstPID uint32) error {
	other, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer other.Close(context.WithoutCancel(ctx))
	var pid uint32
	if err := other.QueryRow(ctx, `SELECT pg_backend_pid()`, pgx.QueryExecModeSimpleProtocol).Scan(&pid); err != nil {
		return err
	}
	if pid == firstPID {
		return &PoolerError{Target: Target(cc)}
	}
	return nil
}

// Retryable says whether a connection error may go away by waiting: the
// server is not up yet, starting, shutting down for its restart, or full.
// Authentication, a missing database and other server refusals are final.
func Retryable(err error) bool {
	if errors.Is(err, errInitServer) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P03", // cannot_connect_now: starting up or shutting down
			"53300", // too_many_connections
			"57P01", // admin_shutdown: the first-start server going away
			"57P02": // crash_shutdown
			return true
		}
		return pgErr.Code[:2] == "08" // connection exceptions
	}
	// Anything below the protocol (refused, reset, DNS not yet resolvable,
	// EOF while the server is going down) may go away.
	return true
}

// Lost reports an error that means the connection to the server broke or
// the server ended the session (a restart, an administrator, the network),
// whatever dbinit was doing at the time.
func Lost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03":
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed")
}

// Reason is a short, password-free description of a connection error.
func Reason(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code + " " + pgErr.Message
	}
	msg := err.Error()
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		if inner := errors.Unwrap(ce); inner != nil {
			msg = inner.Error()
		}
	}
	// pgx lists one line per attempt (TLS, then plain), and some errors
	// twice ("hostname resolving error: X", then X); say each once.
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !slices.ContainsFunc(lines, func(seen string) bool { return strings.HasSuffix(seen, l) }) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

// Target names a server and database without credentials, "db:5432/postgres".
func Target(cc *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s", cc.Host, cc.Port, cc.Database)
}

// ForDatabase returns a copy of cc that connects to database name.
func ForDatabase(cc *pgx.ConnConfig, name string) *pgx.ConnConfig {
	c := cc.Copy()
	c.Database = name
	return c
}

// Ident quotes a name as an SQL identifier.
func Ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// Literal quotes a string as an SQL literal, for the few statements
// (COMMENT ON) that take no parameters.
func Literal(s string) string {
	out := make([]byte, 0, len(s)+2)
	out = append(out, '\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
