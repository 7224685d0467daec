-- Reverses 002.
ALTER TABLE graph.nodes DROP COLUMN properties;
ALTER TABLE graph.nodes DROP COLUMN slug;
