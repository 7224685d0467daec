package migrate_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/migrate"
)

// oldFiles are seven migrations as a project accumulates them; squashed is
// the one file that replaces them (what dbinit squash writes).
var oldFiles = map[string]string{
	"001_users.sql":    "CREATE TABLE users (id bigint PRIMARY KEY);",
	"002_name.sql":     "ALTER TABLE users ADD COLUMN name text;",
	"003_posts.sql":    "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);",
	"004_idx.sql":      "CREATE INDEX posts_user ON posts (user_id);",
	"005_title.sql":    "ALTER TABLE posts ADD COLUMN title text NOT NULL DEFAULT '';",
	"006_seed.sql":     "INSERT INTO users (id, name) VALUES (1, 'root');",
	"007_drop_def.sql": "ALTER TABLE posts ALTER COLUMN title DROP DEFAULT;",
}

// squashed is the folder after the squash: the replaced files are in
// squashed/, which is how dbinit knows what they were.
var squashed = withSquashedDir(map[string]string{
	"007_base.sql": `-- dbinit:replaces 1-7
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users, title text NOT NULL);
CREATE INDEX posts_user ON posts (user_id);
INSERT INTO users (id, name) VALUES (1, 'root');`,
	"007_base_down.sql": "DROP TABLE posts; DROP TABLE users;",
	"008_tags.sql":      "CREATE TABLE tags (id int);",
})

func withSquashedDir(files map[string]string) map[string]string {
	for name, text := range oldFiles {
		files["squashed/"+name] = text
	}
	return files
}

func TestSquashedFileOnAFreshDatabase(t *testing.T) {
	t.Parallel()
	set := load(t, squashed)
	conn := emptydb.Conn(t, emptydb.New(t))
	if _, err := newMigrator(t, set).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	rows, _ := migrate.ReadHistory(ctx(t), conn)
	if len(rows) != 2 || rows[0].Version != 7 || rows[0].Replaces != "1-7" || rows[0].State != migrate.StateApplied {
		t.Fatalf("history = %+v", rows)
	}
}

func TestSquashedFileOverTheFilesItReplaces(t *testing.T) {
	t.Parallel()
	cc := emptydb.New(t)
	conn := emptydb.Conn(t, cc)
	if _, err := newMigrator(t, load(t, oldFiles)).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	// The next release ships the squashed file: it is recorded, not run
	// (running it would fail: the tables exist).
	set := load(t, squashed)
	plan, err := migrate.PlanUp(set, history(t, conn), all)
	if err != nil || len(plan.Steps) != 2 || !plan.Steps[0].Replace || plan.Steps[1].Replace {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
	res, err := newMigrator(t, set).Up(ctx(t), conn, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 2 || !res.Files[0].Replaced {
		t.Fatalf("result = %+v", res.Files)
	}
	rows := history(t, conn)
	for _, r := range rows {
		switch {
		case r.Version < 7 && (r.State != migrate.StateReplaced || r.ReplacedBy != 7):
			t.Errorf("row %d = %+v, want replaced by 7", r.Version, r)
		case r.Version == 7 && (r.State != migrate.StateApplied || r.Replaces != "1-7" || r.Name != "base"):
			t.Errorf("row 7 = %+v", r)
		}
	}
	if len(rows) != 8 {
		t.Fatalf("%d rows", len(rows))
	}
	// Nothing left to do, nothing drifted, and the schema is the one a
	// fresh database gets from the squashed file.
	if res, err := newMigrator(t, set).Up(ctx(t), conn, all); err != nil || len(res.FilesExecuted) != 0 {
		t.Fatalf("second up: %v %+v", err, res)
	}
	if err := migrate.Verify(ctx(t), conn, set, 0); err != nil {
		t.Fatal(err)
	}
	fresh := emptydb.Conn(t, emptydb.New(t))
	if _, err := newMigrator(t, set).Up(ctx(t), fresh, all); err != nil {
		t.Fatal(err)
	}
	if a, b := userObjects(t, conn), userObjects(t, fresh); !slices.Equal(a, b) {
		t.Fatalf("schemas differ:\nreplaced: %v\nfresh: %v", minus(a, b), minus(b, a))
	}
	st := migrate.Summarize(migrate.Status(set, rows))
	if st.Replaced != 6 || st.Applied != 2 || st.Missing != 0 || st.Version != 8 {
		t.Fatalf("status summary = %+v", st)
	}
	// Reverting the squashed file takes the rows it replaced with it.
	if _, err := newMigrator(t, set).Down(ctx(t), conn, migrate.DownOptions{Steps: 2}); err == nil {
		t.Fatal("008 has no down file; the plan must refuse before running anything")
	}
	emptydb.Exec(t, cc, "DROP TABLE tags; DELETE FROM dbinit.schema_migrations WHERE version = 8")
	if _, err := newMigrator(t, set).Down(ctx(t), conn, migrate.DownOptions{Steps: 1}); err != nil {
		t.Fatal(err)
	}
	if n := len(history(t, conn)); n != 0 {
		t.Fatalf("%d history rows after reverting the squashed file", n)
	}
}

func TestSquashedFileRefusesAPartialHistory(t *testing.T) {
	t.Parallel()
	conn := emptydb.Conn(t, emptydb.New(t))
	if _, err := newMigrator(t, load(t, oldFiles)).Up(ctx(t), conn, migrate.UpOptions{To: 4}); err != nil {
		t.Fatal(err)
	}
	before := userObjects(t, conn)
	_, err := newMigrator(t, load(t, squashed)).Up(ctx(t), conn, all)
	var pe *migrate.PlanError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "only some of them (1, 2, 3, 4; not 5, 6, 7)") {
		t.Fatalf("got %v", err)
	}
	if after := userObjects(t, conn); !slices.Equal(before, after) {
		t.Fatal("a refused squash changed the schema")
	}
}

func TestSquashedFileChecks(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		files map[string]string
		want  string
	}{
		"wrong version":   {map[string]string{"006_base.sql": "-- dbinit:replaces 1-7\nSELECT 1;"}, "a squashed file carries the last version it replaces"},
		"replaced kept":   {map[string]string{"007_base.sql": "-- dbinit:replaces 1-7\nSELECT 1;", "003_posts.sql": "SELECT 1;"}, "version 3 is replaced by 007_base.sql"},
		"bad range":       {map[string]string{"007_base.sql": "-- dbinit:replaces seven\nSELECT 1;"}, "needs a range of versions such as 1-7"},
		"in a down file":  {map[string]string{"007_base.sql": "SELECT 1;", "007_base_down.sql": "-- dbinit:replaces 1-7\nSELECT 1;"}, "belongs in the up file"},
		"after statement": {map[string]string{"007_base.sql": "SELECT 1;\n-- dbinit:replaces 1-7\n"}, "only count in the comment lines at the top"},
	} {
		fsys := fstest.MapFS{}
		for n, text := range c.files {
			fsys[n] = &fstest.MapFile{Data: []byte(text)}
		}
		_, err := migrate.Load(fsys, "db")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
}

func history(t *testing.T, conn *pgx.Conn) []migrate.Applied {
	t.Helper()
	rows, err := migrate.ReadHistory(ctx(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestHistoryFormat2IsUpgraded: a history table an older dbinit created
// (format 2: no replaces, replaced_by; state limited to applied and
// partial) is read as it is, and gets the new columns and state when
// dbinit next writes to it.
func TestHistoryFormat2IsUpgraded(t *testing.T) {
	t.Parallel()
	cc := emptydb.New(t)
	conn := emptydb.Conn(t, cc)
	set := load(t, map[string]string{"001_a.sql": "CREATE TABLE a (id int);", "002_b.sql": "CREATE TABLE b (id int);"})
	emptydb.Exec(t, cc, `
CREATE SCHEMA dbinit;
CREATE TABLE dbinit.schema_migrations (
    version bigint PRIMARY KEY CHECK (version > 0), name text NOT NULL, checksum text NOT NULL,
    state text NOT NULL DEFAULT 'applied' CHECK (state IN ('applied', 'partial')),
    statements_done integer NOT NULL DEFAULT 0, statements_total integer NOT NULL DEFAULT 0, prefix_checksum text,
    applied_at timestamptz NOT NULL DEFAULT now(), execution_ms bigint NOT NULL DEFAULT 0,
    applied_by text NOT NULL DEFAULT current_user, dbinit_version text NOT NULL DEFAULT '',
    checksum_kind text NOT NULL DEFAULT 'bytes');
CREATE TABLE a (id int);
INSERT INTO dbinit.schema_migrations (version, name, checksum, checksum_kind, statements_done, statements_total)
VALUES (1, 'a', '`+set.Find(1).Up.Checksum+`', 'text', 1, 1)`)
	rows := history(t, conn)
	if len(rows) != 1 || rows[0].Replaces != "" || rows[0].ReplacedBy != 0 {
		t.Fatalf("format 2 rows read as %+v", rows)
	}
	if _, err := newMigrator(t, set).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	var def string
	if err := conn.QueryRow(ctx(t), `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'schema_migrations_state_check'`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(def, "replaced") {
		t.Fatalf("state check not upgraded: %s", def)
	}
	if n := len(history(t, conn)); n != 2 {
		t.Fatalf("%d rows", n)
	}
}

// TestSquashedFileIsRecordedOnlyOverTheFilesItReplaced: a database whose
// rows in the range are not the files the squash was made from (another
// branch's migration at a replaced version, a file edited after it ran) is
// drift, not silently recorded over.
func TestSquashedFileIsRecordedOnlyOverTheFilesItReplaced(t *testing.T) {
	t.Parallel()
	for name, edit := range map[string]func(map[string]string){
		"another file at version 7": func(f map[string]string) {
			delete(f, "007_drop_def.sql")
			f["007_other_branch.sql"] = "CREATE TABLE other (id int);"
		},
		"version 3 edited after it ran": func(f map[string]string) {
			f["003_posts.sql"] = "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users, extra int);"
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{}
			for k, v := range oldFiles {
				files[k] = v
			}
			edit(files)
			conn := emptydb.Conn(t, emptydb.New(t))
			if _, err := newMigrator(t, load(t, files)).Up(ctx(t), conn, all); err != nil {
				t.Fatal(err)
			}
			_, err := newMigrator(t, load(t, squashed)).Up(ctx(t), conn, all)
			var drift *migrate.DriftError
			if !errors.As(err, &drift) {
				t.Fatalf("got %v, want drift", err)
			}
			for _, r := range history(t, conn) {
				if r.State != migrate.StateApplied || r.RecordedOver {
					t.Fatalf("history changed: %+v", r)
				}
			}
		})
	}
}

// TestSquashRefusals: before the squashed file is recorded, down and
// accept would act on the wrong file; after, down cannot stop inside its
// range; baseline cannot record it over part of what it replaces.
func TestSquashRefusals(t *testing.T) {
	t.Parallel()
	cc := emptydb.New(t)
	conn := emptydb.Conn(t, cc)
	if _, err := newMigrator(t, load(t, oldFiles)).Up(ctx(t), conn, all); err != nil {
		t.Fatal(err)
	}
	set := load(t, squashed)
	before := userObjects(t, conn)
	var pe *migrate.PlanError
	if _, err := newMigrator(t, set).Down(ctx(t), conn, migrate.DownOptions{Steps: 1}); !errors.As(err, &pe) || !strings.Contains(err.Error(), "run `dbinit up` first") {
		t.Fatalf("down before the squash is recorded: %v", err)
	}
	if err := newMigrator(t, set).Accept(ctx(t), conn, 7); !errors.As(err, &pe) {
		t.Fatalf("accept of a pending squash: %v", err)
	}
	if after := userObjects(t, conn); !slices.Equal(before, after) {
		t.Fatal("a refused down changed the schema")
	}
	if _, err := newMigrator(t, set).Up(ctx(t), conn, migrate.UpOptions{To: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := newMigrator(t, set).Down(ctx(t), conn, migrate.DownOptions{To: 5}); !errors.As(err, &pe) || !strings.Contains(err.Error(), "--to 5 is inside") {
		t.Fatalf("down --to inside the squashed range: %v", err)
	}
	// The release before the squash still finds its files applied: a
	// rollback of the deployment works.
	plan, err := migrate.PlanUp(load(t, oldFiles), history(t, conn), all)
	if err != nil || len(plan.Steps) != 0 {
		t.Fatalf("the previous release on a squashed history: %+v %v", plan, err)
	}
	// baseline over part of the range
	partial := emptydb.Conn(t, emptydb.New(t))
	if _, err := newMigrator(t, load(t, oldFiles)).Up(ctx(t), partial, migrate.UpOptions{To: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := newMigrator(t, set).Baseline(ctx(t), partial, migrate.BaselineOptions{Version: 8, Force: true}); !errors.As(err, &pe) {
		t.Fatalf("baseline over part of a squashed range: %v", err)
	}
}
