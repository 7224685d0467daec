-- dbinit:no-transaction
-- 007: index edges by creation time without blocking writes.
-- Pattern: CREATE INDEX CONCURRENTLY, which cannot run inside a transaction,
-- so this file runs statement by statement. IF NOT EXISTS makes a re-run after
-- a crash harmless.

CREATE INDEX CONCURRENTLY IF NOT EXISTS edges_created_at_idx ON graph.edges (created_at);
