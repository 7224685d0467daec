-- Reverses 001: drops the graph schema and everything in it.
DROP TABLE graph.edges;
DROP TABLE graph.nodes;
DROP SCHEMA graph;
