package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/savvi-studio/dbinit/internal/emptydb"
)

// offline runs dbinit with a folder and a server URL nothing listens on:
// what it prints without a server.
func offline(t *testing.T, files map[string]string, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/postgres", "DBINIT_DIR": dir}
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, env, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpVersionAndSuggestions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args     []string
		code     int
		out, err []string // substrings of stdout and stderr
	}{
		{[]string{"--version"}, ExitOK, []string{"dbinit "}, nil},
		{[]string{"version"}, ExitOK, []string{"dbinit "}, nil},
		{[]string{"help"}, ExitOK, []string{"Commands:", "validate", "plan [down]", "--wait-timeout", "7 files pending"}, nil},
		{[]string{"--help"}, ExitOK, []string{"Commands:"}, nil},
		{[]string{"help", "plan"}, ExitOK, []string{"Usage: dbinit plan", "--to N", "--steps K", "--sql", "--json", "Example:"}, nil},
		{[]string{"status", "--help"}, ExitOK, []string{"--exit-code", "--json", "Example:"}, nil},
		{[]string{"up", "-h"}, ExitOK, []string{"--to N"}, nil},
		{[]string{"stauts"}, ExitUsage, nil, []string{`unknown command "stauts"; did you mean "status"?`}},
		{[]string{"help", "valdate"}, ExitUsage, nil, []string{`did you mean "validate"?`}},
		{[]string{"status", "--jsn"}, ExitUsage, nil, []string{"status: unknown flag --jsn; did you mean --json?"}},
		{[]string{"--dri", "x", "status"}, ExitUsage, nil, []string{"unknown flag --dri; did you mean --dir?"}},
		{[]string{"plan", "--to", "x"}, ExitUsage, nil, []string{`plan: invalid value "x" for flag --to`}},
		// A flag's bad value is named by the flag, not the variable it overrides.
		{[]string{"status", "--log-format", "xml"}, ExitUsage, nil, []string{"--log-format must be text or json"}},
		{[]string{"clone"}, ExitUsage, nil, []string{"dbinit: clone: needs exactly one database NAME"}},
		{[]string{"down"}, ExitUsage, nil, []string{"down: needs exactly one of --to N or --steps K"}},
		{[]string{"plan", "sideways"}, ExitUsage, nil, []string{"plan: takes nothing, up or down"}},
	}
	for _, c := range cases {
		code, out, errs := offline(t, twoFiles, c.args...)
		if code != c.code {
			t.Errorf("dbinit %v: exit %d, want %d\n%s%s", c.args, code, c.code, out, errs)
			continue
		}
		for _, s := range c.out {
			if !strings.Contains(out, s) {
				t.Errorf("dbinit %v: stdout lacks %q:\n%s", c.args, s, out)
			}
		}
		for _, s := range c.err {
			if !strings.Contains(errs, s) {
				t.Errorf("dbinit %v: stderr lacks %q:\n%s", c.args, s, errs)
			}
		}
		if strings.Count(errs, "dbinit") > 1 && !strings.Contains(errs, "dbinit help") {
			t.Errorf("dbinit %v: more than one dbinit prefix: %s", c.args, errs)
		}
	}
}

// TestUsageListsEveryFlag: the overview and each command's help name
// every flag the command takes.
func TestUsageListsEveryFlag(t *testing.T) {
	t.Parallel()
	usage := usageText()
	for _, s := range specs {
		if !strings.Contains(usage, "  "+s.name) {
			t.Errorf("usage does not list %s", s.name)
		}
		if s.command == nil {
			continue
		}
		var help bytes.Buffer
		commandHelp(&help, s)
		fs := newFlagSet(s.name)
		s.command(fs)
		for _, name := range flagNames(fs) {
			if !strings.Contains(help.String(), dashes(name)) {
				t.Errorf("dbinit help %s does not list --%s", s.name, name)
			}
			if !strings.Contains(s.synopsis, dashes(name)) {
				t.Errorf("the synopsis of %s (%q) does not show --%s", s.name, s.synopsis, name)
			}
		}
	}
}

// TestGlobalFlagsBeforeTheCommand: dbinit --dir X validate reads X; flags
// after the command win over those before it.
func TestGlobalFlagsBeforeTheCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "001_a.sql"), []byte("SELECT 1;"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	env := map[string]string{"DBINIT_DIR": filepath.Join(dir, "missing")}
	if code := Run(context.Background(), []string{"--dir", dir, "validate"}, env, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "1 migration(s)") {
		t.Fatalf("stdout: %s", out.String())
	}
	out.Reset()
	errb.Reset()
	code := Run(context.Background(), []string{"--dir", dir, "validate", "--dir", filepath.Join(dir, "other")}, env, &out, &errb)
	if code != ExitUsage || !strings.Contains(errb.String(), "other") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files map[string]string
		code  int
		want  []string
	}{
		{"good", twoFiles, ExitOK, []string{"2 migration(s), versions 1 to 2; 1 with a down file"}},
		{"empty files are fine", map[string]string{"001_a.sql": "", "002_b.sql": "-- kept for numbering\n"}, ExitOK, []string{"2 empty"}},
		{"no migrations", map[string]string{"README.md": "hi"}, ExitUsage, []string{"no migrations in"}},
		{"bad name", map[string]string{"001_a.sql": "SELECT 1;", "create_users.sql": "SELECT 1;"}, ExitUsage, []string{"create_users.sql: name does not match"}},
		{"unterminated string", map[string]string{"001_a.sql": "SELECT 1;\nSELECT 'oops;\n"}, ExitUsage, []string{"001_a.sql:2:"}},
		{"todo", map[string]string{"001_a.sql": "-- dbinit:todo\nSELECT 1;"}, ExitUsage, []string{"001_a.sql", "dbinit:todo"}},
		{"bad directive", map[string]string{"001_a.sql": "-- dbinit:lock-timeout soon\nSELECT 1;"}, ExitUsage, []string{"001_a.sql", "duration"}},
	}
	for _, c := range cases {
		code, out, errs := offline(t, c.files, "validate")
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", c.name, code, c.code, out, errs)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(out+errs, w) {
				t.Errorf("%s: output lacks %q:\n%s%s", c.name, w, out, errs)
			}
		}
		if strings.Contains(errs, "waiting for the server") || strings.Contains(errs, "127.0.0.1:1") {
			t.Errorf("%s: validate tried the server:\n%s", c.name, errs)
		}
	}
}

// TestReadOnlyCommandsFailFast: status and plan against a server that is
// not there give up after 5s by default (not the 60s init waits for a
// server that is starting), and say why once.
func TestReadOnlyCommandsFailFast(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"status", "plan"} {
		code, _, errs := offline(t, twoFiles, cmd)
		if code != ExitUnreachable {
			t.Fatalf("%s: exit %d: %s", cmd, code, errs)
		}
		if !strings.Contains(errs, "not ready after 5") || strings.Contains(errs, "waiting for the server") {
			t.Fatalf("%s: stderr:\n%s", cmd, errs)
		}
		if n := strings.Count(errs, "connection refused"); n != 1 {
			t.Fatalf("%s: the reason is said %d times:\n%s", cmd, n, errs)
		}
	}
}

// TestWrongPasswordSaysOnlyThat: with sslmode=prefer (the default) pgx
// first tries TLS; a server without TLS refuses it, and that is not what
// went wrong.
func TestWrongPasswordSaysOnlyThat(t *testing.T) {
	t.Parallel()
	name, urlFor := role(t, "")
	u, err := url.Parse(urlFor("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(name, "wrong-password")
	u.RawQuery = ""
	env := map[string]string{"DATABASE_URL": u.String(), "DBINIT_DIR": t.TempDir()}
	if err := os.WriteFile(filepath.Join(env["DBINIT_DIR"], "001_a.sql"), []byte("SELECT 1;"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runEnv(env, "status")
	if code != ExitAuth || !strings.Contains(errs, "password authentication failed") || strings.Contains(errs, "tls") {
		t.Fatalf("exit %d:\n%s", code, errs)
	}
	if strings.Contains(errs, "wrong-password") {
		t.Fatal("password printed")
	}
}

func TestStatusSummaryAndExitCode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]string{
		"001_users.sql":      "CREATE TABLE users (id bigint PRIMARY KEY);",
		"001_users_down.sql": "DROP TABLE users;",
		"002_empty.sql":      "-- nothing yet; keeps the numbering\n",
		"003_posts.sql":      "CREATE TABLE posts (id bigint PRIMARY KEY);",
	})
	// Nothing exists yet: everything pending.
	out, errs := h.expect(ExitPending, "status", "--exit-code")
	if !strings.Contains(out, "does not exist yet") || !strings.Contains(errs, "pending") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out, errs)
	}
	h.expect(ExitOK, "status") // a report, without --exit-code

	// A database loaded before dbinit, adopted with baseline.
	emptydb.Exec(t, h.maint, "CREATE DATABASE "+h.database)
	emptydb.Exec(t, h.db(h.database).Config(), "CREATE TABLE users (id bigint PRIMARY KEY)")
	h.expect(ExitOK, "baseline", "--version", "1")
	h.expect(ExitOK, "up", "--to", "2")
	out, _ = h.expect(ExitPending, "status", "--exit-code")
	if !strings.Contains(out, h.database+" at version 2: 2 applied, 1 pending") {
		t.Fatalf("summary:\n%s", out)
	}
	// Names relative to the folder; the baselined row says so; durations.
	line := regexp.MustCompile(`(?m)^1\s+applied\s+001_users\.sql\s+\S+ \S+\s+-\s+baseline`)
	if !line.MatchString(out) || regexp.MustCompile(`(?m)^\d.*`+regexp.QuoteMeta(h.dir)).MatchString(out) || !regexp.MustCompile(`(?m)^2\s+applied\s+002_empty\.sql.*\d+ms`).MatchString(out) {
		t.Fatalf("status:\n%s", out)
	}
	h.expect(ExitOK, "up")
	h.expect(ExitOK, "status", "--exit-code")

	// An applied file edited: drift, 5, and the JSON says so too.
	h.write("003_posts.sql", "CREATE TABLE posts (id bigint PRIMARY KEY, body text);")
	out, errs = h.expect(ExitDrift, "status", "--exit-code")
	if !strings.Contains(out, "1 changed") || !strings.Contains(out, "up would refuse to run") || !strings.Contains(errs, "exit 5") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out, errs)
	}
	out, _ = h.expect(ExitDrift, "status", "--json", "--exit-code")
	var st struct {
		Summary struct {
			Version, Applied, Changed int
		} `json:"summary"`
		Drift      bool `json:"drift"`
		Migrations []struct {
			File     string `json:"file"`
			Baseline bool   `json:"baseline"`
		} `json:"migrations"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !st.Drift || st.Summary.Version != 3 || st.Summary.Applied != 2 || st.Summary.Changed != 1 ||
		!st.Migrations[0].Baseline || st.Migrations[1].Baseline || st.Migrations[0].File != "001_users.sql" {
		t.Fatalf("status --json:\n%s", out)
	}
}

func TestPlanSQLJSONAndDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]string{
		"001_users.sql":      "-- the users\nCREATE TABLE users (id bigint PRIMARY KEY);\n\nINSERT INTO users VALUES (1);\n",
		"001_users_down.sql": "DROP TABLE users;",
		"002_idx.sql":        "-- dbinit:no-transaction\nCREATE INDEX CONCURRENTLY users_id ON users (id);\n",
		"002_idx_down.sql":   "DROP INDEX users_id;",
		"003_empty.sql":      "",
	})
	out, _ := h.expect(ExitOK, "plan", "--sql")
	for _, want := range []string{"001_users.sql:2\nCREATE TABLE users", "001_users.sql:4\nINSERT INTO users VALUES (1);", "002_idx.sql:2\nCREATE INDEX CONCURRENTLY",
		"no-transaction", "003_empty.sql", "recorded as a no-op"} {
		if !strings.Contains(out, want) {
			t.Fatalf("plan --sql lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "001_users.sql:2") > strings.Index(out, "002_idx.sql:2") {
		t.Fatalf("plan --sql out of order:\n%s", out)
	}
	h.expect(ExitOK, "up")
	out, _ = h.expect(ExitOK, "plan", "down", "--steps", "2", "--json", "--sql")
	var plan struct {
		Direction string `json:"direction"`
		Steps     []struct {
			Version int64  `json:"version"`
			Path    string `json:"path"`
			SQL     []struct {
				Line int    `json:"line"`
				SQL  string `json:"sql"`
			} `json:"sql"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if plan.Direction != "down" || len(plan.Steps) != 2 || plan.Steps[0].Version != 3 || len(plan.Steps[0].SQL) != 0 ||
		plan.Steps[1].Version != 2 || len(plan.Steps[1].SQL) != 1 || plan.Steps[1].SQL[0].SQL != "DROP INDEX users_id;" {
		t.Fatalf("plan down --json:\n%s", out)
	}
	h.expect(ExitUsage, "plan", "down") // needs --to or --steps
	out, _ = h.expect(ExitOK, "plan", "down", "--to", "0")
	if !strings.Contains(out, "3 file(s)") || !strings.Contains(out, "001_users_down.sql") {
		t.Fatalf("plan down --to 0:\n%s", out)
	}
	// plan changed nothing: still at 3, and an empty file reverts without a down file.
	h.expect(ExitOK, "status", "--exit-code")
	h.expect(ExitOK, "down", "--to", "0")
	if n := query[int64](t, h.db(h.database), `SELECT count(*) FROM dbinit.schema_migrations`); n != 0 {
		t.Fatalf("%d rows after down --to 0", n)
	}
}

// TestEmptyAndCRLFFiles: empty and comment-only files are recorded no-ops;
// a file checked out again with CRLF line endings and a byte-order mark is
// the same file.
func TestEmptyAndCRLFFiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]string{
		"001_a.sql": "CREATE TABLE a (id int);\n-- a comment\nINSERT INTO a VALUES (1);\n",
		"002_b.sql": "",
		"003_c.sql": "/* nothing */\n-- at all\n",
	})
	h.expect(ExitOK, "init")
	if n := query[int64](t, h.db(h.database), `SELECT count(*) FROM dbinit.schema_migrations`); n != 3 {
		t.Fatalf("history rows = %d, want 3", n)
	}
	h.write("001_a.sql", "\ufeffCREATE TABLE a (id int);\r\n-- a comment\r\nINSERT INTO a VALUES (1);\r\n")
	out, _ := h.expect(ExitOK, "status", "--exit-code")
	if !strings.Contains(out, "3 applied, 0 pending") {
		t.Fatalf("status:\n%s", out)
	}
	h.expect(ExitOK, "init") // the template is still current: reused, not rebuilt
	// A real edit still counts.
	h.write("001_a.sql", "CREATE TABLE a (id int);\nINSERT INTO a VALUES (2);\n")
	h.expect(ExitDrift, "status", "--exit-code")
}

// TestNewWritesTodoFiles: what dbinit new writes is refused until written.
func TestNewWritesTodoFiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, twoFiles)
	h.expect(ExitOK, "up")
	out, _ := h.expect(ExitOK, "new", "add_comments")
	if !strings.Contains(out, "003_add_comments.sql") {
		t.Fatalf("new: %s", out)
	}
	for _, args := range [][]string{{"validate"}, {"plan"}, {"up"}, {"init"}, {"clone", h.database + "_c"}} {
		_, errs := h.expect(ExitUsage, args...)
		if !strings.Contains(errs, "003_add_comments.sql") || !strings.Contains(errs, "dbinit:todo") {
			t.Fatalf("%v: %s", args, errs)
		}
	}
	if n := query[int64](t, h.db(h.database), `SELECT count(*) FROM dbinit.schema_migrations`); n != 2 {
		t.Fatalf("history rows = %d after refusals", n)
	}
	h.write("003_add_comments.sql", "CREATE TABLE comments (id bigint);\n")
	h.write("003_add_comments_down.sql", "DROP TABLE comments;\n")
	h.expect(ExitOK, "validate")
	h.expect(ExitOK, "up")
	h.expect(ExitOK, "down", "--steps", "1")
}

func TestBaselineRefusesGapsWithoutForce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]string{
		"001_a.sql": "CREATE TABLE a (id int);",
		"002_b.sql": "CREATE TABLE b (id int);",
		"003_c.sql": "CREATE TABLE c (id int);",
	})
	h.expect(ExitOK, "up", "--to", "1")
	_, errs := h.expect(ExitUsage, "baseline", "--version", "3")
	if !strings.Contains(errs, "002_b.sql, 003_c.sql") || !strings.Contains(errs, "--force") {
		t.Fatalf("stderr: %s", errs)
	}
	if n := query[int64](t, h.db(h.database), `SELECT count(*) FROM dbinit.schema_migrations`); n != 1 {
		t.Fatalf("refused baseline recorded rows: %d", n)
	}
	h.expect(ExitOK, "baseline", "--version", "3", "--force")
	out, _ := h.expect(ExitOK, "status")
	if strings.Count(out, "baseline: recorded") != 2 {
		t.Fatalf("status:\n%s", out)
	}
}

func TestEmptyFolder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	for _, cmd := range []string{"init", "up", "status", "plan", "validate"} {
		_, errs := h.expect(ExitUsage, cmd)
		if !strings.Contains(errs, "no migrations in "+h.dir) {
			t.Fatalf("%s: %s", cmd, errs)
		}
	}
	h.expect(ExitOK, "new", "first") // new is how a folder starts
	if n := query[int64](t, emptydb.Conn(t, h.maint), `SELECT count(*) FROM pg_database WHERE datname = $1`, h.database); n != 0 {
		t.Fatal("a command on an empty folder created the database")
	}
}

func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// TestReferenceListsEveryCommand: docs/reference.md has a row for every
// command, naming each of its flags.
func TestReferenceListsEveryCommand(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/reference.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(s.name) + "[ `].*$").Find(doc)
		if row == nil {
			t.Errorf("docs/reference.md has no row for %s", s.name)
			continue
		}
		if s.command == nil {
			continue
		}
		fs := newFlagSet(s.name)
		s.command(fs)
		for _, name := range flagNames(fs) {
			if !strings.Contains(string(row), dashes(name)) {
				t.Errorf("docs/reference.md: the row of %s does not name --%s", s.name, name)
			}
		}
	}
}

// dashes is how a flag is written: -o, --json.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func TestLintCommand(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"001_users.sql":      "CREATE TABLE users (id bigint PRIMARY KEY, email text);",
		"001_users_down.sql": "DROP TABLE users;",
		"002_index.sql":      "-- a comment\nCREATE INDEX users_email ON users (email);",
		"002_index_down.sql": "DROP INDEX users_email;",
		"003_drop.sql":       "ALTER TABLE users DROP COLUMN email;",
	}
	code, out, errs := offline(t, files, "lint")
	if code != ExitLint || !strings.Contains(errs, "index-not-concurrent") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"/002_index.sql:2:1 index-not-concurrent CREATE INDEX on users", "/003_drop.sql:1:1 drop-object", "/003_drop.sql:1:1 missing-down", "1 error(s), 2 warning(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("lint output lacks %q:\n%s", want, out)
		}
	}
	// Only the files asked for; warnings alone are exit 0.
	code, out, _ = offline(t, files, "lint", "003_drop.sql", "--json")
	var findings []struct {
		File, Rule, Severity string
		Line, Col            int
	}
	if err := json.Unmarshal([]byte(out), &findings); err != nil || code != ExitOK || len(findings) != 2 || findings[0].Severity != "warning" {
		t.Fatalf("lint 003 --json: exit %d %v\n%s", code, err, out)
	}
	if code, _, errs := offline(t, files, "lint", "009_nope.sql"); code != ExitUsage || !strings.Contains(errs, "not a migration") {
		t.Fatalf("unknown file: exit %d %s", code, errs)
	}
	// validate runs it when the manifest asks.
	m := migrateManifest(t, files, `"lint": true,`)
	code, _, errs = offline(t, m, "validate")
	if code != ExitLint {
		t.Fatalf("validate with lint: exit %d %s", code, errs)
	}
	files["002_index.sql"] = "-- dbinit:lint-ignore index-not-concurrent\nCREATE INDEX users_email ON users (email);"
	if code, out, errs := offline(t, migrateManifest(t, files, `"lint": true,`), "validate"); code != ExitOK || !strings.Contains(out, "lint passes") {
		t.Fatalf("validate with the error ignored: exit %d %s%s", code, out, errs)
	}
}

// migrateManifest returns files plus the manifest dbinit manifest writes
// for them, with extra top-level JSON inserted by hand.
func migrateManifest(t *testing.T, files map[string]string, extra string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"manifest"}, map[string]string{"DBINIT_DIR": dir}, &out, &errb); code != 0 {
		t.Fatalf("manifest: %s", errb.String())
	}
	raw, err := os.ReadFile(filepath.Join(dir, "migrations.json"))
	if err != nil {
		t.Fatal(err)
	}
	withManifest := map[string]string{}
	for k, v := range files {
		withManifest[k] = v
	}
	withManifest["migrations.json"] = strings.Replace(string(raw), `"format": 1,`, `"format": 1,`+"\n  "+extra, 1)
	return withManifest
}
