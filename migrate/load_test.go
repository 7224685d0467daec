package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func mapFS(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, text := range files {
		m[name] = &fstest.MapFile{Data: []byte(text)}
	}
	return m
}

func TestLoadOrdersNumerically(t *testing.T) {
	set, err := Load(mapFS(map[string]string{
		"10_ten.sql":        "SELECT 10;",
		"9_nine.sql":        "SELECT 9;",
		"100_hundred.sql":   "SELECT 100;",
		"009_nine_down.sql": "SELECT -9;",
		"README.md":         "not a migration",
		"notes.json":        "{}",
	}), "db")
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, m := range set.Migrations {
		got = append(got, m.Version)
	}
	if want := []int64{9, 10, 100}; !equalInts(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	if set.Migrations[0].Down == nil || set.Migrations[0].Down.File != "009_nine_down.sql" {
		t.Fatalf("9's down file not paired: %+v", set.Migrations[0].Down)
	}
	if set.Migrations[1].Down != nil {
		t.Fatal("10 has no down file")
	}
	if p := set.Migrations[0].Up.Path; p != "db/9_nine.sql" {
		t.Fatalf("path = %q", p)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLoadRejects checks that each bad folder is refused with a message
// naming the file (and line where there is one) before anything runs.
func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error, each must appear
	}{
		{"duplicate version", map[string]string{"007_a.sql": "SELECT 1;", "7_b.sql": "SELECT 2;"},
			[]string{"db/7_b.sql", "007_a.sql", "007 and 7 are the same"}},
		{"down without up", map[string]string{"001_a.sql": "SELECT 1;", "002_b_down.sql": "SELECT 2;"},
			[]string{"db/002_b_down.sql: down file without an up file"}},
		{"down name mismatch", map[string]string{"001_a.sql": "SELECT 1;", "001_b_down.sql": "SELECT 2;"},
			[]string{"db/001_b_down.sql", "expected 001_a_down.sql"}},
		{"bad name", map[string]string{"create_users.sql": "SELECT 1;"},
			[]string{"db/create_users.sql: name does not match"}},
		{"upper-case extension", map[string]string{"001_a.SQL": "SELECT 1;"},
			[]string{"db/001_a.SQL: name does not match"}},
		{"space in name", map[string]string{"001_add users.sql": "SELECT 1;"},
			[]string{"db/001_add users.sql"}},
		{"version zero", map[string]string{"0_init.sql": "SELECT 1;"},
			[]string{"db/0_init.sql", "version 0 is reserved"}},
		{"invalid utf-8", map[string]string{"001_a.sql": "SELECT 1;\nSELECT '\xff';"},
			[]string{"db/001_a.sql:2:9: is not valid UTF-8"}},
		{"nul byte", map[string]string{"001_a.sql": "SELECT 1;\n\x00"}, []string{"db/001_a.sql:2:1: contains a NUL byte"}},
		{"meta-command", map[string]string{"001_a.sql": "SELECT 1;\n\\i other.sql\n"},
			[]string{"db/001_a.sql:2:1", `\i`}},
		{"set meta-command", map[string]string{"001_a.sql": "\\set ON_ERROR_STOP on\nSELECT 1;"},
			[]string{"db/001_a.sql:1:1", `\set`}},
		{"concurrently in transaction", map[string]string{"001_a.sql": "CREATE TABLE t (a int);\n  CREATE INDEX CONCURRENTLY t_a ON t (a);"},
			[]string{"db/001_a.sql:2:3", "CREATE INDEX CONCURRENTLY", "-- dbinit:no-transaction"}},
		{"vacuum in transaction", map[string]string{"001_a.sql": "VACUUM ANALYZE;"},
			[]string{"db/001_a.sql:1:1", "VACUUM"}},
		{"transaction control", map[string]string{"001_a.sql": "BEGIN;\nCREATE TABLE t (a int);\nCOMMIT;"},
			[]string{"db/001_a.sql:1:1", "db/001_a.sql:3:1", "transaction control"}},
		{"copy from stdin", map[string]string{"001_a.sql": "COPY t FROM stdin;\n1\n\\.\n"},
			[]string{"db/001_a.sql:1:1", "COPY ... FROM STDIN"}},
		{"unterminated quote", map[string]string{"001_a.sql": "SELECT 1;\nSELECT 'oops;\n"},
			[]string{"db/001_a.sql:2:8"}},
		{"unknown directive", map[string]string{"001_a.sql": "-- dbinit:no-transactions\nSELECT 1;"},
			[]string{"db/001_a.sql:1:1", "unknown directive dbinit:no-transactions"}},
		{"late directive", map[string]string{"001_a.sql": "SELECT 1;\n-- dbinit:no-transaction\nSELECT 2;"},
			[]string{"db/001_a.sql:2:1", "only count in the comment lines at the top"}},
		{"every problem at once", map[string]string{"001_a.sql": "SELECT '\xff';", "1_b.sql": "SELECT 1;", "x.sql": "SELECT 1;"},
			[]string{"db/001_a.sql", "db/1_b.sql", "db/x.sql", "3 problems"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(mapFS(tt.files), "db")
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want *LoadError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%s", w, err)
				}
			}
		})
	}
}

func TestLoadAccepts(t *testing.T) {
	set, err := Load(mapFS(map[string]string{
		"001_bom.sql":          "\uFEFFCREATE TABLE t (a int);",
		"002_comment.sql":      "-- reserved: nothing to do yet\n",
		"003_concurrently.sql": "-- dbinit:no-transaction\n-- why: big table\n\nCREATE INDEX CONCURRENTLY t_a ON t (a);\nVACUUM t;",
		"004_savepoint.sql":    "SAVEPOINT a;\nSELECT 1;\nRELEASE SAVEPOINT a;",
		"005_backslash.sql":    "SELECT E'a\\\\b', $$ \\i $$; -- \\i in a comment\n",
	}), "db")
	if err != nil {
		t.Fatal(err)
	}
	bom := set.Find(1).Up
	if strings.HasPrefix(bom.SQL, "\uFEFF") {
		t.Error("BOM not stripped")
	}
	if bom.BytesChecksum != sha256Hex("\uFEFFCREATE TABLE t (a int);") {
		t.Error("the bytes checksum must be of the file's bytes, BOM included")
	}
	if bom.Checksum != sha256Hex("CREATE TABLE t (a int);") {
		t.Error("the checksum must ignore the BOM")
	}
	if n := len(set.Find(2).Up.Statements); n != 0 {
		t.Errorf("comment-only file has %d statements", n)
	}
	cc := set.Find(3).Up
	if !cc.NoTransaction || len(cc.Statements) != 2 {
		t.Errorf("no-transaction file: NoTransaction=%v statements=%d", cc.NoTransaction, len(cc.Statements))
	}
}

// TestEmptyFilesAreNoOps: empty and comment-only files load, with no
// statements; projects keep them to hold a version number.
func TestEmptyFilesAreNoOps(t *testing.T) {
	set, err := Load(mapFS(map[string]string{"001_a.sql": "", "002_b.sql": " \n\t\r\n", "003_c.sql": "-- nothing here yet\n"}), "db")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range set.Migrations {
		if len(m.Up.Statements) != 0 {
			t.Errorf("%s has %d statements", m.Up.Path, len(m.Up.Statements))
		}
	}
}

// TestChecksumIgnoresLineEndings: a file checked out with CRLF, or saved
// with a byte-order mark, is the same file; a row recorded with the bytes
// checksum of an earlier dbinit still matches it.
func TestChecksumIgnoresLineEndings(t *testing.T) {
	lf := "CREATE TABLE t (a int);\nSELECT 1;\n"
	crlf := strings.ReplaceAll(lf, "\n", "\r\n")
	a, _ := Load(mapFS(map[string]string{"001_a.sql": lf}), "db")
	b, _ := Load(mapFS(map[string]string{"001_a.sql": "\uFEFF" + crlf}), "db")
	if a.Find(1).Up.Checksum != b.Find(1).Up.Checksum || a.Hash() != b.Hash() {
		t.Fatal("line endings or a BOM change the checksum")
	}
	cr, _ := Load(mapFS(map[string]string{"001_a.sql": strings.ReplaceAll(lf, "\n", "\r")}), "db") // classic Mac
	if cr.Find(1).Up.Checksum != a.Find(1).Up.Checksum || a.Find(1).Up.Checksum != sha256Hex(lf) {
		t.Fatal("CR line endings change the checksum, or an LF file's text checksum is not its bytes'")
	}
	legacy := Applied{Version: 1, Checksum: sha256Hex(lf), ChecksumKind: ChecksumBytes, State: StateApplied}
	if !b.Find(1).Up.Matches(legacy) || !a.Find(1).Up.Matches(legacy) {
		t.Fatal("a row of an earlier dbinit no longer matches its file")
	}
	edited, _ := Load(mapFS(map[string]string{"001_a.sql": lf + "SELECT 2;\n"}), "db")
	if edited.Find(1).Up.Matches(legacy) || edited.Find(1).Up.Matches(Applied{Checksum: a.Find(1).Up.Checksum, ChecksumKind: ChecksumText}) {
		t.Fatal("an edited file matches")
	}
	if a.LegacyHashUpTo(1) == a.HashUpTo(1) {
		t.Fatal("the legacy hash is the current one")
	}
}

func TestHashChangesWithContent(t *testing.T) {
	a, _ := Load(mapFS(map[string]string{"001_a.sql": "SELECT 1;"}), "db")
	b, _ := Load(mapFS(map[string]string{"001_a.sql": "SELECT 2;"}), "db")
	c, _ := Load(mapFS(map[string]string{"001_b.sql": "SELECT 1;"}), "db")
	d, _ := Load(mapFS(map[string]string{"1_a.sql": "SELECT 1;", "001_a_down.sql": "SELECT 0;"}), "other")
	if a.Hash() == b.Hash() || a.Hash() == c.Hash() {
		t.Error("hash must change with bytes and names")
	}
	if a.Hash() != d.Hash() {
		t.Error("hash must not depend on padding, down files or the folder's name")
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestLoadDirSymlinks: links that stay inside the folder are read (the
// layout of a Kubernetes ConfigMap mount); a link leading out of it is
// refused, and what it points at is never read or shown.
func TestLoadDirSymlinks(t *testing.T) {
	t.Parallel()
	// A ConfigMap mount: ..2026_11_29_05_09_45.123/ holds the files,
	// ..data links to it, and each visible name links through ..data.
	dir := t.TempDir()
	stamp := "..2026_11_29_05_09_45.123"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, stamp), 0o755))
	must(os.WriteFile(filepath.Join(dir, stamp, "001_a.sql"), []byte("CREATE TABLE a (id int);"), 0o644))
	must(os.WriteFile(filepath.Join(dir, stamp, "002_b.sql"), []byte("CREATE TABLE b (id int);"), 0o644))
	must(os.Symlink(stamp, filepath.Join(dir, "..data")))
	must(os.Symlink("..data/001_a.sql", filepath.Join(dir, "001_a.sql")))
	must(os.Symlink("..data/002_b.sql", filepath.Join(dir, "002_b.sql")))
	set, err := LoadDir(dir)
	if err != nil || len(set.Migrations) != 2 {
		t.Fatalf("ConfigMap layout: %v %v", set, err)
	}

	// A link out of the folder, to a secret.
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "shadow")
	must(os.WriteFile(secret, []byte("root:$6$very-secret-hash:19000:0:99999:7:::\n"), 0o600))
	must(os.Symlink(secret, filepath.Join(dir, "003_c.sql")))
	must(os.Symlink("../"+filepath.Base(secretDir)+"/shadow", filepath.Join(dir, "004_d.sql")))
	_, err = LoadDir(dir)
	var le *LoadError
	if !errors.As(err, &le) || len(le.Problems) != 2 {
		t.Fatalf("err = %v, want two problems", err)
	}
	for _, p := range le.Problems {
		if !strings.Contains(p.Msg, "outside the migration folder") {
			t.Errorf("problem = %v", p)
		}
	}
	if strings.Contains(err.Error(), "very-secret-hash") || strings.Contains(err.Error(), "root:") {
		t.Fatalf("the link's target was read: %v", err)
	}
}
