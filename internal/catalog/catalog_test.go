package catalog

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/bench/corpus"
	"github.com/savvi-studio/dbinit/internal/emptydb"
)

// base is the schema every case starts from.
const base = `
CREATE SCHEMA app;
COMMENT ON SCHEMA app IS 'the application';
CREATE TYPE app.status AS ENUM ('new', 'done');
CREATE DOMAIN app.email AS text CHECK (VALUE LIKE '%@%');
CREATE TABLE app.users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email app.email NOT NULL,
    name text DEFAULT 'anon',
    score integer,
    status app.status NOT NULL DEFAULT 'new'
);
CREATE UNIQUE INDEX users_email ON app.users (lower(email));
COMMENT ON TABLE app.users IS 'people';
COMMENT ON COLUMN app.users.name IS 'shown name';
CREATE TABLE app.posts (id serial PRIMARY KEY, user_id bigint REFERENCES app.users (id), title text CHECK (length(title) < 200), body text);
CREATE INDEX posts_user ON app.posts (user_id);
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.title := coalesce(NEW.title, ''); RETURN NEW; END $$;
CREATE TRIGGER posts_touch BEFORE INSERT ON app.posts FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE FUNCTION app.user_count() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM app.users $$;
CREATE VIEW app.active AS SELECT id, email FROM app.users WHERE status = 'new';
ALTER TABLE app.posts ENABLE ROW LEVEL SECURITY;
CREATE POLICY posts_all ON app.posts USING (true);
GRANT SELECT ON app.users TO PUBLIC;
GRANT USAGE ON SCHEMA app TO PUBLIC;
CREATE TYPE app.pair AS (a int, b text);
INSERT INTO app.users (email) VALUES ('a@example.com');
`

// TestDownReversesEachKindOfChange: for each kind of change an up file
// makes, the generated down file, applied, gives back exactly the schema
// before (catalog fingerprint), or says with a warning why it cannot.
func TestDownReversesEachKindOfChange(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, up string
		warns    []string // substrings of the expected warnings; the schema may then differ
	}{
		{"create table with everything", `
CREATE TABLE app.tags (id int PRIMARY KEY, post_id int REFERENCES app.posts (id) ON DELETE CASCADE, label text NOT NULL UNIQUE);
CREATE INDEX tags_post ON app.tags (post_id) WHERE label <> '';
COMMENT ON TABLE app.tags IS 'tags';
GRANT SELECT, INSERT ON app.tags TO PUBLIC;`, nil},
		{"add, rename and change columns", `
ALTER TABLE app.users ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE app.users RENAME COLUMN name TO full_name;
ALTER TABLE app.users ALTER COLUMN score TYPE bigint;
ALTER TABLE app.users ALTER COLUMN full_name SET DEFAULT 'nobody';
ALTER TABLE app.users ALTER COLUMN status DROP NOT NULL;
COMMENT ON COLUMN app.users.full_name IS 'the full name';`, []string{"goes back from bigint to integer"}},
		{"rename table, index, constraint, trigger", `
ALTER TABLE app.posts RENAME TO articles;
ALTER INDEX app.posts_user RENAME TO articles_user;
ALTER TABLE app.articles RENAME CONSTRAINT posts_title_check TO articles_title_check;
ALTER TRIGGER posts_touch ON app.articles RENAME TO articles_touch;
ALTER POLICY posts_all ON app.articles RENAME TO articles_all;`, nil},
		{"drop a table others reference", `
DROP VIEW app.active;
DROP TABLE app.posts;`, []string{"dropped the table app.posts"}},
		{"drop the last column", `ALTER TABLE app.posts DROP COLUMN body;`, []string{"dropped the column app.posts.body"}},
		{"views", `
CREATE OR REPLACE VIEW app.active AS SELECT id, email, name FROM app.users WHERE status = 'new';
CREATE MATERIALIZED VIEW app.counts AS SELECT status, count(*) FROM app.users GROUP BY status;
CREATE VIEW app.names AS SELECT name FROM app.users;`, nil},
		{"functions", `
CREATE OR REPLACE FUNCTION app.user_count() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM app.users WHERE status = 'done' $$;
CREATE FUNCTION app.double(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT x * 2 $$;
ALTER FUNCTION app.touch() RENAME TO touch_post;
CREATE PROCEDURE app.noop() LANGUAGE sql AS $$ SELECT 1 $$;`, nil},
		{"a function's result type", `
DROP FUNCTION app.user_count();
CREATE FUNCTION app.user_count() RETURNS integer LANGUAGE sql STABLE AS $$ SELECT count(*)::int FROM app.users $$;`, nil},
		{"triggers and policies", `
CREATE TRIGGER users_touch BEFORE UPDATE ON app.users FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION app.touch();
DROP TRIGGER posts_touch ON app.posts;
ALTER POLICY posts_all ON app.posts USING (user_id IS NOT NULL);
CREATE POLICY posts_insert ON app.posts FOR INSERT WITH CHECK (title <> '');
ALTER TABLE app.posts FORCE ROW LEVEL SECURITY;`, nil},
		{"enum values", `
ALTER TYPE app.status RENAME VALUE 'done' TO 'finished';
ALTER TYPE app.status ADD VALUE 'archived';`, []string{"cannot drop an enum value"}},
		{"types, domains, sequences, schemas", `
CREATE TYPE app.mood AS ENUM ('ok', 'meh');
CREATE DOMAIN app.positive AS int CHECK (VALUE > 0);
ALTER DOMAIN app.email SET DEFAULT 'x@y.z';
CREATE SCHEMA billing;
CREATE SEQUENCE billing.invoice_no START 1000 INCREMENT 5;
CREATE TABLE billing.invoices (no int DEFAULT nextval('billing.invoice_no'), amount numeric(10,2));
ALTER SEQUENCE billing.invoice_no OWNED BY billing.invoices.no;
ALTER TYPE app.pair RENAME TO couple;
ALTER SCHEMA app RENAME TO application;`, nil},
		{"identity and serial columns", `
ALTER TABLE app.posts ADD COLUMN seq bigserial;
ALTER TABLE app.posts ADD COLUMN code int GENERATED BY DEFAULT AS IDENTITY;
ALTER TABLE app.users ALTER COLUMN id SET GENERATED BY DEFAULT;`, nil},
		{"grants and comments", `
REVOKE SELECT ON app.users FROM PUBLIC;
GRANT SELECT, UPDATE ON app.posts TO PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_count() TO PUBLIC;
REVOKE EXECUTE ON FUNCTION app.touch() FROM PUBLIC;
COMMENT ON TABLE app.users IS 'the people';
COMMENT ON COLUMN app.users.name IS NULL;
COMMENT ON INDEX app.posts_user IS 'by author';
COMMENT ON CONSTRAINT posts_title_check ON app.posts IS 'short titles';`, nil},
		{"moves between schemas", `
CREATE SCHEMA archive;
ALTER TABLE app.posts SET SCHEMA archive;
ALTER FUNCTION app.user_count() SET SCHEMA archive;`, nil},
		{"a table's row level security and a dropped index", `
ALTER TABLE app.posts DISABLE ROW LEVEL SECURITY;
DROP INDEX app.posts_user;
DROP INDEX app.users_email;
ALTER TABLE app.posts DROP CONSTRAINT posts_title_check;`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cc := emptydb.New(t)
			conn := emptydb.Conn(t, cc)
			exec(t, conn, base)
			before := take(t, conn)
			exec(t, conn, c.up)
			after := take(t, conn)
			if slices.Equal(before.Fingerprint(), after.Fingerprint()) {
				t.Fatal("the up file changed nothing the fingerprint sees")
			}
			sql, warnings := Down(before, after)
			for _, w := range c.warns {
				if !slices.ContainsFunc(warnings, func(s string) bool { return strings.Contains(s, w) }) {
					t.Errorf("no warning with %q; warnings: %q", w, warnings)
				}
			}
			if len(c.warns) == 0 && len(warnings) > 0 {
				t.Errorf("unexpected warnings: %q", warnings)
			}
			if _, err := conn.Exec(ctx(t), "BEGIN; "+sql+"; COMMIT"); err != nil {
				conn.Exec(context.Background(), "ROLLBACK")
				t.Fatalf("the down file fails: %v\n%s", err, sql)
			}
			missing, extra := Diff(before.Fingerprint(), take(t, conn).Fingerprint())
			if len(c.warns) == 0 && (len(missing) > 0 || len(extra) > 0) {
				t.Fatalf("the down file does not restore the schema\nmissing:\n  %s\nleft over:\n  %s\ndown file:\n%s",
					strings.Join(missing, "\n  "), strings.Join(extra, "\n  "), sql)
			}
		})
	}
}

// TestFingerprintIgnoresOIDs: the same schema built twice has the same
// fingerprint; one difference shows.
func TestFingerprintIgnoresOIDs(t *testing.T) {
	t.Parallel()
	a, b := emptydb.Conn(t, emptydb.New(t)), emptydb.Conn(t, emptydb.New(t))
	exec(t, a, base)
	exec(t, b, "CREATE TABLE filler (id int); DROP TABLE filler;"+base)
	fa, fb := take(t, a).Fingerprint(), take(t, b).Fingerprint()
	if !slices.Equal(fa, fb) {
		missing, extra := Diff(fa, fb)
		t.Fatalf("same schema, different fingerprints:\n%v\n%v", missing, extra)
	}
	exec(t, b, "ALTER TABLE app.users ALTER COLUMN score SET DEFAULT 0")
	if _, extra := Diff(fa, take(t, b).Fingerprint()); len(extra) != 1 || !strings.Contains(extra[0], "DEFAULT 0") {
		t.Fatalf("a changed default: %v", extra)
	}
	for _, want := range []string{"enum app.status (new, done)", "table app.users row security false", "policy posts_all on app.posts",
		"grant SELECT on table app.users to PUBLIC", "comment on table column app.users.name: \"shown name\"", "trigger posts_touch on app.posts",
		"domain app.email as text", "composite type app.pair (a integer, b text)", "index app.users_email"} {
		if !slices.ContainsFunc(fa, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("fingerprint lacks %q", want)
		}
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func exec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(ctx(t), sql); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
}

func take(t *testing.T, conn *pgx.Conn) *Snapshot {
	t.Helper()
	s, err := Take(ctx(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDownOnCorpus: the down of every file of the benchmark corpus (the
// history a product accumulates: tables, columns added and backfilled,
// functions, views, triggers, indexes, seed data), generated and applied
// inside the file's own transaction, either gives back the schema before
// the file exactly or says why not. The counts are logged for
// docs/lint.md (DBINIT_CORPUS_FILES chooses the size; 120 by default).
func TestDownOnCorpus(t *testing.T) {
	t.Parallel()
	n := 120
	if v, err := strconv.Atoi(os.Getenv("DBINIT_CORPUS_FILES")); err == nil && v > 0 {
		n = v
	}
	conn := emptydb.Conn(t, emptydb.New(t))
	var exact, warned, schemaless int
	why := map[string]int{}
	for _, f := range corpus.Generate(n) {
		before := take(t, conn)
		exec(t, conn, "BEGIN")
		exec(t, conn, f.SQL)
		after := take(t, conn)
		sql, warnings := Down(before, after)
		if slices.Equal(before.Fingerprint(), after.Fingerprint()) {
			schemaless++
			exec(t, conn, "COMMIT")
			continue
		}
		exec(t, conn, "SAVEPOINT down")
		if _, err := conn.Exec(ctx(t), sql); err != nil {
			t.Errorf("%s: the generated down fails: %v\n%s", f.Name, err, sql)
			exec(t, conn, "ROLLBACK")
			return
		}
		missing, extra := Diff(before.Fingerprint(), take(t, conn).Fingerprint())
		exec(t, conn, "ROLLBACK TO SAVEPOINT down")
		exec(t, conn, "COMMIT")
		switch {
		case len(missing)+len(extra) == 0:
			exact++
		case len(warnings) > 0:
			warned++
			for _, w := range warnings {
				why[strings.SplitN(w, ":", 2)[0]]++
			}
		default:
			t.Errorf("%s: the down file differs without a warning (a silent gap)\nmissing: %v\nleft over: %v\n%s", f.Name, missing, extra, sql)
		}
	}
	t.Logf("corpus of %d files: %d downs give back the schema exactly, %d differ and say why, %d files change no schema (data only)",
		n, exact, warned, schemaless)
	for w, c := range why {
		t.Logf("  %d x %s", c, w)
	}
}
