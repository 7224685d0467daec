package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/migrate"
)

// Exit codes: the contract's table, decided here and nowhere else.
const (
	ExitOK          = 0
	ExitSQL         = 1 // a migration failed
	ExitUsage       = 2 // usage or configuration error, bad migration folder
	ExitUnreachable = 3 // server not reachable within DBINIT_WAIT_TIMEOUT
	ExitAuth        = 4 // authentication or permission refused
	ExitDrift       = 5 // history and folder disagree
	ExitLocked      = 6 // another runner held the lock too long
	ExitPending     = 7 // status --exit-code: files are pending
	ExitInterrupted = 130
)

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// ExitCode maps an error to the contract's exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var (
		usage    *usageError
		cfgErr   *config.Error
		loadErr  *migrate.LoadError
		planErr  *migrate.PlanError
		sqlErr   *migrate.SQLError
		waitErr  *dbconn.WaitError
		noDB     *dbconn.NoDatabaseError
		noTLS    *dbconn.TLSRefusedError
		pooler   *dbconn.PoolerError
		snap     *provision.SnapshotError
		drift    *migrate.DriftError
		manifest *migrate.ManifestError
		lockErr  *migrate.LockTimeoutError
		lost     *migrate.ConnectionLostError
		ddlLock  *migrate.LockRetryError
		lockGone *migrate.LockLostError
		nameErr  *migrate.NameError
		refused  *provision.RefusedError
		exists   *provision.ExistsError
		role     *provision.MissingRoleError
		pgErr    *pgconn.PgError
		hook     *HookError
	)
	var gate *exitError
	switch {
	case errors.As(err, &gate):
		return gate.code
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &hook):
		return ExitSQL
	case errors.As(err, &usage), errors.As(err, &cfgErr), errors.As(err, &loadErr), errors.As(err, &planErr), errors.As(err, &noDB),
		errors.As(err, &nameErr), errors.As(err, &refused), errors.As(err, &exists), errors.As(err, &role),
		errors.As(err, &noTLS), errors.As(err, &pooler):
		return ExitUsage
	// Before SQLError: a session the server ended is not the file's fault.
	case errors.As(err, &lost):
		return ExitUnreachable
	// Before SQLError too: a lock the application held for longer than the
	// retries went on is transient, like another runner's lock.
	case errors.As(err, &ddlLock), errors.As(err, &lockGone), errors.As(err, &snap) && snap.Busy:
		return ExitLocked
	// A failing migration is exit 1 whatever its SQLSTATE, even
	// "permission denied" inside the file.
	case errors.As(err, &sqlErr):
		return ExitSQL
	case errors.As(err, &waitErr):
		return ExitUnreachable
	case errors.As(err, &drift), errors.As(err, &manifest):
		return ExitDrift
	case errors.As(err, &lockErr):
		return ExitLocked
	case errors.As(err, &pgErr) && isAuthCode(pgErr.Code):
		return ExitAuth
	case dbconn.Lost(err):
		// Outside a migration file: taking the lock, reading the history.
		return ExitUnreachable
	}
	return ExitSQL
}

// explain adds what only the command line knows to an error: which setting
// a value came from.
func explain(err error) error {
	var role *provision.MissingRoleError
	if errors.As(err, &role) {
		return fmt.Errorf("DBINIT_OWNER: %w", err)
	}
	return err
}

// isAuthCode: invalid authorization (28xxx) and insufficient privilege, when
// dbinit's own work (CREATE DATABASE, the history table) is refused.
func isAuthCode(code string) bool {
	return code == "42501" || code[:2] == "28"
}

// exitError ends a run with a given code: status --exit-code's gate.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
