package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/savvi-studio/dbinit/migrate"
)

func (h *harness) read(name string) string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, name))
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

func TestManifestCommand(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	out, _ := h.expect(ExitOK, "manifest")
	if !strings.Contains(out, "wrote") || !strings.Contains(out, "2 migrations, head 2:") {
		t.Fatalf("manifest: %s", out)
	}
	first := h.read(migrate.ManifestFile)
	out, _ = h.expect(ExitOK, "manifest")
	if !strings.Contains(out, "up to date") || h.read(migrate.ManifestFile) != first {
		t.Fatalf("a second run changed the manifest: %s", out)
	}
	h.expect(ExitOK, "manifest", "--check")
	out, _ = h.expect(ExitOK, "validate")
	if !strings.Contains(out, "migrations.json agrees") {
		t.Fatalf("validate: %s", out)
	}

	// Hand-kept fields survive a rewrite.
	h.write(migrate.ManifestFile, strings.Replace(first, `"name": "posts",`, `"name": "posts",
      "description": "posts belong to users",`, 1))
	h.expect(ExitDrift, "manifest", "--check") // the head no longer matches: write it again
	h.expect(ExitOK, "manifest")
	if !strings.Contains(h.read(migrate.ManifestFile), `"description": "posts belong to users"`) {
		t.Fatalf("description lost:\n%s", h.read(migrate.ManifestFile))
	}
	h.expect(ExitOK, "up")

	// A new file not in the manifest: every command refuses it, naming it,
	// and nothing reaches the database.
	h.write("003_tags.sql", "CREATE TABLE tags (id int);")
	for _, args := range [][]string{{"validate"}, {"up"}, {"init"}, {"plan"}, {"status"}, {"manifest", "--check"}} {
		_, errs := h.expect(ExitDrift, args...)
		if args[0] != "manifest" && !strings.Contains(errs, "003_tags.sql: is not in migrations.json: run `dbinit manifest`") {
			t.Fatalf("%v: %s", args, errs)
		}
	}
	if n := query[int64](t, h.db(h.database), `SELECT count(*) FROM pg_tables WHERE tablename = 'tags'`); n != 0 {
		t.Fatal("a file not in the manifest was applied")
	}
	h.expect(ExitOK, "manifest")
	h.expect(ExitOK, "up")

	// An edited file: refused before the history is even read.
	h.write("002_posts.sql", "CREATE TABLE posts (id bigint PRIMARY KEY, title text);")
	_, errs := h.expect(ExitDrift, "validate")
	if !strings.Contains(errs, "002_posts.sql: was edited after migrations.json recorded it") {
		t.Fatalf("validate: %s", errs)
	}
	// A manifest broken by hand is exit 2; --force writes it anew.
	h.write("002_posts.sql", twoFiles["002_posts.sql"])
	h.write(migrate.ManifestFile, "{ not json")
	_, errs = h.expect(ExitUsage, "manifest")
	if !strings.Contains(errs, "--force") {
		t.Fatalf("manifest over a broken one: %s", errs)
	}
	h.expect(ExitUsage, "validate")
	h.expect(ExitOK, "manifest", "--force")
	h.expect(ExitOK, "validate")
}

// TestManifestMakesParallelAdditionsConflict: two branches that each add a
// migration conflict in git on db/migrations.json, so the second merge
// cannot silently put two files on one version or reorder them.
func TestManifestMakesParallelAdditionsConflict(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("the merge test needs git")
	}
	repo := t.TempDir()
	dir := filepath.Join(repo, "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false",
			"-c", "init.defaultBranch=main", "-c", "merge.conflictstyle=merge"}, args...)...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) {
		t.Helper()
		if out, err := git(args...); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	dbinit := func(args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Run(t.Context(), args, map[string]string{"DBINIT_DIR": dir}, &out, &errb); code != 0 {
			t.Fatalf("dbinit %v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	add := func(name, sql string) {
		t.Helper()
		dbinit("new", name)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), "_"+name) {
				write(e.Name(), sql) // written: no more dbinit:todo
			}
		}
		dbinit("manifest")
	}
	must("init", "-q")
	for name, text := range twoFiles {
		write(name, text)
	}
	dbinit("manifest")
	must("add", ".")
	must("commit", "-qm", "two migrations")

	must("checkout", "-qb", "alice")
	add("tags", "CREATE TABLE tags (id int);")
	must("add", ".")
	must("commit", "-qm", "alice adds 003_tags")

	must("checkout", "-q", "main")
	must("checkout", "-qb", "bob")
	add("likes", "CREATE TABLE likes (id int);")
	add("shares", "CREATE TABLE shares (id int);")
	must("add", ".")
	must("commit", "-qm", "bob adds 003_likes and 004_shares")

	// Merging bob's branch into alice's: both added version 3.
	must("checkout", "-q", "alice")
	out, err := git("merge", "--no-edit", "bob")
	if err == nil {
		t.Fatalf("the merge succeeded:\n%s", out)
	}
	if !strings.Contains(out, "CONFLICT (content): Merge conflict in db/migrations.json") {
		t.Fatalf("no conflict in the manifest:\n%s", out)
	}
	// dbinit says what is wrong at each step of the resolution: two files
	// on version 3, then the conflict markers, until the manifest is
	// written again.
	run := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := Run(t.Context(), args, map[string]string{"DBINIT_DIR": dir}, &stdout, &stderr)
		return code, stderr.String()
	}
	if code, errs := run("manifest"); code != ExitUsage || !strings.Contains(errs, "version 3 is also used by") {
		t.Fatalf("dbinit manifest after the merge: exit %d %s", code, errs)
	}
	for _, f := range []string{"003_tags.sql", "003_tags_down.sql"} {
		if err := os.Rename(filepath.Join(dir, f), filepath.Join(dir, strings.Replace(f, "003", "005", 1))); err != nil {
			t.Fatal(err)
		}
	}
	if code, errs := run("validate"); code != ExitUsage || !strings.Contains(errs, "migrations.json") {
		t.Fatalf("validate with conflict markers: exit %d %s", code, errs)
	}
	if code, errs := run("manifest"); code != ExitUsage || !strings.Contains(errs, "git conflict markers") {
		t.Fatalf("dbinit manifest on a conflicted manifest: exit %d %s", code, errs)
	}
	dbinit("manifest", "--force")
	dbinit("validate")
	must("merge", "--abort")

	// Without a manifest, the same merge goes through silently with two
	// files numbered 3: what the manifest is there to stop.
	must("checkout", "-q", "main")
	must("checkout", "-qb", "nomanifest-a")
	must("rm", "-q", "db/"+migrate.ManifestFile)
	must("commit", "-qm", "no manifest")
	write("003_x.sql", "SELECT 1;")
	must("add", ".")
	must("commit", "-qm", "a")
	must("checkout", "-qb", "nomanifest-b", "HEAD~1")
	write("003_y.sql", "SELECT 2;")
	must("add", ".")
	must("commit", "-qm", "b")
	if out, err := git("merge", "--no-edit", "nomanifest-a"); err != nil {
		t.Fatalf("without a manifest the merge was expected to go through: %s", out)
	}
}

// TestSquashCommand: squash writes one file from the database the files
// build; a database with all of them records it, a new one runs it, one
// with only some is refused; both end with the same schema.
func TestSquashCommand(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"001_users.sql":      "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE);",
		"001_users_down.sql": "DROP TABLE users;",
		"002_roles.sql":      "CREATE TYPE role AS ENUM ('admin', 'member');\nALTER TABLE users ADD COLUMN role role NOT NULL DEFAULT 'member';",
		"003_seed.sql":       "INSERT INTO users (email, role) VALUES ('root@example.com', 'admin');",
		"004_fn.sql":         "CREATE FUNCTION admins() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM users WHERE role = 'admin' $$;",
		"005_later.sql":      "CREATE TABLE later (id int);",
	}
	h := newHarness(t, files)
	h.env["PATH"] = os.Getenv("PATH")
	h.expect(ExitOK, "manifest")
	h.expect(ExitOK, "init") // the working database has 1-5 applied one by one
	partial := h.database + "_p"
	h.expect(ExitOK, "up", "--database", partial, "--to", "2")

	if local, server := pgDumpMajor(t), query[int32](t, h.db("postgres"), `SELECT current_setting('server_version_num')::int / 10000`); local < server {
		_, errs := h.expect(ExitUsage, "squash", "--to", "4", "base")
		if !strings.Contains(errs, "pg_dump is older than the server") {
			t.Fatalf("squash with an old pg_dump: %s", errs)
		}
		if _, err := os.Stat(filepath.Join(h.dir, "001_users.sql")); err != nil {
			t.Fatal("a refused squash moved files")
		}
		return
	}
	// A squash that fails part-way leaves the folder as it was, also when
	// the new file has the name of the last replaced one.
	if err := os.MkdirAll(filepath.Join(h.dir, "squashed"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.write("squashed/003_seed.sql", "-- left from an earlier attempt\n")
	_, errs := h.expect(ExitUsage, "squash", "--to", "4", "fn")
	if !strings.Contains(errs, "already exists; the folder is as it was") {
		t.Fatalf("failed squash: %s", errs)
	}
	for name, text := range files {
		if got := h.read(name); got != text {
			t.Fatalf("%s after a failed squash: %q", name, got)
		}
	}
	if err := os.Remove(filepath.Join(h.dir, "squashed", "003_seed.sql")); err != nil {
		t.Fatal(err)
	}
	out, _ := h.expect(ExitOK, "squash", "--to", "4", "base")
	if !strings.Contains(out, "004_base.sql (replaces 1-4)") || !strings.Contains(out, "moved 5 file(s)") {
		t.Fatalf("squash: %s", out)
	}
	text := h.read("004_base.sql")
	for _, want := range []string{"-- dbinit:replaces 1-4\n", "-- dbinit:replaced 3 seed ", "CREATE TYPE public.role AS ENUM", "INSERT INTO public.users", "root@example.com", "CREATE FUNCTION public.admins()"} {
		if !strings.Contains(text, want) {
			t.Fatalf("004_base.sql lacks %q:\n%s", want, text)
		}
	}
	for _, gone := range []string{"\\restrict", "Dumped from", "lock_timeout", "dbinit."} {
		if strings.Contains(text, gone) {
			t.Fatalf("004_base.sql has %q:\n%s", gone, text)
		}
	}
	if _, err := os.Stat(filepath.Join(h.dir, "squashed", "003_seed.sql")); err != nil {
		t.Fatal(err)
	}
	h.expect(ExitOK, "validate") // the manifest was written again

	// The working database had 1-5: the squashed file is recorded over 1-4.
	out, _ = h.expect(ExitOK, "init")
	out, _ = h.expect(ExitOK, "status", "--exit-code")
	if !strings.Contains(out, "2 applied, 0 pending, 3 replaced") {
		t.Fatalf("status after the squash:\n%s", out)
	}
	// A new database runs it.
	fresh := h.database + "_f"
	h.expect(ExitOK, "up", "--database", fresh)
	if n := query[int64](t, h.db(fresh), `SELECT admins()`); n != 1 {
		t.Fatalf("the seed row is missing from a fresh database: %d", n)
	}
	a, _ := h.expect(ExitOK, "dump-schema", "--database", h.database)
	b, _ := h.expect(ExitOK, "dump-schema", "--database", fresh)
	if a != b {
		t.Fatalf("the squashed and the replaced database differ:\n%s\n----\n%s", a, b)
	}
	// One with only 1-2 is refused, and says what to do.
	_, errs = h.expect(ExitUsage, "up", "--database", partial)
	if !strings.Contains(errs, "004_base.sql replaces versions 1-4, and the database has only some of them (1, 2; not 3, 4)") {
		t.Fatalf("partial history: %s", errs)
	}
}

func TestDumpSchema(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	h.env["PATH"] = os.Getenv("PATH")
	if local, server := pgDumpMajor(t), query[int32](t, h.db("postgres"), `SELECT current_setting('server_version_num')::int / 10000`); local < server {
		_, errs := h.expect(ExitUsage, "dump-schema")
		if !strings.Contains(errs, "pg_dump is older than the server") {
			t.Fatalf("dump-schema with an old pg_dump: %s", errs)
		}
		return
	}
	a, _ := h.expect(ExitOK, "dump-schema")
	b, _ := h.expect(ExitOK, "dump-schema")
	if a != b {
		t.Fatal("two dumps of the same migrations differ")
	}
	for _, want := range []string{"-- The schema at migration version 2", "CREATE TABLE public.users", "CREATE TABLE public.posts"} {
		if !strings.Contains(a, want) {
			t.Fatalf("dump lacks %q:\n%s", want, a)
		}
	}
	for _, gone := range []string{"\\restrict", "Dumped", "SET ", "set_config", "SCHEMA dbinit", "dbinit.", "schema_migrations"} {
		if strings.Contains(a, gone) {
			t.Fatalf("dump has %q:\n%s", gone, a)
		}
	}
	schema := filepath.Join(t.TempDir(), "schema.sql")
	h.expect(ExitOK, "dump-schema", "-o", schema)
	h.expect(ExitOK, "validate", "--schema", schema)
	h.write("003_tags.sql", "CREATE TABLE tags (id int);")
	_, errs := h.expect(ExitDrift, "validate", "--schema", schema)
	if !strings.Contains(errs, "stale") || !strings.Contains(errs, "dbinit dump-schema -o "+schema) {
		t.Fatalf("stale schema: %s", errs)
	}
	// The scratch databases are gone.
	if n := query[int64](t, h.db("postgres"), `SELECT count(*) FROM pg_database WHERE datname LIKE $1`, h.template+"_check_%"); n != 0 {
		t.Fatalf("%d scratch databases left", n)
	}
}

func TestAfterHook(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	out := filepath.Join(t.TempDir(), "hook.out")
	h.env["PATH"] = os.Getenv("PATH")
	h.env["PGPASSWORD"] = "must-not-reach-the-hook"
	h.env["DBINIT_AFTER_HOOK"] = `printf '%s|%s|%s|' "$DATABASE_URL" "$PGPASSWORD" "$PGDATABASE" >>` + out +
		` && psql -XAtc 'SELECT count(*) FROM dbinit.schema_migrations' >>` + out
	h.expect(ExitOK, "init")
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the hook did not run: %v", err)
	}
	parts := strings.Split(strings.TrimSpace(string(got)), "|")
	if len(parts) != 4 || parts[1] != "" || parts[2] != h.database || parts[3] != "2" || !strings.Contains(parts[0], "/"+h.database) {
		t.Fatalf("hook saw %q", got)
	}
	if strings.Contains(parts[0], "@") && strings.Contains(parts[0], ":"+strings.Split(strings.Split(h.env["DATABASE_URL"], "@")[0], ":")[2]) {
		t.Fatalf("the password is in the hook's DATABASE_URL: %s", parts[0])
	}
	// Nothing changed: no hook.
	os.Remove(out)
	h.expect(ExitOK, "init")
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the hook ran after a run that changed nothing")
	}
	// A failing hook: exit 1 with its code; the migration stays applied.
	h.env["DBINIT_AFTER_HOOK"] = "echo codegen broke >&2; exit 3"
	h.write("003_tags.sql", "CREATE TABLE tags (id int);")
	_, errs := h.expect(ExitSQL, "up")
	if !strings.Contains(errs, "exited 3") || !strings.Contains(errs, "codegen broke") {
		t.Fatalf("stderr: %s", errs)
	}
	if n := query[int64](t, h.db(h.database), `SELECT count(*) FROM dbinit.schema_migrations`); n != 3 {
		t.Fatalf("history rows = %d", n)
	}
}
