package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/internal/provision"
)

// TestJSONModeEveryLine: with DBINIT_LOG_FORMAT=json (or --log-format
// json), every line dbinit writes to stderr is a JSON object, also for
// errors found before the configuration could be read.
func TestJSONModeEveryLine(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	jsonLines := func(t *testing.T, stderr string) []map[string]any {
		t.Helper()
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not a JSON line: %q\n(all of stderr:\n%s)", line, stderr)
			}
			out = append(out, m)
		}
		return out
	}
	run := func(env map[string]string, args ...string) (int, string) {
		var errb bytes.Buffer
		code := Run(context.Background(), args, env, &bytes.Buffer{}, &errb)
		return code, errb.String()
	}
	withEnv := func(extra map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range h.env {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
	}{
		{"bad variable", withEnv(map[string]string{"DBINIT_LOG_FORMAT": "json", "DBINIT_WAIT_TIMEOUT": "soon"}), []string{"up"}, ExitUsage},
		{"bad flag", withEnv(nil), []string{"up", "--log-format", "json", "--frobnicate"}, ExitUsage},
		{"both X and X_FILE", withEnv(map[string]string{"DBINIT_LOG_FORMAT": "json", "DATABASE_URL_FILE": "/nonexistent"}), []string{"up"}, ExitUsage},
		{"unknown command", withEnv(map[string]string{"DBINIT_LOG_FORMAT": "json"}), []string{"frobnicate"}, ExitUsage},
		{"a whole run", withEnv(map[string]string{"DBINIT_LOG_FORMAT": "json"}), []string{"init"}, ExitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := run(tc.env, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, stderr)
			}
			lines := jsonLines(t, stderr)
			if tc.code != ExitOK {
				last := lines[len(lines)-1]
				if last["level"] != "ERROR" || last["exit_code"] != float64(tc.code) {
					t.Fatalf("last line = %v", last)
				}
			}
		})
	}
	h.write("003_bad.sql", "SELECT nope;")
	code, stderr := run(withEnv(map[string]string{"DBINIT_LOG_FORMAT": "json"}), "up")
	lines := jsonLines(t, stderr)
	last := lines[len(lines)-1]
	if code != ExitSQL || last["file"] == nil || last["line"] != float64(1) || last["sqlstate"] != "42703" {
		t.Fatalf("exit %d, last line %v", code, last)
	}
}

// TestExitCodesForConfiguration: what only the configuration can fix exits
// 2 at once, naming the setting.
func TestExitCodesForConfiguration(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	t.Run("owner role missing", func(t *testing.T) {
		env := copyEnv(h.env)
		env["DBINIT_OWNER"] = "no_such_role_for_dbinit"
		code, _, stderr := runEnv(env, "init")
		if code != ExitUsage || !strings.Contains(stderr, "DBINIT_OWNER") || !strings.Contains(stderr, "no_such_role_for_dbinit") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	})
	t.Run("TLS required, server has none", func(t *testing.T) {
		env := copyEnv(h.env)
		env["DATABASE_URL"] = strings.Replace(env["DATABASE_URL"], "sslmode=disable", "sslmode=require", 1)
		env["DBINIT_WAIT_TIMEOUT"] = "30s"
		start := time.Now()
		code, _, stderr := runEnv(env, "wait")
		if code != ExitUsage || !strings.Contains(stderr, "does not offer TLS") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %s: a server without TLS was waited for", d)
		}
	})
	t.Run("new after the largest version", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, strconv.FormatInt(math.MaxInt64, 10)+"_last.sql"), []byte("SELECT 1;"), 0o644); err != nil {
			t.Fatal(err)
		}
		env := copyEnv(h.env)
		env["DBINIT_DIR"] = dir
		code, _, stderr := runEnv(env, "new", "more")
		if code != ExitUsage || !strings.Contains(stderr, "no version can follow") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("%d files in the folder, want the one", len(entries))
		}
	})
	t.Run("not empty, no history", func(t *testing.T) {
		env := copyEnv(h.env)
		env["DBINIT_DATABASE"] = h.database + "_shop"
		srv := emptydb.Server(t)
		emptydb.Exec(t, srv, "CREATE DATABASE "+env["DBINIT_DATABASE"])
		t.Cleanup(func() { emptydb.Drop(t, srv, env["DBINIT_DATABASE"]) })
		cc := srv.Copy()
		cc.Database = env["DBINIT_DATABASE"]
		emptydb.Exec(t, cc, "CREATE TABLE orders (id int)")
		for _, cmd := range []string{"init", "up"} {
			code, _, stderr := runEnv(env, cmd)
			if code != ExitUsage || !strings.Contains(stderr, "dbinit baseline --version N") {
				t.Fatalf("%s: exit %d: %s", cmd, code, stderr)
			}
		}
	})
	t.Run("reserved working database", func(t *testing.T) {
		env := copyEnv(h.env)
		env["DBINIT_DATABASE"] = "template1"
		for _, cmd := range []string{"init", "up", "baseline"} {
			args := []string{cmd}
			if cmd == "baseline" {
				args = append(args, "--version", "1")
			}
			if code, _, stderr := runEnv(env, args...); code != ExitUsage || !strings.Contains(stderr, "template1") {
				t.Fatalf("%s: exit %d: %s", cmd, code, stderr)
			}
		}
	})
}

// TestConnectionLostExit: the server ending dbinit's session mid-file exits
// 3 and names the file, which is not recorded.
func TestConnectionLostExit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]string{"001_slow.sql": "CREATE TABLE a (id int);\nSELECT pg_sleep(30);"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn := emptydb.Conn(t, emptydb.Server(t))
		for range 400 {
			var n int
			if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = $1 AND query LIKE '%pg_sleep(30)%') t`, h.database).Scan(&n); err != nil || n > 0 {
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
	}()
	code, _, stderr := h.run("up")
	<-done
	if code != ExitUnreachable || !strings.Contains(stderr, "001_slow.sql") || !strings.Contains(stderr, "connection to the server lost") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// TestLockScope: runners that manage the same databases wait for each
// other even when their URLs name different maintenance databases; runners
// that manage other databases do not wait.
func TestLockScope(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	// Another runner, through another maintenance database, holds the lock
	// of this working database.
	other := emptydb.New(t)
	holder := emptydb.Conn(t, func() *pgx.ConnConfig { c := other.Copy(); c.Database = "postgres"; return c }())
	if _, err := holder.Exec(context.Background(), `SELECT pg_advisory_lock($1)`, provision.LockKey(h.database)); err != nil {
		t.Fatal(err)
	}
	env := copyEnv(h.env)
	env["DBINIT_LOCK_TIMEOUT"] = "1s"
	if code, _, stderr := runEnv(env, "up"); code != ExitLocked {
		t.Fatalf("same working database: exit %d, want %d\n%s", code, ExitLocked, stderr)
	}
	// Other databases on the same server: no wait.
	env["DBINIT_DATABASE"] = h.database + "_other"
	env["DBINIT_TEMPLATE"] = h.template + "_other"
	if code, _, stderr := runEnv(env, "init"); code != ExitOK {
		t.Fatalf("other databases: exit %d\n%s", code, stderr)
	}
	if _, err := holder.Exec(context.Background(), `SELECT pg_advisory_unlock_all()`); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := h.run("up"); code != ExitOK {
		t.Fatalf("after the lock was released: exit %d\n%s", code, stderr)
	}
}

func copyEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = v
	}
	return out
}

func runEnv(env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, env, &out, &errb)
	return code, out.String(), errb.String()
}
