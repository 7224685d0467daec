package provision

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/migrate"
)

// RefusedError says dbinit will not create, fill, replace or drop a
// database, and why: it is one PostgreSQL or dbinit needs for itself, or
// dbinit did not make it. Nothing was changed.
type RefusedError struct {
	Database string
	Reason   string // "was not made by dbinit (its comment does not start with ...)"
	Hint     string // what to do instead; may be empty
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("database %q %s", e.Database, e.Reason)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// ExistsError says a database to be created already exists.
type ExistsError struct {
	Database string
	Hint     string // "add --replace to drop and re-create it"
}

func (e *ExistsError) Error() string {
	msg := fmt.Sprintf("database %q already exists", e.Database)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// MissingRoleError says the owner asked for databases dbinit creates
// (DBINIT_OWNER) is not a role on the server. Nothing was created.
type MissingRoleError struct{ Role string }

func (e *MissingRoleError) Error() string {
	return fmt.Sprintf("role %q does not exist on the server; create it first, or set the owner to an existing role", e.Role)
}

// TemplateDriftError says the template was built from files that differ
// from the folder in a way a rebuild would hide: an applied file edited,
// renamed or removed, or a new file below the template's highest version.
// Nothing was built or changed.
type TemplateDriftError struct {
	Template string
	Drift    *migrate.DriftError // the files, as a database's history names them
}

func (e *TemplateDriftError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "drift: template %s was built from files that differ from %s; nothing was built or changed", e.Template, e.Drift.Dir)
	for _, group := range [][]migrate.DriftItem{e.Drift.Changed, e.Drift.Missing, e.Drift.OutOfOrder, e.Drift.Partial} {
		for _, it := range group {
			fmt.Fprintf(&b, "\n  %s (version %d)", it.File, it.Version)
		}
	}
	b.WriteString("\nrestore the files, or rebuild the template from the folder as it is (DBINIT_RESET=true also re-clones the working database; `dbinit clone --rebuild` rebuilds it for a clone)")
	return b.String()
}

func (e *TemplateDriftError) Unwrap() error { return e.Drift }

// PrivilegeError says the server refused dbinit's role something it needs
// (SQLSTATE 42501), and names the privilege. Exit code 4.
type PrivilegeError struct {
	Action string // "create the template's build database"
	Need   string // "CREATEDB"
	Err    error
}

func (e *PrivilegeError) Error() string {
	return fmt.Sprintf("%s: the role needs %s: %v", e.Action, e.Need, e.Err)
}

func (e *PrivilegeError) Unwrap() error { return e.Err }

// privilege turns a permission error of action into a *PrivilegeError
// naming what is needed; other errors pass.
func privilege(err error, action, need string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return &PrivilegeError{Action: action, Need: need, Err: pgErr}
	}
	return err
}
