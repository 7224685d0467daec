-- 001: the graph schema: nodes and the edges between them.
-- Pattern: add tables with indexes and comments.

CREATE SCHEMA graph;
COMMENT ON SCHEMA graph IS 'Nodes and typed, weighted edges between them';

CREATE TABLE graph.nodes (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text        NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE graph.nodes IS 'A thing in the graph: a person, a project, a document';
COMMENT ON COLUMN graph.nodes.kind IS 'What the node is, e.g. ''person'' or ''project''';

CREATE TABLE graph.edges (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id  bigint      NOT NULL REFERENCES graph.nodes (id) ON DELETE CASCADE,
    target_id  bigint      NOT NULL REFERENCES graph.nodes (id) ON DELETE CASCADE,
    kind       text        NOT NULL,
    weight     real        NOT NULL DEFAULT 1 CHECK (weight > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT edges_no_self_loop CHECK (source_id <> target_id),
    CONSTRAINT edges_unique UNIQUE (source_id, target_id, kind)
);
COMMENT ON TABLE graph.edges IS 'A directed, typed edge; weight > 0';

-- Foreign keys are not indexed automatically; walking the graph backwards needs this one.
CREATE INDEX edges_target_id_idx ON graph.edges (target_id);
CREATE INDEX nodes_kind_idx ON graph.nodes (kind);
