package sqlsplit

import (
	"fmt"
	"strings"
	"testing"
)

// benchInput builds about size bytes of migration-like SQL: PL/pgSQL
// functions, DO blocks, SQL-standard bodies, inserts with quoted text,
// comments and indexes.
func benchInput(size int) string {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `-- migration step %[1]d: it's got a quote; and a semicolon
CREATE TABLE IF NOT EXISTS item_%[1]d (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL DEFAULT 'unnamed; really',
    "weird; column" numeric(10, 2) CHECK ("weird; column" >= 0)
);
/* Block comment /* nested; */ still a comment */
CREATE OR REPLACE FUNCTION item_%[1]d_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.name := coalesce(NEW.name, E'default\'s; value');
    RAISE NOTICE 'touched %%', NEW.id;
    RETURN NEW;
END;
$$;
CREATE FUNCTION item_%[1]d_count() RETURNS bigint LANGUAGE sql
BEGIN ATOMIC
    SELECT CASE WHEN count(*) > 0 THEN count(*) ELSE 0 END FROM item_%[1]d;
END;
DO $do$ BEGIN PERFORM 1; END $do$;
INSERT INTO item_%[1]d (name) VALUES ('één'), ('naïve; ok'), ($q$it's$q$);
CREATE INDEX CONCURRENTLY IF NOT EXISTS item_%[1]d_name ON item_%[1]d (lower(name));
`, i)
	}
	return b.String()
}

func BenchmarkSplit(b *testing.B) {
	src := benchInput(1 << 20)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		Split(src)
	}
}

func BenchmarkMetaCommands(b *testing.B) {
	src := benchInput(1 << 20)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		MetaCommands(src)
	}
}
