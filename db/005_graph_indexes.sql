-- 005: indexes for the common queries.
-- Pattern: regular, composite and partial indexes.

-- Regular: look nodes up by name.
CREATE INDEX nodes_name_idx ON graph.nodes (name);

-- Composite: "edges of this kind leaving this node", and it serves source_id alone too.
CREATE INDEX edges_source_kind_idx ON graph.edges (source_id, kind);

-- Partial: only heavy edges are queried by weight; the index stays small.
CREATE INDEX edges_heavy_idx ON graph.edges (weight DESC) WHERE weight >= 10;

-- Expression index for case-insensitive name search.
CREATE INDEX nodes_lower_name_idx ON graph.nodes (lower(name));
