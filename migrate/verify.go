package migrate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// VerifyError says a database is not in the state its migrations promise
// after a run: a file not applied or changed, or an index a migration
// builds left INVALID. Exit code 1.
type VerifyError struct {
	Database string
	Problems []string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verification of %s after migrating failed:\n  %s", e.Database, strings.Join(e.Problems, "\n  "))
}

// Verify checks that the database conn is connected to has every file of
// set up to version to (0 = all) applied with its current checksum and
// nothing partial, and that no index on a table that a migration indexes
// CONCURRENTLY is INVALID. It returns nil or a *VerifyError; other errors
// are failures to check.
func Verify(ctx context.Context, conn *pgx.Conn, set *Set, to int64) error {
	applied, err := ReadHistory(ctx, conn)
	if err != nil {
		return err
	}
	return VerifyHistory(ctx, conn, set, to, applied)
}

// VerifyHistory is Verify with the history already read (applied, as
// ReadHistory returned it on conn's database, with nothing run since).
func VerifyHistory(ctx context.Context, conn *pgx.Conn, set *Set, to int64, applied []Applied) error {
	var problems []string
	for _, e := range Status(set, applied) {
		if to > 0 && e.Version > to {
			continue
		}
		switch e.State {
		case StateApplied, StateReplaced:
		case StateMissing:
			if e.Version > set.Latest() {
				continue // a newer release's; PlanUp warns about it
			}
			problems = append(problems, fmt.Sprintf("version %d (%s) is recorded but has no file", e.Version, e.Name))
		default:
			problems = append(problems, fmt.Sprintf("%s (version %d) is %s", e.Path, e.Version, e.State))
		}
	}
	invalid, err := InvalidIndexes(ctx, conn, set)
	if err != nil {
		return err
	}
	problems = append(problems, invalid...)
	if len(problems) > 0 {
		return &VerifyError{Database: conn.Config().Database, Problems: problems}
	}
	return nil
}

// InvalidIndexes lists, as problems, the INVALID indexes on the tables the
// set's migrations index CONCURRENTLY: what a failed or killed CREATE INDEX
// CONCURRENTLY leaves behind.
func InvalidIndexes(ctx context.Context, conn *pgx.Conn, set *Set) ([]string, error) {
	var problems []string
	tables := map[string]bool{}
	for _, m := range set.Migrations {
		for _, st := range m.Up.Statements {
			if st.concurrent {
				tables[st.table] = true
			}
		}
	}
	for _, table := range slices.Sorted(maps.Keys(tables)) {
		var invalid []string
		rows, err := conn.Query(ctx, `
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indrelid = to_regclass($1) AND NOT i.indisvalid ORDER BY 1`, table)
		if err == nil {
			invalid, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			return nil, fmt.Errorf("verify the indexes of %s: %w", table, err)
		}
		for _, ix := range invalid {
			problems = append(problems, fmt.Sprintf("index %s on %s is INVALID; drop it (DROP INDEX CONCURRENTLY) and run dbinit again", ix, table))
		}
	}
	return problems, nil
}
