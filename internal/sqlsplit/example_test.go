package sqlsplit_test

import (
	"fmt"

	"github.com/savvi-studio/dbinit/internal/sqlsplit"
)

func ExampleSplit() {
	src := `-- 0001_init.sql
CREATE TABLE notes (body text DEFAULT 'a; b');
CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql
BEGIN ATOMIC
    SELECT upper(t) || '!';
END;
CREATE INDEX CONCURRENTLY notes_body ON notes (body);
`
	for _, s := range sqlsplit.Split(src) {
		if s.Empty {
			continue
		}
		line, col := sqlsplit.Pos(src, s.Offset+s.Start)
		what, _ := s.NoTransaction()
		fmt.Printf("%d:%d %v %q\n", line, col, s.Keywords(2), what)
	}
	// Output:
	// 2:1 [CREATE TABLE] ""
	// 3:1 [CREATE FUNCTION] ""
	// 7:1 [CREATE INDEX] "CREATE INDEX CONCURRENTLY"
}

// A server error position counts characters of the statement sent; this
// maps it back to the file.
func ExampleStatement_ErrorOffset() {
	src := "SELECT 1;\nSELECT 'né' || nope;\n"
	s := sqlsplit.Split(src)[1]
	// The server answers s.SQL() with: column "nope" does not exist, at
	// position 16.
	line, col := sqlsplit.Pos(src, s.ErrorOffset(16))
	fmt.Printf("%d:%d\n", line, col)
	// Output:
	// 2:16
}

func ExampleMetaCommands() {
	src := "\\set ON_ERROR_STOP on\nSELECT 1;\n"
	for _, p := range sqlsplit.MetaCommands(src) {
		fmt.Println(p)
	}
	// Output:
	// 1:1: psql meta-command "\set" is not SQL; dbinit sends files to the server, which does not understand it
}

func ExampleUnterminated() {
	src := "DO $body$\nBEGIN\n  RAISE NOTICE 'hi';\nEND\n$$;\n"
	fmt.Println(sqlsplit.Unterminated(src))
	// Output:
	// 1:4: unterminated dollar-quoted string: no closing $body$ before the end of the file
}
