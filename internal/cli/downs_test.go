package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedFolderDownsAndGeneratedDowns: the project's db/ (whatever it
// holds) passes check-down; and with every down file replaced by one
// generate-down writes, it passes too.
func TestShippedFolderDownsAndGeneratedDowns(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	entries, err := os.ReadDir("../../db")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			b, err := os.ReadFile(filepath.Join("../../db", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files[e.Name()] = string(b)
		}
	}
	if len(files) == 0 {
		t.Skip("db/ holds no migrations")
	}
	h := newHarness(t, files)
	out, errs := h.run2("check-down")
	if strings.Contains(out, "DIFFERS") || strings.Contains(out, "FAILED") {
		t.Fatalf("the shipped down files do not reverse their up files:\n%s%s", out, errs)
	}
	// Generated downs, over every file that has up SQL.
	for name := range files {
		if strings.HasSuffix(name, "_down.sql") || strings.Contains(files[name], "dbinit:todo") {
			continue
		}
		version := strings.SplitN(name, "_", 2)[0]
		if _, hasDown := files[strings.TrimSuffix(name, ".sql")+"_down.sql"]; hasDown {
			if _, errs := h.expect(ExitUsage, "generate-down", version); !strings.Contains(errs, "--force") {
				t.Fatalf("generate-down over an existing down file: %s", errs)
			}
		}
		h.expect(ExitOK, "generate-down", version, "--force")
	}
	out, _ = h.expect(ExitOK, "check-down")
	if !strings.Contains(out, " 0 do not") {
		t.Fatalf("check-down of the generated downs:\n%s", out)
	}
	if n := query[int64](t, h.db("postgres"), `SELECT count(*) FROM pg_database WHERE datname LIKE $1`, h.template+"_check_%"); n != 0 {
		t.Fatalf("%d scratch databases left", n)
	}
}

// run2 runs dbinit and returns its output whatever the exit code.
func (h *harness) run2(args ...string) (string, string) {
	_, out, errs := h.run(args...)
	return out, errs
}

// TestCheckDownFindsWhatADownFileLeaves: a down file that forgets an index
// and a column is reported, object by object, with exit 5.
func TestCheckDownFindsWhatADownFileLeaves(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]string{
		"001_users.sql":      "CREATE TABLE users (id bigint PRIMARY KEY, email text);",
		"001_users_down.sql": "DROP TABLE users;",
		"002_more.sql":       "ALTER TABLE users ADD COLUMN name text;\nCREATE INDEX users_email ON users (email);",
		"002_more_down.sql":  "DROP INDEX users_email;",
		"003_none.sql":       "CREATE TABLE notes (id int);",
	})
	out, errs := h.expect(ExitDrift, "check-down")
	for _, want := range []string{"1 ok", "2 DIFFERS", "left over: column public.users.name #3 text", "3 no down file", "1 down file(s) reverse their up file, 1 do not, 1 version(s) have none"} {
		if !strings.Contains(out, want) {
			t.Fatalf("check-down lacks %q:\n%s%s", want, out, errs)
		}
	}
	h.expect(ExitOK, "check-down", "--from", "3") // only 3, which has none
	// generate-down writes what was forgotten, and says what it cannot undo.
	out, errs = h.expect(ExitOK, "generate-down", "3")
	if !strings.HasSuffix(strings.TrimSpace(out), "003_none_down.sql") {
		t.Fatalf("generate-down: %s", out)
	}
	if !strings.Contains(h.read("003_none_down.sql"), "DROP TABLE public.notes;") {
		t.Fatalf("003_none_down.sql:\n%s", h.read("003_none_down.sql"))
	}
	h.expect(ExitOK, "generate-down", "2", "--force")
	out, _ = h.expect(ExitOK, "check-down")
	if !strings.Contains(out, "3 down file(s) reverse their up file, 0 do not") {
		t.Fatalf("after generate-down:\n%s", out)
	}
	h.write("004_drop.sql", "DROP TABLE notes;")
	_, errs = h.expect(ExitOK, "generate-down", "4")
	if !strings.Contains(errs, "dropped the table public.notes") || !strings.Contains(h.read("004_drop_down.sql"), "-- WARNING: the up file dropped the table public.notes") {
		t.Fatalf("a dropped table's rows: %s\n%s", errs, h.read("004_drop_down.sql"))
	}
}
