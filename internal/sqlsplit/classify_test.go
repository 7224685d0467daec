package sqlsplit

import (
	"slices"
	"strings"
	"testing"
)

// stmt returns the only statement of src, which must split into one.
func stmt(t *testing.T, src string) Statement {
	t.Helper()
	stmts := Split(src)
	if len(stmts) != 1 {
		t.Fatalf("Split(%q) gives %d statements, want 1", src, len(stmts))
	}
	return stmts[0]
}

func TestKeywords(t *testing.T) {
	tests := []struct {
		src  string
		n    int
		want []string
	}{
		{"CREATE UNIQUE INDEX CONCURRENTLY i ON t (a);", 4, []string{"CREATE", "UNIQUE", "INDEX", "CONCURRENTLY"}},
		{"create index concurrently", 2, []string{"CREATE", "INDEX"}},
		{"  -- lead\n/* c */ vacuum /* x */ full;", 5, []string{"VACUUM", "FULL"}},
		{`ALTER DATABASE "db" SET x = 1;`, 5, []string{"ALTER", "DATABASE"}},
		{"REINDEX (VERBOSE) TABLE t;", 3, []string{"REINDEX"}},
		{"SELECT 1;", 0, nil},
		{"-- nothing\n;", 3, nil},
		{"drop tablé;", 2, []string{"DROP", "TABLé"}}, // only ASCII is folded, as PostgreSQL does
	}
	for _, tc := range tests {
		if got := stmt(t, tc.src).Keywords(tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("Keywords(%d) of %q = %q, want %q", tc.n, tc.src, got, tc.want)
		}
	}
}

func TestNoTransaction(t *testing.T) {
	tests := []struct {
		src  string
		want string // "" for a statement that may run in a transaction block
	}{
		{"CREATE INDEX CONCURRENTLY i ON t (a);", "CREATE INDEX CONCURRENTLY"},
		{"create unique index concurrently if not exists i on t (a);", "CREATE INDEX CONCURRENTLY"},
		{"CREATE INDEX CONCURRENTLY ON t (a);", "CREATE INDEX CONCURRENTLY"},
		{"CREATE INDEX i ON t (a);", ""},
		{`CREATE INDEX "concurrently" ON t (a);`, ""},
		{"CREATE UNIQUE INDEX i ON t (a);", ""},
		{"DROP INDEX CONCURRENTLY IF EXISTS i;", "DROP INDEX CONCURRENTLY"},
		{"DROP INDEX i;", ""},
		{"REINDEX TABLE CONCURRENTLY t;", "REINDEX CONCURRENTLY"},
		{"REINDEX (VERBOSE) TABLE CONCURRENTLY t;", "REINDEX CONCURRENTLY"},
		{"REINDEX (VERBOSE, CONCURRENTLY) INDEX i;", "REINDEX CONCURRENTLY"},
		{"REINDEX (CONCURRENTLY true) INDEX i;", "REINDEX CONCURRENTLY"},
		{"REINDEX (CONCURRENTLY off) INDEX i;", ""},
		{"REINDEX (concurrently false, verbose) TABLE t;", ""},
		{"REINDEX (TABLESPACE ts) TABLE t;", ""},
		{"REINDEX TABLE t;", ""},
		{"REINDEX INDEX i;", ""},
		{"REINDEX DATABASE;", "REINDEX DATABASE"},
		{"REINDEX DATABASE CONCURRENTLY db;", "REINDEX DATABASE"},
		{"REINDEX SYSTEM db;", "REINDEX SYSTEM"},
		{"REINDEX (VERBOSE) SCHEMA s;", "REINDEX SCHEMA"},
		{"VACUUM;", "VACUUM"},
		{"vacuum (analyze, verbose) t;", "VACUUM"},
		{"ANALYZE t;", ""},
		{"CLUSTER;", "CLUSTER without a table name"},
		{"CLUSTER VERBOSE;", "CLUSTER without a table name"},
		{"CLUSTER (VERBOSE)", "CLUSTER without a table name"},
		{"CLUSTER t USING i;", ""},
		{"CLUSTER (VERBOSE) t;", ""},
		{"CLUSTER i ON t;", ""},
		{"REPACK;", "REPACK without a table name"},
		{"REPACK (VERBOSE)", "REPACK without a table name"},
		{"REPACK (CONCURRENTLY) t;", "REPACK (CONCURRENTLY)"},
		{"REPACK t USING INDEX;", ""},
		{"CREATE DATABASE d;", "CREATE DATABASE"},
		{"DROP DATABASE IF EXISTS d WITH (FORCE);", "DROP DATABASE"},
		{"CREATE TABLESPACE ts LOCATION '/x';", "CREATE TABLESPACE"},
		{"DROP TABLESPACE ts;", "DROP TABLESPACE"},
		{"ALTER TABLESPACE ts RENAME TO t2;", ""},
		{"ALTER SYSTEM SET work_mem = '64MB';", "ALTER SYSTEM"},
		{"ALTER DATABASE d SET TABLESPACE ts;", "ALTER DATABASE ... SET TABLESPACE"},
		{`ALTER DATABASE "my db" SET TABLESPACE ts;`, "ALTER DATABASE ... SET TABLESPACE"},
		{"ALTER DATABASE d SET work_mem = '1MB';", ""},
		{"ALTER DATABASE d SET tablespace = x;", ""},
		{"ALTER DATABASE d RENAME TO e;", ""},
		{"CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p;", "CREATE SUBSCRIPTION"},
		{"CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (create_slot = true);", "CREATE SUBSCRIPTION"},
		{"CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (create_slot = false, enabled = false);", ""},
		{"CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (connect = 'off');", ""},
		{"DROP SUBSCRIPTION s;", "DROP SUBSCRIPTION"},
		{"ALTER SUBSCRIPTION s REFRESH PUBLICATION;", "ALTER SUBSCRIPTION ... REFRESH"},
		{"ALTER SUBSCRIPTION s REFRESH PUBLICATION WITH (copy_data = false);", "ALTER SUBSCRIPTION ... REFRESH"},
		{"ALTER SUBSCRIPTION s SET PUBLICATION p;", "ALTER SUBSCRIPTION ... SET PUBLICATION"},
		{"ALTER SUBSCRIPTION s ADD PUBLICATION p WITH (refresh = true);", "ALTER SUBSCRIPTION ... ADD PUBLICATION"},
		{"ALTER SUBSCRIPTION s DROP PUBLICATION p WITH (refresh = false);", ""},
		{"ALTER SUBSCRIPTION s ENABLE;", ""},
		{"ALTER SUBSCRIPTION s SET (slot_name = NONE);", ""},
		{"ALTER SUBSCRIPTION s SET (failover = true);", "ALTER SUBSCRIPTION ... SET (failover)"},
		{"ALTER SUBSCRIPTION s SET (synchronous_commit = off, two_phase = false);", "ALTER SUBSCRIPTION ... SET (two_phase)"},
		{"ALTER TABLE p DETACH PARTITION c CONCURRENTLY;", "ALTER TABLE ... DETACH PARTITION CONCURRENTLY"},
		{`ALTER TABLE IF EXISTS ONLY s.p DETACH PARTITION s."c 1" CONCURRENTLY;`, "ALTER TABLE ... DETACH PARTITION CONCURRENTLY"},
		{"ALTER TABLE p DETACH PARTITION c;", ""},
		{"ALTER TABLE p DETACH PARTITION c FINALIZE;", ""},
		{"DISCARD ALL;", "DISCARD ALL"},
		{"DISCARD PLANS;", ""},
		{"REFRESH MATERIALIZED VIEW CONCURRENTLY v;", ""},
		{"SELECT 'VACUUM';", ""},
		{"-- VACUUM\nSELECT 1;", ""},
		{"/* leading */ VACUUM;", "VACUUM"},
		{";", ""},
	}
	for _, tc := range tests {
		what, ok := stmt(t, tc.src).NoTransaction()
		if what != tc.want || ok != (tc.want != "") {
			t.Errorf("NoTransaction() of %q = %q, %v; want %q", tc.src, what, ok, tc.want)
		}
	}
}

func TestTransactionControl(t *testing.T) {
	tests := []struct {
		src  string
		want bool
	}{
		{"BEGIN;", true},
		{"begin transaction isolation level serializable;", true},
		{"BEGIN WORK;", true},
		{"START TRANSACTION;", true},
		{"START TRANSACTION READ ONLY;", true},
		{"COMMIT;", true},
		{"COMMIT AND CHAIN;", true},
		{"END;", true},
		{"ROLLBACK;", true},
		{"ROLLBACK WORK;", true},
		{"ABORT;", true},
		{"COMMIT PREPARED 'tx';", true},
		{"ROLLBACK PREPARED 'tx';", true},
		{"PREPARE TRANSACTION 'tx';", true},
		{"PREPARE transaction AS SELECT 1;", false},
		{"PREPARE p AS SELECT 1;", false},
		{"ROLLBACK TO SAVEPOINT s;", false},
		{"ROLLBACK TO s;", false},
		{"ROLLBACK TRANSACTION TO SAVEPOINT s;", false},
		{"SAVEPOINT s;", false},
		{"RELEASE SAVEPOINT s;", false},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;", false},
		{"START;", false},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;", false},
		{"DO $$BEGIN COMMIT; END$$;", false},
		{"SELECT 'BEGIN';", false},
	}
	for _, tc := range tests {
		if got := stmt(t, tc.src).TransactionControl(); got != tc.want {
			t.Errorf("TransactionControl() of %q = %v, want %v", tc.src, got, tc.want)
		}
	}
}

func TestCopyFromStdin(t *testing.T) {
	tests := []struct {
		src  string
		want bool
	}{
		{"COPY t FROM STDIN;", true},
		{"copy t (a, b) from stdin with (format csv);", true},
		{"COPY s.t FROM stdin", true},
		{"COPY t FROM '/tmp/data.csv';", false},
		{"COPY t FROM PROGRAM 'cat x';", false},
		{"COPY t TO STDOUT;", false},
		{"COPY (SELECT a FROM t) TO STDOUT;", false},
		{"SELECT * FROM stdin;", false},
	}
	for _, tc := range tests {
		if got := stmt(t, tc.src).CopyFromStdin(); got != tc.want {
			t.Errorf("CopyFromStdin() of %q = %v, want %v", tc.src, got, tc.want)
		}
	}
}

// TestClassifyHandBuiltStatement checks that a Statement not made by Split,
// with a Start out of range, is handled rather than a panic.
func TestClassifyHandBuiltStatement(t *testing.T) {
	s := Statement{Text: "VACUUM;", Start: 99}
	if _, ok := s.NoTransaction(); ok {
		t.Errorf("NoTransaction() with Start past the end reports a statement")
	}
	if got := s.Keywords(3); got != nil {
		t.Errorf("Keywords() with Start past the end = %q", got)
	}
	s.Start = -5
	if what, ok := s.NoTransaction(); !ok || what != "VACUUM" {
		t.Errorf("NoTransaction() with a negative Start = %q, %v", what, ok)
	}
}

func TestConcurrentIndex(t *testing.T) {
	for _, tc := range []struct {
		sql, index, table string
		ok                bool
	}{
		{"CREATE INDEX CONCURRENTLY IF NOT EXISTS notes_account_id ON app.notes (account_id);", "notes_account_id", "app.notes", true},
		{"create unique index concurrently Ix_A on ONLY t using btree (a);", "ix_a", "t", true},
		{`CREATE INDEX CONCURRENTLY "Mixed ""Case""" ON "App"."My Table" (a);`, `Mixed "Case"`, `"App"."My Table"`, true},
		{"CREATE INDEX CONCURRENTLY ON t (a);", "", "t", true},
		{"-- lead\nCREATE INDEX CONCURRENTLY i ON s.t(a);", "i", "s.t", true},
		{"CREATE INDEX CONCURRENTLY " + strings.Repeat("x", 70) + " ON t (a);", strings.Repeat("x", 63), "t", true},
		{"CREATE INDEX CONCURRENTLY \"" + strings.Repeat("é", 40) + "\" ON t (a);", strings.Repeat("é", 31), "t", true},
		{`CREATE INDEX CONCURRENTLY U&"d\0061t\+000061" ON t (a);`, "", "t", true},
		{"CREATE INDEX i ON t (a);", "", "", false},
		{"CREATE INDEX CONCURRENTLY IF EXISTS i ON t (a);", "", "", false},
		{"DROP INDEX CONCURRENTLY i;", "", "", false},
	} {
		st := Split(tc.sql)[0]
		index, table, ok := st.ConcurrentIndex()
		if index != tc.index || table != tc.table || ok != tc.ok {
			t.Errorf("%q: got (%q, %q, %v), want (%q, %q, %v)", tc.sql, index, table, ok, tc.index, tc.table, tc.ok)
		}
	}
}
