-- dbinit:no-transaction
-- Reverses 007.
DROP INDEX CONCURRENTLY IF EXISTS graph.edges_created_at_idx;
