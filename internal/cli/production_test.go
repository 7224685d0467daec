package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/internal/testserver"
)

// role creates a login role for the test with the given attributes and
// returns a URL of database db as that role. The role, and what it owns,
// goes at the end of the test.
func role(t *testing.T, attrs string) (name string, urlFor func(db string) string) {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name = "r_" + hex.EncodeToString(b[:])
	pw := "pw-" + hex.EncodeToString(b[:])
	srv := emptydb.Server(t)
	emptydb.Exec(t, srv, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s' %s", name, pw, attrs))
	t.Cleanup(func() {
		conn := emptydb.Conn(t, srv)
		ctx := context.Background()
		rows, _ := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = $1)`, name)
		dbs, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, db := range dbs {
			id := pgx.Identifier{db}.Sanitize()
			conn.Exec(ctx, "ALTER DATABASE "+id+" IS_TEMPLATE false")
			conn.Exec(ctx, "DROP DATABASE "+id+" WITH (FORCE)")
		}
		if _, err := conn.Exec(ctx, "DROP OWNED BY "+name+" CASCADE; DROP ROLE "+name); err != nil {
			t.Logf("drop role %s: %v", name, err)
		}
	})
	return name, func(db string) string {
		u := url.URL{Scheme: "postgres", User: url.UserPassword(name, pw), Host: fmt.Sprintf("%s:%d", srv.Host, srv.Port), Path: "/" + db, RawQuery: "sslmode=disable"}
		return u.String()
	}
}

// roleFiles are migrations that need a role of their own, written the way
// that works in both modes: the role is cluster-wide, so the template build
// creates it and every later database finds it there.
var roleFiles = func(reader string) map[string]string {
	return map[string]string{
		"001_app.sql": "CREATE SCHEMA app;\nCREATE TABLE app.notes (id bigint PRIMARY KEY, body text);",
		"002_reader.sql": `DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '` + reader + `') THEN
    CREATE ROLE ` + reader + ` NOLOGIN;
  END IF;
END $$;
GRANT USAGE ON SCHEMA app TO ` + reader + `;
GRANT SELECT ON app.notes TO ` + reader + `;`,
	}
}

// TestProductionModeNeedsOnlyTheOwner: DBINIT_TEMPLATE=none with a role
// that owns the working database and has no other privilege (no CREATEDB,
// not a superuser), its URL naming the working database itself.
func TestProductionModeNeedsOnlyTheOwner(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	owner, urlFor := role(t, "")
	prod := h.database + "_prod"
	emptydb.Exec(t, emptydb.Server(t), "CREATE DATABASE "+prod+" OWNER "+owner)
	env := map[string]string{"DATABASE_URL": urlFor(prod), "DBINIT_DIR": h.dir, "DBINIT_DATABASE": prod, "DBINIT_TEMPLATE": "none",
		"DBINIT_WAIT_TIMEOUT": "10s", "DBINIT_LOCK_TIMEOUT": "10s"}
	code, _, stderr := runEnv(env, "init")
	if code != ExitOK || !strings.Contains(stderr, "mode=production") || !strings.Contains(stderr, "files_applied=2") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	// A new file on a database with data: the snapshot cannot be made
	// without CREATEDB, which auto says and goes on.
	conn := h.db(prod)
	if _, err := conn.Exec(context.Background(), `INSERT INTO users VALUES (1, 'ada')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	h.write("003_more.sql", "ALTER TABLE users ADD COLUMN email text;")
	code, _, stderr = runEnv(env, "init")
	if code != ExitOK || !strings.Contains(stderr, "lacks CREATEDB") || !strings.Contains(stderr, "files_applied=1") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if n := query[int64](t, h.db(prod), `SELECT count(*) FROM users WHERE email IS NULL`); n != 1 {
		t.Fatal("the row is gone or the column missing")
	}
	if n := query[int64](t, h.db("postgres"), `SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)`, h.template); n != 0 {
		t.Fatal("production mode made a template")
	}
	// Without the database and without CREATEDB: exit 4, saying so.
	env["DBINIT_DATABASE"] = prod + "_new"
	code, _, stderr = runEnv(env, "init")
	if code != ExitAuth || !strings.Contains(stderr, "CREATEDB") {
		t.Fatalf("missing database without CREATEDB: exit %d:\n%s", code, stderr)
	}
}

// TestTemplateModeNeedsCreateDB: a role with CREATEDB and nothing else (not
// the owner of template1) runs the template mode; without CREATEDB it is
// exit 4 naming the privilege.
func TestTemplateModeNeedsCreateDB(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	_, urlFor := role(t, "CREATEDB")
	env := copyEnv(h.env)
	env["DATABASE_URL"] = urlFor("postgres")
	if code, _, stderr := runEnv(env, "init"); code != ExitOK {
		t.Fatalf("CREATEDB role: exit %d:\n%s", code, stderr)
	}
	h.write("003_more.sql", "CREATE TABLE more (id int);")
	if code, _, stderr := runEnv(env, "init"); code != ExitOK || !strings.Contains(stderr, "template_state=extended") {
		t.Fatalf("CREATEDB role, rebuild: exit %d:\n%s", code, stderr)
	}
	_, plainURL := role(t, "")
	env = copyEnv(h.env)
	env["DATABASE_URL"] = plainURL("postgres")
	env["DBINIT_TEMPLATE"] = h.template + "_x"
	env["DBINIT_DATABASE"] = h.database + "_x"
	if code, _, stderr := runEnv(env, "init"); code != ExitAuth || !strings.Contains(stderr, "the role needs CREATEDB") {
		t.Fatalf("role without CREATEDB: exit %d:\n%s", code, stderr)
	}
}

// TestManagedServiceRole: as on hosted PostgreSQL, a role with CREATEDB and
// CREATEROLE that is no superuser and does not own template1 runs both
// modes, with a migration that creates a role of its own.
func TestManagedServiceRole(t *testing.T) {
	t.Parallel()
	admin, urlFor := role(t, "CREATEDB CREATEROLE")
	reader := admin + "_reader"
	t.Cleanup(func() {
		srv := emptydb.Server(t)
		conn := emptydb.Conn(t, srv)
		conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+reader)
	})
	h := newHarness(t, roleFiles(reader))
	env := copyEnv(h.env)
	env["DATABASE_URL"] = urlFor("postgres")
	if code, _, stderr := runEnv(env, "init"); code != ExitOK {
		t.Fatalf("template mode: exit %d:\n%s", code, stderr)
	}
	if !query[bool](t, h.db(h.database), `SELECT has_table_privilege($1, 'app.notes', 'SELECT')`, reader) {
		t.Fatal("the role's grant is missing in the working database")
	}
	// Production mode on another database the role creates and owns.
	env["DBINIT_TEMPLATE"] = "none"
	env["DBINIT_DATABASE"] = h.database + "_prod"
	if code, _, stderr := runEnv(env, "init"); code != ExitOK || !strings.Contains(stderr, "database_state=created") {
		t.Fatalf("production mode: exit %d:\n%s", code, stderr)
	}
	if !query[bool](t, h.db(h.database+"_prod"), `SELECT has_table_privilege($1, 'app.notes', 'SELECT')`, reader) {
		t.Fatal("the role's grant is missing in the production database")
	}
}

// TestBehindPgBouncer: through a real PgBouncer in session mode everything
// works; in transaction mode dbinit stops at once (exit 2) and runs
// nothing.
func TestBehindPgBouncer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	srv := testserver.MustGet(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, mode := range []string{"session", "transaction"} {
		b, err := testserver.StartPgBouncer(ctx, srv.URL, mode)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Stop()
		env := copyEnv(h.env)
		env["DATABASE_URL"] = b.URL(h.maint.Database)
		env["DBINIT_DATABASE"] = h.database + "_" + mode
		code, _, stderr := runEnv(env, "init")
		switch mode {
		case "session":
			if code != ExitOK {
				t.Fatalf("session mode: exit %d:\n%s", code, stderr)
			}
			h.write("003_more.sql", "CREATE TABLE more (id int);")
			if code, _, stderr := runEnv(env, "up"); code != ExitOK {
				t.Fatalf("session mode, up: exit %d:\n%s", code, stderr)
			}
		case "transaction":
			if code != ExitUsage || !strings.Contains(stderr, "transaction (or statement) pooling mode") {
				t.Fatalf("transaction mode: exit %d:\n%s", code, stderr)
			}
			if ok := query[bool](t, h.db("postgres"), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, env["DBINIT_DATABASE"]); ok {
				t.Fatal("transaction mode: the working database was created")
			}
		}
	}
}

// pgDumpMajor is the major version of the pg_dump on the PATH.
func pgDumpMajor(t *testing.T) int32 {
	t.Helper()
	out, err := exec.Command("pg_dump", "--version").Output()
	if err != nil {
		t.Fatalf("pg_dump --version: %v (the tests need pg_dump: apt-get install postgresql-client)", err)
	}
	var major int32
	for _, f := range strings.Fields(string(out)) {
		if n, err := fmt.Sscanf(f, "%d.", &major); n == 1 && err == nil && major > 0 {
			return major
		}
	}
	t.Fatalf("pg_dump --version: %q", out)
	return 0
}

// TestDumpBeforeMigrating: DBINIT_DUMP_DIR gets a pg_dump of the working
// database before files are applied to it; without pg_dump it is exit 2
// and nothing is migrated.
func TestDumpBeforeMigrating(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	h.env["PATH"] = os.Getenv("PATH")
	h.expect(ExitOK, "up")
	dir := t.TempDir()
	os.Chmod(dir, 0o777) // pg_dump may run as another user than the test
	h.env["DBINIT_DUMP_DIR"] = dir
	h.write("003_more.sql", "CREATE TABLE more (id int);")
	// pg_dump refuses a server newer than itself: then dbinit stops with
	// pg_dump's reason and what to install (a configuration problem, exit
	// 2), and migrates nothing.
	if local, server := pgDumpMajor(t), query[int32](t, h.db("postgres"), `SELECT current_setting('server_version_num')::int / 10000`); local < server {
		code, _, stderr := h.run("up")
		if code != ExitUsage || !strings.Contains(stderr, "server version mismatch") || !strings.Contains(stderr, "install the PostgreSQL client") {
			t.Fatalf("pg_dump %d, server %d: exit %d:\n%s", local, server, code, stderr)
		}
		if n := query[int64](t, h.db(h.database), `SELECT count(*) FROM pg_tables WHERE tablename = 'more'`); n != 0 {
			t.Fatal("migrated although the dump failed")
		}
		return
	}
	_, stderr := h.expect(ExitOK, "up")
	dumps, _ := filepath.Glob(filepath.Join(dir, h.database+"_*.dump"))
	if len(dumps) != 1 || !strings.Contains(stderr, "dump written before migrating") {
		t.Fatalf("dumps = %v\n%s", dumps, stderr)
	}
	if fi, err := os.Stat(dumps[0]); err != nil || fi.Size() == 0 {
		t.Fatalf("dump %s: %v", dumps[0], err)
	}
	if strings.Contains(stderr, h.maint.Password) {
		t.Fatal("password printed")
	}
	h.write("004_more.sql", "CREATE TABLE more2 (id int);")
	h.env["PATH"] = t.TempDir() // no pg_dump
	code, _, stderr := h.run("up")
	if code != ExitUsage || !strings.Contains(stderr, "pg_dump is not on the PATH") {
		t.Fatalf("without pg_dump: exit %d:\n%s", code, stderr)
	}
	if n := query[int64](t, h.db(h.database), `SELECT count(*) FROM pg_tables WHERE tablename = 'more2'`); n != 0 {
		t.Fatal("migrated although the dump failed")
	}
}
