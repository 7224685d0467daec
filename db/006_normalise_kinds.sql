-- 006: node and edge kinds become lower-case and come from a list.
-- Pattern: a data migration that checks what it changed before it commits.

CREATE TABLE graph.kinds (
    kind        text PRIMARY KEY CHECK (kind = lower(kind)),
    description text NOT NULL
);
COMMENT ON TABLE graph.kinds IS 'The allowed node and edge kinds';

INSERT INTO graph.kinds (kind, description) VALUES
    ('person',   'A human being'),
    ('project',  'Something people work on'),
    ('document', 'A file or page'),
    ('works_on', 'Edge: a person works on a project'),
    ('knows',    'Edge: a person knows another person'),
    ('cites',    'Edge: a document cites another node');

-- Existing rows may use other spellings; normalise them, and register any
-- kind not in the list so no row is lost.
UPDATE graph.nodes SET kind = lower(trim(kind)) WHERE kind <> lower(trim(kind));
UPDATE graph.edges SET kind = lower(trim(kind)) WHERE kind <> lower(trim(kind));
INSERT INTO graph.kinds (kind, description)
SELECT DISTINCT kind, 'Registered by migration 006' FROM graph.nodes
UNION
SELECT DISTINCT kind, 'Registered by migration 006' FROM graph.edges
ON CONFLICT (kind) DO NOTHING;

-- Validate before the constraints go on: a failure here rolls back the whole file.
DO $$
DECLARE
    bad bigint;
BEGIN
    SELECT count(*) INTO bad
    FROM (SELECT kind FROM graph.nodes UNION ALL SELECT kind FROM graph.edges) k
    WHERE kind <> lower(kind) OR kind NOT IN (SELECT kind FROM graph.kinds);
    IF bad > 0 THEN
        RAISE EXCEPTION '% rows still have a kind that is not normalised', bad;
    END IF;
END
$$;

ALTER TABLE graph.nodes ADD CONSTRAINT nodes_kind_fkey FOREIGN KEY (kind) REFERENCES graph.kinds (kind);
ALTER TABLE graph.edges ADD CONSTRAINT edges_kind_fkey FOREIGN KEY (kind) REFERENCES graph.kinds (kind);
