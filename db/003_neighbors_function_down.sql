-- Reverses 003.
DROP FUNCTION graph.neighbors(bigint);
