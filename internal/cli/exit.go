package cli

import (
	"context"
	"errors"

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
		usage   *usageError
		cfgErr  *config.Error
		loadErr *migrate.LoadError
		planErr *migrate.PlanError
		sqlErr  *migrate.SQLError
		waitErr *dbconn.WaitError
		noDB    *dbconn.NoDatabaseError
		drift   *migrate.DriftError
		lockErr *migrate.LockTimeoutError
		nameErr *migrate.NameError
		refused *provision.RefusedError
		exists  *provision.ExistsError
		pgErr   *pgconn.PgError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &usage), errors.As(err, &cfgErr), errors.As(err, &loadErr), errors.As(err, &planErr), errors.As(err, &noDB),
		errors.As(err, &nameErr), errors.As(err, &refused), errors.As(err, &exists):
		return ExitUsage
	// A failing migration is exit 1 whatever its SQLSTATE, even
	// "permission denied" inside the file.
	case errors.As(err, &sqlErr):
		return ExitSQL
	case errors.As(err, &waitErr):
		return ExitUnreachable
	case errors.As(err, &drift):
		return ExitDrift
	case errors.As(err, &lockErr):
		return ExitLocked
	case errors.As(err, &pgErr) && isAuthCode(pgErr.Code):
		return ExitAuth
	}
	return ExitSQL
}

// isAuthCode: invalid authorization (28xxx) and insufficient privilege, when
// dbinit's own work (CREATE DATABASE, the history table) is refused.
func isAuthCode(code string) bool {
	return code == "42501" || code[:2] == "28"
}
