package provision

import "fmt"

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
