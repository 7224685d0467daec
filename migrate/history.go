package migrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// HistoryTable is where every managed database records its migrations.
const HistoryTable = "dbinit.schema_migrations"

// historyDDL creates the history table. It runs under the migration lock, so
// IF NOT EXISTS never races with another runner.
const historyDDL = `
CREATE SCHEMA IF NOT EXISTS dbinit;
COMMENT ON SCHEMA dbinit IS 'dbinit: migration history; managed by dbinit, do not edit by hand';
CREATE TABLE IF NOT EXISTS dbinit.schema_migrations (
    version          bigint      PRIMARY KEY CHECK (version > 0),
    name             text        NOT NULL,
    checksum         text        NOT NULL,
    state            text        NOT NULL DEFAULT 'applied' CHECK (state IN ('applied', 'partial')),
    statements_done  integer     NOT NULL DEFAULT 0,
    statements_total integer     NOT NULL DEFAULT 0,
    prefix_checksum  text,
    applied_at       timestamptz NOT NULL DEFAULT now(),
    execution_ms     bigint      NOT NULL DEFAULT 0,
    applied_by       text        NOT NULL DEFAULT current_user,
    dbinit_version   text        NOT NULL DEFAULT ''
);
-- Format 2: which checksum a row records (older rows: the file's bytes).
ALTER TABLE dbinit.schema_migrations ADD COLUMN IF NOT EXISTS checksum_kind text NOT NULL DEFAULT 'bytes';
COMMENT ON TABLE dbinit.schema_migrations IS 'dbinit history format 2';`

// ReadHistory returns the rows of a database's history table, none when it
// does not exist yet.
func ReadHistory(ctx context.Context, conn *pgx.Conn) ([]Applied, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('dbinit.schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `
SELECT version, name, checksum, coalesce(to_jsonb(h) ->> 'checksum_kind', 'bytes'), state, statements_done, statements_total,
       coalesce(prefix_checksum, ''), applied_at, execution_ms, applied_by
FROM dbinit.schema_migrations h ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Applied, error) {
		var a Applied
		var state string
		err := r.Scan(&a.Version, &a.Name, &a.Checksum, &a.ChecksumKind, &state, &a.StatementsDone, &a.StatementsTotal,
			&a.PrefixChecksum, &a.AppliedAt, &a.ExecutionMS, &a.AppliedBy)
		a.State = State(state)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}

func ensureHistory(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, historyDDL); err != nil {
		return fmt.Errorf("create history table %s: %w", HistoryTable, err)
	}
	return nil
}

// historyRaceMark is in the error recordSQL and deleteSQL raise when their
// row is not theirs to write (22P02, from a cast that cannot succeed:
// plain SQL has no RAISE). It depends on the statement's result, so the
// planner cannot fold it away and raise it when there is no race.
const historyRaceMark = "dbinit: history row taken by another runner"

// recordSQL inserts or completes a history row. A partial row of the same
// version is overwritten when the file completes; an applied one never is:
// then nothing is written and the statement fails, and the caller rolls
// its file back (another runner recorded it, which only happens when a
// runner lost its lock).
const recordSQL = `
WITH w AS (
INSERT INTO dbinit.schema_migrations AS h
    (version, name, checksum, checksum_kind, state, statements_done, statements_total, prefix_checksum, execution_ms, applied_by, dbinit_version)
VALUES ($1, $2, $3, 'text', $4, $5, $6, nullif($7, ''), $8, current_user || coalesce(' (' || nullif($9, '') || ')', ''), $10)
ON CONFLICT (version) DO UPDATE SET
    name = EXCLUDED.name, checksum = EXCLUDED.checksum, checksum_kind = EXCLUDED.checksum_kind, state = EXCLUDED.state,
    statements_done = EXCLUDED.statements_done, statements_total = EXCLUDED.statements_total,
    prefix_checksum = EXCLUDED.prefix_checksum, applied_at = now(),
    execution_ms = h.execution_ms + EXCLUDED.execution_ms, applied_by = EXCLUDED.applied_by,
    dbinit_version = EXCLUDED.dbinit_version
WHERE h.state = 'partial'
RETURNING 1)
SELECT CASE WHEN n = 1 THEN 1 ELSE ('` + historyRaceMark + ` (' || n || ' rows)')::int END FROM (SELECT count(*) AS n FROM w) c`

// deleteSQL removes a reverted version's row, and fails like recordSQL when
// there is none to remove.
const deleteSQL = `
WITH d AS (DELETE FROM dbinit.schema_migrations WHERE version = $1 RETURNING 1)
SELECT CASE WHEN n = 1 THEN 1 ELSE ('` + historyRaceMark + ` (' || n || ' rows)')::int END FROM (SELECT count(*) AS n FROM d) c`

type record struct {
	m          *Migration
	state      State
	done       int
	prefix     string
	durationMS int64
}

func (r record) args(runner, version string) []any {
	return []any{r.m.Version, r.m.Name, r.m.Up.Checksum, string(r.state), r.done, len(r.m.Up.Statements), r.prefix, r.durationMS, runner, version}
}
