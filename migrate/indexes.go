package migrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/sqlsplit"
)

// InvalidIndexError says a no-transaction file left an index INVALID: a
// CREATE INDEX CONCURRENTLY that failed or was interrupted and could not be
// made again. The file is not recorded as applied. Exit code 1.
type InvalidIndexError struct {
	Path      string   // "db/007_index.sql"
	Line, Col int      // of the statement that creates them
	Table     string   // as the statement names it
	Indexes   []string // schema-qualified names of the INVALID indexes
	Unnamed   bool     // the statement gives the index no name
}

func (e *InvalidIndexError) Error() string {
	msg := fmt.Sprintf("%s:%d:%d: index %s on %s is INVALID", e.Path, e.Line, e.Col, strings.Join(e.Indexes, ", "), e.Table)
	if e.Unnamed {
		return msg + ": an interrupted CREATE INDEX CONCURRENTLY without an index name leaves such an index behind, and running it again makes another; drop them (DROP INDEX CONCURRENTLY ...), name the index in the file, and run dbinit again"
	}
	return msg + " after the statement that creates it; the file is not recorded as applied: drop it (DROP INDEX CONCURRENTLY ...) and run dbinit again"
}

// invalidIndexes lists the INVALID indexes on table (as written, resolved
// with the session's search_path): the one named index, or all when index
// is "".
func (r *runner) invalidIndexes(ctx context.Context, table, index string) ([]string, error) {
	rows, err := r.conn.Query(ctx, `
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indrelid = to_regclass($1) AND NOT i.indisvalid AND ($2 = '' OR c.relname = $2)
ORDER BY 1`, table, index)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// dropInvalidIndex drops the INVALID index statement i is about to create,
// left by an earlier attempt that failed or was interrupted, so that the
// statement (IF NOT EXISTS or not) builds it anew.
func (r *runner) dropInvalidIndex(ctx context.Context, st Step, i int) error {
	stmt := st.Script.Statements[i]
	names, err := r.invalidIndexes(ctx, stmt.table, stmt.index)
	if err != nil {
		return fmt.Errorf("%s: look for an INVALID index %s: %w", st.Script.Path, stmt.index, err)
	}
	for _, name := range names {
		r.m.log.Warn("dropping an INVALID index left by an interrupted CREATE INDEX CONCURRENTLY, to build it again",
			"file", st.Script.Path, "line", stmt.Line, "index", name)
		if _, err := r.conn.PgConn().Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+name).ReadAll(); err != nil {
			if lost := r.lost(ctx, st, i+1, err); lost != nil {
				return lost
			}
			return r.placeError(st, i, stmt.Offset, err)
		}
	}
	return nil
}

// checkIndexes refuses to record a no-transaction file applied while an
// index one of its CREATE INDEX CONCURRENTLY statements makes is INVALID.
func (r *runner) checkIndexes(ctx context.Context, st Step) error {
	for _, stmt := range st.Script.Statements {
		if !stmt.concurrent {
			continue
		}
		names, err := r.invalidIndexes(ctx, stmt.table, stmt.index)
		if err != nil {
			return fmt.Errorf("%s: check the indexes of %s: %w", st.Script.Path, stmt.table, err)
		}
		if len(names) > 0 {
			line, col := sqlsplit.Pos(st.Script.SQL, stmt.Offset+stmt.Start)
			return &InvalidIndexError{Path: st.Script.Path, Line: line, Col: col, Table: stmt.table, Indexes: names, Unnamed: stmt.index == ""}
		}
	}
	return nil
}
