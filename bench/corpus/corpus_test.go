package corpus_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/savvi-studio/dbinit/bench/corpus"
	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/migrate"
)

const n = 300

// write generates the corpus into a temporary folder and loads it.
func write(t *testing.T) (string, *migrate.Set) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	if err := corpus.Write(dir, n); err != nil {
		t.Fatal(err)
	}
	set, err := migrate.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, set
}

func TestWriteLoads(t *testing.T) {
	t.Parallel()
	dir, set := write(t)
	if len(set.Migrations) != n {
		t.Fatalf("%d migrations, want %d", len(set.Migrations), n)
	}
	var size, stmts int
	kinds := map[string]int{}
	for i, m := range set.Migrations {
		if m.Version != int64(i+1) {
			t.Fatalf("migration %d has version %d", i, m.Version)
		}
		if m.Up.NoTransaction {
			t.Errorf("%s is no-transaction; psql -1 could not load the corpus", m.Up.Path)
		}
		size += len(m.Up.SQL)
		stmts += len(m.Up.Statements)
		kind, _, _ := strings.Cut(m.Name, "_")
		kinds[kind]++
	}
	t.Logf("%d files, %d bytes, %d statements, %v", n, size, stmts, kinds)
	if size < 500_000 || size > 1_500_000 {
		t.Errorf("corpus is %d bytes, want 0.5-1.5 MB", size)
	}
	for _, k := range []string{"create", "alter", "function", "view", "seed", "indexes", "triggers"} {
		if kinds[k] < 10 {
			t.Errorf("only %d files of kind %q", kinds[k], k)
		}
	}
	// The files on disk are exactly Generate's.
	for _, f := range corpus.Generate(n) {
		b, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != f.SQL {
			t.Fatalf("%s differs from Generate", f.Name)
		}
	}
}

func TestDeterministicPrefix(t *testing.T) {
	t.Parallel()
	hash := func(fs []corpus.File) string {
		h := sha256.New()
		for _, f := range fs {
			fmt.Fprintf(h, "%s\x00%s\x00", f.Name, f.SQL)
		}
		return fmt.Sprintf("%x", h.Sum(nil))
	}
	a, b := corpus.Generate(n), corpus.Generate(n)
	if hash(a) != hash(b) {
		t.Fatal("two runs differ")
	}
	if hash(corpus.Generate(100)) != hash(a[:100]) {
		t.Fatal("Generate(100) is not a prefix of Generate(300)")
	}
}

// TestApplies applies the whole corpus with the engine to an empty database
// and uses what it built.
func TestApplies(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a PostgreSQL server")
	}
	t.Parallel()
	_, set := write(t)
	conn := emptydb.Conn(t, emptydb.New(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := migrate.New(set, migrate.Options{Version: "test", Runner: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Up(ctx, conn, migrate.UpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.FilesExecuted) != n {
		t.Fatalf("%d files executed, want %d", len(res.FilesExecuted), n)
	}
	t.Logf("applied %d files in %v", n, res.Duration.Round(time.Millisecond))

	count := func(sql string) int64 {
		t.Helper()
		var v int64
		if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	appSchemas := `('core', 'billing', 'catalog', 'ops', 'audit')`
	tables := count(`SELECT count(*) FROM pg_tables WHERE schemaname IN ` + appSchemas)
	views := count(`SELECT count(*) FROM pg_views WHERE schemaname IN ` + appSchemas)
	funcs := count(`SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ` + appSchemas)
	triggers := count(`SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal`)
	events := count(`SELECT count(*) FROM audit.events`)
	t.Logf("%d tables, %d views, %d functions, %d triggers, %d audit events", tables, views, funcs, triggers, events)
	if tables < 50 || views < 10 || funcs < 20 || triggers < 20 {
		t.Errorf("schema is too small: %d tables, %d views, %d functions, %d triggers", tables, views, funcs, triggers)
	}

	// Every view can be read, and every function of the common shapes runs.
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', schemaname, viewname) FROM pg_views WHERE schemaname IN `+appSchemas)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		names = append(names, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, v := range names {
		count(`SELECT count(*) FROM ` + v)
	}
	rows, err = conn.Query(ctx, `
SELECT format('%I.%I', n.nspname, p.proname), pg_get_function_identity_arguments(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname IN `+appSchemas+` AND p.prorettype <> 'trigger'::regtype`)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]string{
		"p_status text, p_cap numeric":                  "SELECT count(*) FROM %s(NULL, 1000)",
		"p_older_than interval, p_batch integer":        "SELECT %s('1 second', 50)",
		"p_query text, p_limit integer":                 "SELECT count(*) FROM %s('a', 5)",
		"p_digits text":                                 "SELECT %s('79927398713')::int",
		"p_text text":                                   "SELECT length(%s('Zürich & Sons'))",
		"p_from date, p_to date":                        "SELECT %s('2024-01-01', '2024-02-01')",
		"p_value numeric, p_min numeric, p_max numeric": "SELECT %s(12.3456, 0, 10)::int",
	}
	type fn struct{ name, args string }
	var fns []fn
	for rows.Next() {
		var f fn
		if err := rows.Scan(&f.name, &f.args); err != nil {
			t.Fatal(err)
		}
		fns = append(fns, f)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, f := range fns {
		q, ok := calls[f.args]
		if !ok {
			t.Errorf("no test call for %s(%s)", f.name, f.args)
			continue
		}
		count(fmt.Sprintf(q, f.name))
	}
}
