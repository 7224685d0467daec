-- Reverses 006. The lower-casing of kinds is not undone: the original spellings are gone.
ALTER TABLE graph.edges DROP CONSTRAINT edges_kind_fkey;
ALTER TABLE graph.nodes DROP CONSTRAINT nodes_kind_fkey;
DROP TABLE graph.kinds;
