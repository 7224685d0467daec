-- Reverses 005.
DROP INDEX graph.nodes_lower_name_idx;
DROP INDEX graph.edges_heavy_idx;
DROP INDEX graph.edges_source_kind_idx;
DROP INDEX graph.nodes_name_idx;
