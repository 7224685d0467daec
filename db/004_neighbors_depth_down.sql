-- Reverses 004: back to the one-level function of 003.
DROP FUNCTION graph.neighbors(bigint, integer);

CREATE FUNCTION graph.neighbors(node_id bigint)
RETURNS TABLE (id bigint, name text, edge_kind text, weight real)
LANGUAGE sql STABLE
AS $$
    SELECT n.id, n.name, e.kind, e.weight
    FROM graph.edges e
    JOIN graph.nodes n ON n.id = e.target_id
    WHERE e.source_id = node_id
    ORDER BY e.weight DESC, n.id;
$$;
COMMENT ON FUNCTION graph.neighbors(bigint) IS 'Nodes one outgoing edge away, heaviest edge first';
