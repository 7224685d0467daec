-- 004: neighbours up to a given depth.
-- Pattern: modify a function whose signature changes: drop the old version,
-- create the new one (CREATE OR REPLACE cannot change arguments or result).

DROP FUNCTION graph.neighbors(bigint);

CREATE FUNCTION graph.neighbors(node_id bigint, max_depth integer DEFAULT 1)
RETURNS TABLE (id bigint, name text, depth integer)
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    IF max_depth < 1 THEN
        RAISE EXCEPTION 'max_depth must be at least 1, got %', max_depth
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH RECURSIVE walk (id, depth) AS (
        SELECT e.target_id, 1 FROM graph.edges e WHERE e.source_id = node_id
        UNION
        SELECT e.target_id, w.depth + 1
        FROM walk w JOIN graph.edges e ON e.source_id = w.id
        WHERE w.depth < max_depth
    )
    SELECT n.id, n.name, min(w.depth)::integer
    FROM walk w JOIN graph.nodes n ON n.id = w.id
    WHERE n.id <> node_id
    GROUP BY n.id, n.name
    ORDER BY 3, n.id;
END;
$fn$;
COMMENT ON FUNCTION graph.neighbors(bigint, integer) IS 'Nodes reachable within max_depth outgoing edges, with their distance';
