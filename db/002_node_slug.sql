-- 002: every node gets a URL slug.
-- Pattern: add a column, backfill it, then SET NOT NULL; add a column with a default.

ALTER TABLE graph.nodes ADD COLUMN slug text;

UPDATE graph.nodes
SET slug = trim(BOTH '-' FROM lower(regexp_replace(name, '[^[:alnum:]]+', '-', 'g'))) || '-' || id
WHERE slug IS NULL;

ALTER TABLE graph.nodes ALTER COLUMN slug SET NOT NULL;
ALTER TABLE graph.nodes ADD CONSTRAINT nodes_slug_unique UNIQUE (slug);
COMMENT ON COLUMN graph.nodes.slug IS 'URL-safe, unique name, e.g. ''ada-lovelace-1''';

-- A constant default is stored in the catalog: no table rewrite, instant on large tables.
ALTER TABLE graph.nodes ADD COLUMN properties jsonb NOT NULL DEFAULT '{}'::jsonb;
COMMENT ON COLUMN graph.nodes.properties IS 'Free-form attributes of the node';
