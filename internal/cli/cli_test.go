package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/internal/provision"
)

// harness runs dbinit against a maintenance database of the test's own, so
// that the server-wide lock of one test never delays another.
type harness struct {
	t        *testing.T
	maint    *pgx.ConnConfig
	env      map[string]string
	dir      string
	database string
	template string
}

func newHarness(t *testing.T, files map[string]string) *harness {
	t.Helper()
	maint := emptydb.New(t)
	h := &harness{t: t, maint: maint, dir: t.TempDir()}
	h.database = emptydb.Name(t) + "_w"
	h.template = emptydb.Name(t) + "_t"
	h.env = map[string]string{
		"DATABASE_URL":        emptydb.URL(maint),
		"DBINIT_DIR":          h.dir,
		"DBINIT_DATABASE":     h.database,
		"DBINIT_TEMPLATE":     h.template,
		"DBINIT_WAIT_TIMEOUT": "10s",
		"DBINIT_LOCK_TIMEOUT": "10s",
	}
	for name, text := range files {
		h.write(name, text)
	}
	t.Cleanup(func() {
		srv := emptydb.Server(t)
		conn := emptydb.Conn(t, srv)
		rows, err := conn.Query(context.Background(), `SELECT datname FROM pg_database WHERE starts_with(datname, $1) OR starts_with(datname, $2)`,
			h.database, h.template)
		if err != nil {
			t.Error(err)
			return
		}
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, n := range names {
			id := pgx.Identifier{n}.Sanitize()
			if _, err := conn.Exec(context.Background(), "ALTER DATABASE "+id+" IS_TEMPLATE false"); err != nil {
				t.Error(err)
			}
			if _, err := conn.Exec(context.Background(), "DROP DATABASE "+id+" WITH (FORCE)"); err != nil {
				t.Error(err)
			}
		}
	})
	return h
}

func (h *harness) write(name, text string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.dir, name), []byte(text), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) run(args ...string) (int, string, string) {
	return h.runCtx(context.Background(), args...)
}

func (h *harness) runCtx(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(ctx, args, h.env, &out, &errb)
	return code, out.String(), errb.String()
}

// expect runs dbinit and checks its exit code.
func (h *harness) expect(code int, args ...string) (string, string) {
	h.t.Helper()
	got, out, errs := h.run(args...)
	if got != code {
		h.t.Fatalf("dbinit %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, got, code, out, errs)
	}
	return out, errs
}

func (h *harness) db(name string) *pgx.Conn {
	cc := h.maint.Copy()
	cc.Database = name
	return emptydb.Conn(h.t, cc)
}

func query[T any](t *testing.T, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

var twoFiles = map[string]string{
	"001_users.sql":      "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);",
	"001_users_down.sql": "DROP TABLE users;",
	"002_posts.sql":      "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);",
}

func TestInitLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)

	// Fresh server: template built and marked, working database cloned with history.
	_, logs := h.expect(ExitOK)
	if !strings.Contains(logs, "template_state=built") || !strings.Contains(logs, "database_state=created") {
		t.Fatalf("summary missing:\n%s", logs)
	}
	maint := h.db("postgres")
	if !query[bool](t, maint, `SELECT datistemplate AND NOT datallowconn FROM pg_database WHERE datname = $1`, h.template) {
		t.Fatal("template not marked IS_TEMPLATE / ALLOW_CONNECTIONS false")
	}
	work := h.db(h.database)
	if n := query[int64](t, work, `SELECT count(*) FROM dbinit.schema_migrations`); n != 2 {
		t.Fatalf("working db history rows = %d", n)
	}

	// Second run: nothing to do.
	_, logs = h.expect(ExitOK, "init")
	if !strings.Contains(logs, "template_state=reused") || !strings.Contains(logs, "database_state=unchanged") {
		t.Fatalf("second run was not a no-op:\n%s", logs)
	}

	// Data in the working database, a new migration: template rebuilt, working
	// database gets only the new file and keeps its rows.
	if _, err := work.Exec(context.Background(), `INSERT INTO users VALUES (1, 'ada')`); err != nil {
		t.Fatal(err)
	}
	h.write("003_comments.sql", "CREATE TABLE comments (id bigint PRIMARY KEY, body text);")
	_, logs = h.expect(ExitOK)
	if !strings.Contains(logs, "template_state=extended") || !strings.Contains(logs, "database_state=updated") || !strings.Contains(logs, "files_applied=1") {
		t.Fatalf("third run:\n%s", logs)
	}
	if n := query[int64](t, work, `SELECT count(*) FROM users`); n != 1 {
		t.Fatal("working database lost its data")
	}
	if n := query[int64](t, work, `SELECT count(*) FROM pg_tables WHERE tablename = 'comments'`); n != 1 {
		t.Fatal("new file not applied to the working database")
	}

	// A broken new file: exit 1 with the place; old template intact; working db untouched.
	h.write("004_broken.sql", "CREATE TABLE broken (id int);\nSELEC 1;")
	_, logs = h.expect(ExitSQL)
	if !strings.Contains(logs, "004_broken.sql:2:1: ERROR 42601") {
		t.Fatalf("no FILE:LINE:COL in:\n%s", logs)
	}
	if !query[bool](t, maint, `SELECT datistemplate FROM pg_database WHERE datname = $1`, h.template) {
		t.Fatal("old template gone after a failed build")
	}
	if n := query[int64](t, maint, `SELECT count(*) FROM pg_database WHERE datname LIKE $1`, h.template+"\\_%"); n != 0 {
		t.Fatal("failed build database left behind")
	}
	if n := query[int64](t, work, `SELECT count(*) FROM pg_tables WHERE tablename = 'broken'`); n != 0 {
		t.Fatal("working database touched by a failed build")
	}
	os.Remove(filepath.Join(h.dir, "004_broken.sql"))

	// DBINIT_RESET=true: a fresh clone, data gone, said loudly.
	h.env["DBINIT_RESET"] = "true"
	_, logs = h.expect(ExitOK)
	delete(h.env, "DBINIT_RESET")
	if !strings.Contains(logs, "DROPPING the working database") {
		t.Fatalf("reset not announced:\n%s", logs)
	}
	work = h.db(h.database)
	if n := query[int64](t, work, `SELECT count(*) FROM users`); n != 0 {
		t.Fatal("reset kept the data")
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	h.expect(ExitOK, "up")

	t.Run("usage", func(t *testing.T) {
		h.expect(ExitUsage, "frobnicate")
		h.expect(ExitUsage, "down")
		h.expect(ExitUsage, "up", "--to", "x")
	})
	t.Run("config", func(t *testing.T) {
		env := map[string]string{"DATABASE_URL": "postgres://a@b/c", "DATABASE_URL_FILE": "/x"}
		if code := Run(context.Background(), []string{"wait"}, env, &bytes.Buffer{}, &bytes.Buffer{}); code != ExitUsage {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("bad folder before any connection", func(t *testing.T) {
		env := map[string]string{"DATABASE_URL": "postgres://u:p@127.0.0.1:1/x", "DBINIT_DIR": t.TempDir()}
		os.WriteFile(filepath.Join(env["DBINIT_DIR"], "1_a.sql"), []byte("\\c other"), 0o644)
		var errb bytes.Buffer
		if code := Run(context.Background(), []string{"up"}, env, &bytes.Buffer{}, &errb); code != ExitUsage {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if !strings.Contains(errb.String(), "1_a.sql:1:1") {
			t.Fatalf("stderr: %s", errb.String())
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		env := map[string]string{"DATABASE_URL": "postgres://u:sekrit-pass@127.0.0.1:1/x", "DBINIT_WAIT_TIMEOUT": "700ms"}
		var errb bytes.Buffer
		start := time.Now()
		if code := Run(context.Background(), []string{"wait"}, env, &bytes.Buffer{}, &errb); code != ExitUnreachable {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("did not respect DBINIT_WAIT_TIMEOUT")
		}
		if strings.Contains(errb.String(), "sekrit-pass") {
			t.Fatalf("password printed: %s", errb.String())
		}
	})
	t.Run("authentication", func(t *testing.T) {
		cc := h.maint.Copy()
		cc.Password = "wrong-password-123"
		env := map[string]string{"DATABASE_URL": emptydb.URL(cc)}
		var errb bytes.Buffer
		start := time.Now()
		if code := Run(context.Background(), []string{"wait"}, env, &bytes.Buffer{}, &errb); code != ExitAuth {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if time.Since(start) > 3*time.Second {
			t.Fatal("authentication failure was retried")
		}
		if strings.Contains(errb.String(), "wrong-password-123") {
			t.Fatalf("password printed: %s", errb.String())
		}
	})
	t.Run("malformed URL keeps the password secret", func(t *testing.T) {
		env := map[string]string{"DATABASE_URL": "postgres://user:hunter2-secret@host:notaport/db"}
		var errb bytes.Buffer
		if code := Run(context.Background(), []string{"wait"}, env, &bytes.Buffer{}, &errb); code != ExitUsage {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if strings.Contains(errb.String(), "hunter2") {
			t.Fatalf("password printed: %s", errb.String())
		}
	})
	t.Run("missing maintenance database", func(t *testing.T) {
		cc := h.maint.Copy()
		cc.Database = "no_such_db_here"
		env := map[string]string{"DATABASE_URL": emptydb.URL(cc)}
		var errb bytes.Buffer
		if code := Run(context.Background(), []string{"wait"}, env, &bytes.Buffer{}, &errb); code != ExitUsage || !strings.Contains(errb.String(), "no_such_db_here") {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	})
	t.Run("refused template", func(t *testing.T) {
		env := map[string]string{}
		for k, v := range h.env {
			env[k] = v
		}
		env["DBINIT_TEMPLATE"] = "template1"
		var errb bytes.Buffer
		if code := Run(context.Background(), []string{"init"}, env, &bytes.Buffer{}, &errb); code != ExitUsage || !strings.Contains(errb.String(), `"template1"`) {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	})
	t.Run("drift", func(t *testing.T) {
		h.write("001_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY);")
		_, logs := h.expect(ExitDrift, "up")
		if !strings.Contains(logs, "dbinit accept 1") {
			t.Fatalf("stderr: %s", logs)
		}
		// status is a report: it shows the drift and succeeds.
		out, _ := h.expect(ExitOK, "status")
		if !strings.Contains(out, "changed") {
			t.Fatalf("status:\n%s", out)
		}
	})
}

func TestLockTimeoutExit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	holder := h.db("postgres")
	if _, err := holder.Exec(context.Background(), `SELECT pg_advisory_lock($1)`, provision.LockKey(h.database)); err != nil {
		t.Fatal(err)
	}
	h.env["DBINIT_LOCK_TIMEOUT"] = "1s"
	_, logs := h.expect(ExitLocked, "up")
	if !strings.Contains(logs, "waiting for another runner's lock") || !strings.Contains(logs, "pid") {
		t.Fatalf("holder not reported:\n%s", logs)
	}
}

func TestStatusJSONAndPlan(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	out, _ := h.expect(ExitOK, "plan")
	if !strings.Contains(out, "does not exist") || !strings.Contains(out, "001_users.sql") {
		t.Fatalf("plan:\n%s", out)
	}
	h.expect(ExitOK, "up", "--to", "1")
	out, _ = h.expect(ExitOK, "status", "--json")
	var st struct {
		Exists     bool `json:"exists"`
		Migrations []struct {
			Version int64  `json:"version"`
			State   string `json:"state"`
		} `json:"migrations"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !st.Exists || len(st.Migrations) != 2 || st.Migrations[0].State != "applied" || st.Migrations[1].State != "pending" {
		t.Fatalf("status = %+v", st)
	}
	out, _ = h.expect(ExitOK, "plan")
	if !strings.Contains(out, "002_posts.sql") || strings.Contains(out, "001_users.sql") {
		t.Fatalf("plan:\n%s", out)
	}
}

func TestCloneAndNew(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	name := h.database + "_c"
	out, _ := h.expect(ExitOK, "clone", name)
	if strings.TrimSpace(out) != name {
		t.Fatalf("stdout = %q", out)
	}
	c := h.db(name)
	if n := query[int64](t, c, `SELECT count(*) FROM dbinit.schema_migrations`); n != 2 {
		t.Fatalf("clone history = %d", n)
	}
	c.Close(context.Background())
	h.expect(ExitUsage, "clone", name)
	h.expect(ExitOK, "clone", name, "--replace")

	out, _ = h.expect(ExitOK, "new", "Add Comments!")
	if !strings.Contains(out, "003_add_comments.sql") || !strings.Contains(out, "003_add_comments_down.sql") {
		t.Fatalf("new: %s", out)
	}
	h.expect(ExitOK, "status") // the scaffold loads; TestNewWritesTodoFiles has the rest
}

// TestTenRunnersBuildOnce: ten init containers starting together build the
// template once and clone the working database once; all succeed.
func TestTenRunnersBuildOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	type outcome struct {
		code int
		logs string
	}
	results := make(chan outcome, 10)
	for range 10 {
		go func() {
			code, _, logs := h.run("init")
			results <- outcome{code, logs}
		}()
	}
	built, created := 0, 0
	for range 10 {
		o := <-results
		if o.code != ExitOK {
			t.Fatalf("a runner exited %d:\n%s", o.code, o.logs)
		}
		built += strings.Count(o.logs, "template_state=built")
		created += strings.Count(o.logs, "database_state=created")
	}
	if built != 1 || created != 1 {
		t.Fatalf("template built %d times, working database created %d times; want 1 and 1", built, created)
	}
}
