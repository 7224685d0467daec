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
    state            text        NOT NULL DEFAULT 'applied' CONSTRAINT schema_migrations_state_check CHECK (state IN ('applied', 'partial', 'replaced')),
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
-- Format 3: squashed files. A squashed file's row says which versions it
-- replaces; the rows it replaced stay, in state 'replaced'. When it was
-- recorded over them, its row keeps the last replaced file's name and
-- checksum (a rollback to that release still finds its files applied) and
-- has its own in squash_name and squash_checksum.
ALTER TABLE dbinit.schema_migrations ADD COLUMN IF NOT EXISTS replaces text NOT NULL DEFAULT '';
ALTER TABLE dbinit.schema_migrations ADD COLUMN IF NOT EXISTS replaced_by bigint;
ALTER TABLE dbinit.schema_migrations ADD COLUMN IF NOT EXISTS squash_name text NOT NULL DEFAULT '';
ALTER TABLE dbinit.schema_migrations ADD COLUMN IF NOT EXISTS squash_checksum text NOT NULL DEFAULT '';
DO $dbinit$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'dbinit.schema_migrations'::regclass
                 AND conname = 'schema_migrations_state_check' AND pg_get_constraintdef(oid) LIKE '%replaced%') THEN
    ALTER TABLE dbinit.schema_migrations DROP CONSTRAINT IF EXISTS schema_migrations_state_check;
    ALTER TABLE dbinit.schema_migrations ADD CONSTRAINT schema_migrations_state_check CHECK (state IN ('applied', 'partial', 'replaced'));
  END IF;
END
$dbinit$;
COMMENT ON TABLE dbinit.schema_migrations IS 'dbinit history format 3';` // historyComment

// ReadHistory returns the rows of a database's history table, none when it
// does not exist yet.
func ReadHistory(ctx context.Context, conn *pgx.Conn) ([]Applied, error) {
	var exists bool
	var comment string
	// Simple protocol: one round trip each, no statement to prepare on a
	// connection that may read the history once.
	if err := conn.QueryRow(ctx, `SELECT c IS NOT NULL, coalesce(obj_description(c, 'pg_class'), '') FROM to_regclass('dbinit.schema_migrations') c`,
		pgx.QueryExecModeSimpleProtocol).Scan(&exists, &comment); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	if !exists {
		return nil, nil
	}
	query := historyQuery
	if comment != historyComment {
		query = historyQueryAnyFormat // a table an older dbinit made: columns may be missing
	}
	rows, err := conn.Query(ctx, query, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Applied, error) {
		var a Applied
		var state, name, sum, kind string
		err := r.Scan(&a.Version, &a.Name, &a.Checksum, &a.ChecksumKind, &state, &a.StatementsDone, &a.StatementsTotal,
			&a.PrefixChecksum, &a.AppliedAt, &a.ExecutionMS, &a.AppliedBy, &a.Replaces, &a.ReplacedBy, &a.RecordedOver, &name, &sum, &kind)
		a.State = State(state)
		if a.RecordedOver {
			before := a
			before.Name, before.Checksum, before.ChecksumKind, before.RecordedOver, before.Replaces = name, sum, kind, false, ""
			a.Replaced = &before
		}
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}

// historyComment marks a history table of the current format: every
// column historyQuery reads is there.
const historyComment = "dbinit history format 3"

// historyQuery reads a current history table. A squashed file recorded
// over the files it replaced reads as the squashed file, with the row as
// the last replaced file recorded it after it.
const historyQuery = `
SELECT version, CASE WHEN squash_name <> '' THEN squash_name ELSE name END, CASE WHEN squash_checksum <> '' THEN squash_checksum ELSE checksum END,
       CASE WHEN squash_checksum <> '' THEN 'text' ELSE checksum_kind END,
       state, statements_done, statements_total, coalesce(prefix_checksum, ''), applied_at, execution_ms, applied_by,
       replaces, coalesce(replaced_by, 0), squash_checksum <> '', name, checksum, checksum_kind
FROM dbinit.schema_migrations ORDER BY version`

// historyQueryAnyFormat is historyQuery for a table of any format: the
// columns later formats added are read through to_jsonb, which has them
// only when they exist.
const historyQueryAnyFormat = `
SELECT version,
       coalesce(nullif(to_jsonb(h) ->> 'squash_name', ''), name),
       coalesce(nullif(to_jsonb(h) ->> 'squash_checksum', ''), checksum),
       CASE WHEN coalesce(to_jsonb(h) ->> 'squash_checksum', '') <> '' THEN 'text' ELSE coalesce(to_jsonb(h) ->> 'checksum_kind', 'bytes') END,
       state, statements_done, statements_total,
       coalesce(prefix_checksum, ''), applied_at, execution_ms, applied_by,
       coalesce(to_jsonb(h) ->> 'replaces', ''), coalesce((to_jsonb(h) ->> 'replaced_by')::bigint, 0),
       coalesce(to_jsonb(h) ->> 'squash_checksum', '') <> '', name, checksum, coalesce(to_jsonb(h) ->> 'checksum_kind', 'bytes')
FROM dbinit.schema_migrations h ORDER BY version`

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
    (version, name, checksum, checksum_kind, state, statements_done, statements_total, prefix_checksum, execution_ms, applied_by, dbinit_version, replaces)
VALUES ($1, $2, $3, 'text', $4, $5, $6, nullif($7, ''), $8, current_user || coalesce(' (' || nullif($9, '') || ')', ''), $10, $11)
ON CONFLICT (version) DO UPDATE SET
    name = EXCLUDED.name, checksum = EXCLUDED.checksum, checksum_kind = EXCLUDED.checksum_kind, state = EXCLUDED.state, replaces = EXCLUDED.replaces,
    statements_done = EXCLUDED.statements_done, statements_total = EXCLUDED.statements_total,
    prefix_checksum = EXCLUDED.prefix_checksum, applied_at = now(),
    execution_ms = h.execution_ms + EXCLUDED.execution_ms, applied_by = EXCLUDED.applied_by,
    dbinit_version = EXCLUDED.dbinit_version
WHERE h.state = 'partial'
RETURNING 1)
SELECT CASE WHEN n = 1 THEN 1 ELSE ('` + historyRaceMark + ` (' || n || ' rows)')::int END FROM (SELECT count(*) AS n FROM w) c`

// deleteSQL removes a reverted version's row (and, for a squashed file, the
// rows it replaced), and fails like recordSQL when there is none to remove.
const deleteSQL = `
WITH d AS (DELETE FROM dbinit.schema_migrations WHERE version = $1 RETURNING 1),
r AS (DELETE FROM dbinit.schema_migrations WHERE state = 'replaced' AND replaced_by = $1)
SELECT CASE WHEN n = 1 THEN 1 ELSE ('` + historyRaceMark + ` (' || n || ' rows)')::int END FROM (SELECT count(*) AS n FROM d) c`

type record struct {
	m          *Migration
	state      State
	done       int
	prefix     string
	durationMS int64
}

func (r record) args(runner, version string) []any {
	return []any{r.m.Version, r.m.Name, r.m.Up.Checksum, string(r.state), r.done, len(r.m.Up.Statements), r.prefix, r.durationMS, runner, version, r.m.replaces()}
}

// replaces is the Replaces range as recorded, "" for ordinary files.
func (m *Migration) replaces() string {
	if m.Up.Replaces == nil {
		return ""
	}
	return m.Up.Replaces.String()
}

// replaceSQL records a squashed file over the history of the files it
// replaces, without running it: the rows of the replaced versions below its
// own ($2, a bigint[]) are kept in state 'replaced', and its own version's
// row ($1, the last replaced file's) gets the squashed file's name and
// checksum in squash_name and squash_checksum, keeping its own (a rollback
// to the release before the squash finds its files applied as they were).
// Every row must be there and applied; otherwise it fails like recordSQL.
const replaceSQL = `
WITH r AS (
UPDATE dbinit.schema_migrations SET state = 'replaced', replaced_by = $1
WHERE version = ANY($2::bigint[]) AND state = 'applied'
RETURNING 1),
w AS (
UPDATE dbinit.schema_migrations SET squash_name = $3, squash_checksum = $4, replaces = $5, dbinit_version = $6
WHERE version = $1 AND state = 'applied' AND replaces = ''
RETURNING 1)
SELECT CASE WHEN nr = cardinality($2::bigint[]) AND nw = 1 THEN 1
       ELSE ('` + historyRaceMark + ` (replaced ' || nr || ' rows, recorded ' || nw || ')')::int END
FROM (SELECT (SELECT count(*) FROM r) AS nr, (SELECT count(*) FROM w) AS nw) c`
