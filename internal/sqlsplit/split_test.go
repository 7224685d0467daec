package sqlsplit

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// splitCases are inputs with the pieces Split must cut them into. Each is
// also checked against the oracle and the invariants, and seeds FuzzSplit.
var splitCases = []struct {
	name string
	src  string
	want []string
}{
	// Basics.
	{"empty input", "", nil},
	{"no semicolon", "SELECT 1", []string{"SELECT 1"}},
	{"two statements", "SELECT 1;SELECT 2;", []string{"SELECT 1;", "SELECT 2;"}},
	{"trailing newline", "SELECT 1;\n", []string{"SELECT 1;", "\n"}},
	{"comment after semicolon goes with the next statement",
		"SELECT 1; -- one\n/* two */ SELECT 2;",
		[]string{"SELECT 1;", " -- one\n/* two */ SELECT 2;"}},
	{"trailing comment", "SELECT 1; -- done", []string{"SELECT 1;", " -- done"}},
	{"lone semicolons", ";;", []string{";", ";"}},

	// Standard strings.
	{"semicolon in string", "SELECT 'a;b'; SELECT 2;", []string{"SELECT 'a;b';", " SELECT 2;"}},
	{"doubled quote", "SELECT 'it''s; fine'; SELECT 2;", []string{"SELECT 'it''s; fine';", " SELECT 2;"}},
	{"backslash is literal in a standard string", `SELECT 'C:\'; SELECT 2;`,
		[]string{`SELECT 'C:\';`, " SELECT 2;"}},
	{"empty strings", "SELECT '', ''''; SELECT 2;", []string{"SELECT '', '''';", " SELECT 2;"}},

	// Escape strings.
	{"E string with escaped quote", `SELECT E'it\'s; ok'; SELECT 2;`,
		[]string{`SELECT E'it\'s; ok';`, " SELECT 2;"}},
	{"E string ending in an escaped backslash", `SELECT E'a\\'; SELECT 2;`,
		[]string{`SELECT E'a\\';`, " SELECT 2;"}},
	{"lower-case e", `SELECT e'\';'; SELECT 2;`, []string{`SELECT e'\';';`, " SELECT 2;"}},
	{"E string with doubled quote", `SELECT E'a''b;'; SELECT 2;`, []string{`SELECT E'a''b;';`, " SELECT 2;"}},
	{"E at the end of an identifier is not a prefix", `SELECT namE'\'; SELECT ';';`,
		[]string{`SELECT namE'\';`, ` SELECT ';';`}},
	{"continued E string keeps its escapes", "SELECT E'a'\n'\\'; still string';",
		[]string{"SELECT E'a'\n'\\'; still string';"}},
	{"continuation across a -- comment", "SELECT E'a' -- c\n'\\';';",
		[]string{"SELECT E'a' -- c\n'\\';';"}},
	{"no continuation without a newline", `SELECT E'a' '\'; SELECT 2;`,
		[]string{`SELECT E'a' '\';`, " SELECT 2;"}},
	{"no continuation across a block comment", "SELECT E'a' /* c */\n'\\'; SELECT 1;",
		[]string{"SELECT E'a' /* c */\n'\\';", " SELECT 1;"}},
	{"backslash at the end of input in an E string", `SELECT E'\`, []string{`SELECT E'\`}},

	// Other prefixed strings.
	{"bit string", "SELECT B'1''0;'; SELECT 2;", []string{"SELECT B'1''0;';", " SELECT 2;"}},
	{"hex string", "SELECT X'1F;'; SELECT 2;", []string{"SELECT X'1F;';", " SELECT 2;"}},
	{"national string", "SELECT N'a;b'; SELECT 2;", []string{"SELECT N'a;b';", " SELECT 2;"}},
	{"Unicode string has no backslash escapes", `SELECT U&'\'; SELECT 2;`,
		[]string{`SELECT U&'\';`, " SELECT 2;"}},
	{"U& without a quote", `SELECT U&x; SELECT 2;`, []string{`SELECT U&x;`, " SELECT 2;"}},

	// Dollar quotes.
	{"dollar quote", "DO $$ BEGIN PERFORM 1; END $$; SELECT 2;",
		[]string{"DO $$ BEGIN PERFORM 1; END $$;", " SELECT 2;"}},
	{"tagged dollar quote containing $$",
		"CREATE FUNCTION f() RETURNS text AS $fn$ SELECT $$;$$; $fn$ LANGUAGE sql; SELECT 2;",
		[]string{"CREATE FUNCTION f() RETURNS text AS $fn$ SELECT $$;$$; $fn$ LANGUAGE sql;", " SELECT 2;"}},
	{"other tags inside", "SELECT $a$ $b$ ; $ab$; $a$; SELECT 2;",
		[]string{"SELECT $a$ $b$ ; $ab$; $a$;", " SELECT 2;"}},
	{"tags are case-sensitive", "SELECT $A$ ; $a$ ; $A$; SELECT 2;",
		[]string{"SELECT $A$ ; $a$ ; $A$;", " SELECT 2;"}},
	{"tag with digits and underscore", "SELECT $_x1$;$_x1$; SELECT 2;",
		[]string{"SELECT $_x1$;$_x1$;", " SELECT 2;"}},
	{"tag spelled with a non-ASCII letter", "SELECT $é$;$é$; SELECT 2;",
		[]string{"SELECT $é$;$é$;", " SELECT 2;"}},
	{"parameter is not a dollar quote", "PREPARE p AS SELECT $1; SELECT 2;",
		[]string{"PREPARE p AS SELECT $1;", " SELECT 2;"}},
	{"parameter followed by a dollar quote", "SELECT $1$$;$$; SELECT 2;",
		[]string{"SELECT $1$$;$$;", " SELECT 2;"}},
	{"parameter with trailing junk swallows $$", "SELECT $1a$$; SELECT 2;",
		[]string{"SELECT $1a$$;", " SELECT 2;"}},
	{"dollar inside an identifier", "SELECT a$b; SELECT 2;", []string{"SELECT a$b;", " SELECT 2;"}},
	{"$$ inside an identifier", "SELECT foo$$bar; SELECT $$;$$;",
		[]string{"SELECT foo$$bar;", " SELECT $$;$$;"}},
	{"dollar and a name without a closing dollar", "SELECT $abc; SELECT 2;",
		[]string{"SELECT $abc;", " SELECT 2;"}},
	{"$$ after a number", "SELECT 1$$;$$; SELECT 2;", []string{"SELECT 1$$;$$;", " SELECT 2;"}},

	// Comments.
	{"semicolon in a line comment", "SELECT 1 -- ;\n; SELECT 2;", []string{"SELECT 1 -- ;\n;", " SELECT 2;"}},
	{"line comment ends at CR", "SELECT 1 -- c\r; SELECT 2;", []string{"SELECT 1 -- c\r;", " SELECT 2;"}},
	{"nested block comments", "/* a /* b; */ still; */ SELECT 1; SELECT 2;",
		[]string{"/* a /* b; */ still; */ SELECT 1;", " SELECT 2;"}},
	{"deeply nested block comments", "/*/*/**/*/; */ SELECT 1; SELECT 2;",
		[]string{"/*/*/**/*/; */ SELECT 1;", " SELECT 2;"}},
	{"block comment starting inside an operator", "SELECT 1 +/* ; */ 2; SELECT 3;",
		[]string{"SELECT 1 +/* ; */ 2;", " SELECT 3;"}},
	{"line comment starting inside an operator", "SELECT 2 =-- ;\n 2; SELECT 3;",
		[]string{"SELECT 2 =-- ;\n 2;", " SELECT 3;"}},
	{"quotes in comments", "-- it's\nSELECT 1; /* \"x $$ */ SELECT 2;",
		[]string{"-- it's\nSELECT 1;", " /* \"x $$ */ SELECT 2;"}},
	{"comment closers", "/**/ /*/ ; */ /***/ SELECT 1 */ 2; SELECT 3;",
		[]string{"/**/ /*/ ; */ /***/ SELECT 1 */ 2;", " SELECT 3;"}},

	// Quoted identifiers.
	{"quoted identifier", `SELECT "a;b""c"; SELECT 2;`, []string{`SELECT "a;b""c";`, " SELECT 2;"}},
	{"Unicode quoted identifier", `SELECT U&"a;"; SELECT 2;`, []string{`SELECT U&"a;";`, " SELECT 2;"}},
	{"quote characters inside a quoted identifier", `SELECT "it's"; SELECT 2;`,
		[]string{`SELECT "it's";`, " SELECT 2;"}},

	// Parentheses.
	{"semicolons inside parentheses",
		"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); SELECT 2;",
		[]string{"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));", " SELECT 2;"}},
	{"unbalanced closing parenthesis is ignored", "SELECT 1); SELECT 2;", []string{"SELECT 1);", " SELECT 2;"}},
	{"unclosed parenthesis runs to the end", "SELECT (1; SELECT 2;", []string{"SELECT (1; SELECT 2;"}},

	// SQL-standard function bodies.
	{"BEGIN ATOMIC",
		"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT 3;",
		[]string{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;", " SELECT 3;"}},
	{"BEGIN ATOMIC with CASE",
		"CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT CASE x WHEN 1 THEN 2 END;\nEND;\nSELECT 3;",
		[]string{"CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT CASE x WHEN 1 THEN 2 END;\nEND;", "\nSELECT 3;"}},
	{"procedure body, lower case",
		"create or replace procedure p() begin atomic insert into t values (1); end; call p();",
		[]string{"create or replace procedure p() begin atomic insert into t values (1); end;", " call p();"}},
	{"comments inside CREATE FUNCTION do not hide it",
		"CREATE /* x */ FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; SELECT 2;",
		[]string{"CREATE /* x */ FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;", " SELECT 2;"}},
	{"BEGIN outside CREATE FUNCTION is a transaction", "BEGIN; SELECT 1; END;",
		[]string{"BEGIN;", " SELECT 1;", " END;"}},
	{"BEGIN inside parentheses does not count",
		"CREATE FUNCTION f() RETURNS TABLE (begin int) LANGUAGE sql AS 'SELECT 1'; SELECT 2;",
		[]string{"CREATE FUNCTION f() RETURNS TABLE (begin int) LANGUAGE sql AS 'SELECT 1';", " SELECT 2;"}},
	{"CASE outside BEGIN does not count",
		"CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN CASE WHEN true THEN 1 END; SELECT 2;",
		[]string{"CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN CASE WHEN true THEN 1 END;", " SELECT 2;"}},
	{"PL/pgSQL BEGIN is inside the dollar quote",
		"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN NULL; END$$; SELECT 2;",
		[]string{"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN NULL; END$$;", " SELECT 2;"}},
	{"CREATE TABLE is not a routine", "CREATE TABLE t (a int); BEGIN; COMMIT;",
		[]string{"CREATE TABLE t (a int);", " BEGIN;", " COMMIT;"}},
	{"only the statement's own first words count",
		"SELECT 1; CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; SELECT 2;",
		[]string{"SELECT 1;", " CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;", " SELECT 2;"}},

	// Quirks of psql's heuristic, kept so that files split as under psql.
	{"a CASE outside BEGIN ATOMIC is not counted",
		"CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN CASE; SELECT 2;",
		[]string{"CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN CASE;", " SELECT 2;"}},
	{"OR must be followed by REPLACE", "CREATE OR x FUNCTION BEGIN; SELECT 2;",
		[]string{"CREATE OR x FUNCTION BEGIN;", " SELECT 2;"}},
	{"only the first four words are looked at", "CREATE OR REPLACE x FUNCTION BEGIN; SELECT 2;",
		[]string{"CREATE OR REPLACE x FUNCTION BEGIN;", " SELECT 2;"}},
	{`\; restarts the detection`, `CREATE FUNCTION \; BEGIN; SELECT 2;`,
		[]string{`CREATE FUNCTION \; BEGIN;`, " SELECT 2;"}},
	{"END without BEGIN is ignored", "CREATE PROCEDURE p() END END BEGIN ATOMIC; END; SELECT 2;",
		[]string{"CREATE PROCEDURE p() END END BEGIN ATOMIC; END;", " SELECT 2;"}},

	// Numbers, as lexed by PostgreSQL 16 and later.
	{"1e is one token, so no escape string follows", `SELECT 1e'\'; SELECT 2;`,
		[]string{`SELECT 1e'\';`, " SELECT 2;"}},
	{"1e- swallows the dash, so no comment follows", "SELECT 1e--x; SELECT 2;",
		[]string{"SELECT 1e--x;", " SELECT 2;"}},
	{"a number then a comment", "SELECT 1--x;\nSELECT 2;", []string{"SELECT 1--x;\nSELECT 2;"}},
	{"ranges and decimals", "SELECT 1..2, .5e-3, 1_000.5; SELECT 2;",
		[]string{"SELECT 1..2, .5e-3, 1_000.5;", " SELECT 2;"}},

	// Line endings and text.
	{"CRLF", "SELECT 1;\r\nSELECT 2;\r\n", []string{"SELECT 1;", "\r\nSELECT 2;", "\r\n"}},
	{"multibyte text", "SELECT 'é;ü', \"ß;\"; SELECT 'ok';", []string{"SELECT 'é;ü', \"ß;\";", " SELECT 'ok';"}},
	{"invalid UTF-8 is an identifier character", "SELECT \xff\xfe; SELECT 2;",
		[]string{"SELECT \xff\xfe;", " SELECT 2;"}},

	// psql meta-commands.
	{"a meta-command takes its line", "\\set x 'a;\nSELECT 1;", []string{"\\set x 'a;\nSELECT 1;"}},
	{`\; does not end a statement`, `SELECT 1 \; SELECT 2;`, []string{`SELECT 1 \; SELECT 2;`}},

	// COPY FROM STDIN data.
	{"COPY data is not SQL", "COPY t FROM stdin;\n1;'\\N\n\\.\nSELECT 1;",
		[]string{"COPY t FROM stdin;", "\n1;'\\N\n\\.\nSELECT 1;"}},
	{"COPY data with CRLF", "COPY t FROM stdin;\r\n1;2\r\n\\.\r\nSELECT 1;",
		[]string{"COPY t FROM stdin;", "\r\n1;2\r\n\\.\r\nSELECT 1;"}},
	{"COPY data runs to the end without a marker", "COPY t FROM stdin;\n1;2\n",
		[]string{"COPY t FROM stdin;", "\n1;2\n"}},
	{"the marker must be alone on its line", "COPY t FROM stdin;\n\\.;\n \\.\n\\.\nSELECT 1;",
		[]string{"COPY t FROM stdin;", "\n\\.;\n \\.\n\\.\nSELECT 1;"}},
	{"the marker line right after COPY", "COPY t FROM stdin; \n\\.\nSELECT 1; SELECT 2;",
		[]string{"COPY t FROM stdin;", " \n\\.\nSELECT 1;", " SELECT 2;"}},
	{"COPY at the end of the input", "COPY t FROM stdin;", []string{"COPY t FROM stdin;"}},
	{"COPY TO STDOUT has no data", "COPY t TO stdout;\n1;2", []string{"COPY t TO stdout;", "\n1;", "2"}},

	// Unterminated constructs run to the end.
	{"unterminated string", "SELECT 'abc; SELECT 2;", []string{"SELECT 'abc; SELECT 2;"}},
	{"unterminated dollar quote", "SELECT 1; DO $$ abc; SELECT 2;", []string{"SELECT 1;", " DO $$ abc; SELECT 2;"}},
	{"unterminated comment", "SELECT 1; /* abc; SELECT 2;", []string{"SELECT 1;", " /* abc; SELECT 2;"}},
}

func TestSplit(t *testing.T) {
	for _, tc := range splitCases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkSplit(t, tc.src)
			if texts := textsOf(got); !slices.Equal(texts, tc.want) {
				t.Errorf("Split(%q) pieces:\n got %q\nwant %q", tc.src, texts, tc.want)
			}
		})
	}
}

func textsOf(stmts []Statement) []string {
	var texts []string
	for _, s := range stmts {
		texts = append(texts, s.Text)
	}
	return texts
}

func TestSplitFields(t *testing.T) {
	src := "\n\n  -- lead\n  SELECT 1;\n/* only a comment */;\r\nSELECT\t2; \n  \n"
	want := []Statement{
		{Text: "\n\n  -- lead\n  SELECT 1;", Offset: 0, Line: 1, Start: 14},
		{Text: "\n/* only a comment */;", Offset: 23, Line: 4, Start: 22, Empty: true},
		{Text: "\r\nSELECT\t2;", Offset: 45, Line: 5, Start: 2},
		{Text: " \n  \n", Offset: 56, Line: 6, Start: 5, Empty: true},
	}
	got := checkSplit(t, src)
	if !slices.Equal(got, want) {
		t.Fatalf("Split(%q):\n got %+v\nwant %+v", src, got, want)
	}
	if sql := got[0].SQL(); sql != "SELECT 1;" {
		t.Errorf("SQL() = %q, want %q", sql, "SELECT 1;")
	}
	if sql := got[1].SQL(); sql != "" {
		t.Errorf("SQL() of an empty statement = %q, want \"\"", sql)
	}
}

func TestSplitManyLines(t *testing.T) {
	var b strings.Builder
	for i := 1; i <= 500; i++ {
		fmt.Fprintf(&b, "-- line %d\n", i)
	}
	b.WriteString("SELECT 'é' + x;\n")
	src := b.String()
	stmts := checkSplit(t, src)
	if len(stmts) != 2 {
		t.Fatalf("got %d statements, want 2", len(stmts))
	}
	s := stmts[0]
	if s.Line != 1 {
		t.Errorf("Line = %d, want 1", s.Line)
	}
	if line, col := Pos(src, s.Offset+s.Start); line != 501 || col != 1 {
		t.Errorf("first token at %d:%d, want 501:1", line, col)
	}
	// The server reports "x" at character 14 of "SELECT 'é' + x;"; it is
	// byte 15 because é takes two bytes, but an editor's column 14.
	off := s.ErrorOffset(14)
	if src[off] != 'x' {
		t.Fatalf("ErrorOffset(14) = %d, at %q, want the x", off, src[off:])
	}
	if line, col := Pos(src, off); line != 501 || col != 14 {
		t.Errorf("error at %d:%d, want 501:14", line, col)
	}
	if got := stmts[1]; got.Line != 501 || !got.Empty {
		t.Errorf("trailing piece = %+v, want an Empty statement on line 501", got)
	}
}

// TestSplitAllocations guards the promise that Split allocates one slice.
func TestSplitAllocations(t *testing.T) {
	src := strings.Repeat("INSERT INTO t VALUES ('a;b', $$c;d$$); -- e;f\n", 100)
	if n := testing.AllocsPerRun(10, func() { Split(src) }); n != 1 {
		t.Errorf("Split allocates %v times, want 1", n)
	}
}

// checkSplit splits src, checks every property that must hold for any
// input, compares the result with the oracle, and returns it.
func checkSplit(t testing.TB, src string) []Statement {
	t.Helper()
	stmts := Split(src)

	// The pieces cover the input exactly, in order.
	var whole strings.Builder
	off := 0
	for i, s := range stmts {
		where := fmt.Sprintf("statement %d of Split(%q)", i, src)
		if s.Offset != off {
			t.Fatalf("%s: Offset = %d, want %d", where, s.Offset, off)
		}
		if s.Text == "" {
			t.Fatalf("%s: empty Text", where)
		}
		if want := 1 + strings.Count(src[:off], "\n"); s.Line != want {
			t.Fatalf("%s: Line = %d, want %d", where, s.Line, want)
		}
		if line, _ := Pos(src, s.Offset); line != s.Line {
			t.Fatalf("%s: Pos gives line %d, Line is %d", where, line, s.Line)
		}
		if s.Empty != (s.Start == len(s.Text)) || s.Start < 0 || s.Start > len(s.Text) {
			t.Fatalf("%s: Start = %d, Empty = %v, len(Text) = %d", where, s.Start, s.Empty, len(s.Text))
		}
		if i < len(stmts)-1 && !strings.HasSuffix(s.Text, ";") {
			t.Fatalf("%s: does not end with ';' but is not the last: %q", where, s.Text)
		}
		whole.WriteString(s.Text)
		off += len(s.Text)
	}
	if whole.String() != src {
		t.Fatalf("Split(%q): pieces concatenate to %q", src, whole.String())
	}

	// A piece starts in the lexer's initial state, so on its own it must
	// split the same way: as one statement, unless the ";" that ends it
	// was not really at the top level. (Not so after COPY FROM STDIN,
	// whose data only makes sense after it.)
	for i, s := range stmts[:max(0, len(stmts)-1)] {
		if i > 0 && stmts[i-1].CopyFromStdin() {
			continue
		}
		alone := Split(s.Text)
		if len(alone) != 1 || alone[0].Start != s.Start || alone[0].Empty != s.Empty {
			t.Fatalf("statement %d of Split(%q) split on its own gives %+v", i, src, alone)
		}
	}
	if len(stmts) > 1 && !stmts[0].CopyFromStdin() {
		cut := len(stmts[0].Text)
		rest := Split(src[cut:])
		if !slices.Equal(textsOf(rest), textsOf(stmts[1:])) {
			t.Fatalf("Split(%q) after the first cut gives %q, want %q", src, textsOf(rest), textsOf(stmts[1:]))
		}
	}

	checkOracle(t, src, stmts)

	// Nothing else may panic or misbehave on any input.
	for _, s := range stmts {
		s.Keywords(8)
		s.NoTransaction()
		s.TransactionControl()
		s.CopyFromStdin()
		if o := s.ErrorOffset(1 << 20); o < s.Offset || o > s.Offset+len(s.Text) {
			t.Fatalf("ErrorOffset out of the statement: %d not in [%d, %d]", o, s.Offset, s.Offset+len(s.Text))
		}
	}
	return stmts
}

// oracleMaxLen bounds the inputs given to the slow oracle.
const oracleMaxLen = 1 << 14

// checkOracle compares Split, Unterminated and MetaCommands with the flex
// transliteration in oracle_test.go.
func checkOracle(t testing.TB, src string, stmts []Statement) {
	t.Helper()
	if len(src) > oracleMaxLen {
		return
	}
	r := runOracle(src)

	var got, want []string
	for _, s := range stmts {
		first := s.Offset + s.Start
		if s.Empty {
			first = -1
		}
		got = append(got, fmt.Sprintf("end %d first %d", s.Offset+len(s.Text), first))
	}
	for _, p := range r.pieces {
		want = append(want, fmt.Sprintf("end %d first %d", p.end, p.first))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Split(%q) disagrees with the oracle:\n got %q\nwant %q", src, got, want)
	}

	u := Unterminated(src)
	switch kind := r.unterminated(); {
	case kind == tokEOF && u != nil:
		t.Fatalf("Unterminated(%q) = %+v, the oracle finds nothing open", src, u)
	case kind != tokEOF && u == nil:
		t.Fatalf("Unterminated(%q) = nil, the oracle ends in state %d opened at %d", src, r.open, r.litStart)
	case kind != tokEOF && (u.Offset != r.litStart || !strings.Contains(u.Msg, kindWord[kind])):
		t.Fatalf("Unterminated(%q) = %+v, the oracle ends in state %d opened at %d", src, u, r.open, r.litStart)
	}

	var metas []int
	for _, p := range MetaCommands(src) {
		metas = append(metas, p.Offset)
	}
	if !slices.Equal(metas, r.metas) {
		t.Fatalf("MetaCommands(%q) at %v, the oracle finds %v", src, metas, r.metas)
	}
}

// kindWord is a word the message of Unterminated has for each kind.
var kindWord = map[tokenKind]string{
	tokString:       "string",
	tokQuotedIdent:  "quoted identifier",
	tokDollarString: "dollar-quoted",
	tokBlockComment: "/* comment",
}

// FuzzAnalyze: Analyze finds exactly what Split, Unterminated and
// MetaCommands find, one pass instead of three.
func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{"", "SELECT 1;", "SELECT 'x;\n\\i a.sql\nSELECT 2", "/* open", "COPY t FROM STDIN;\na\n\\.\nSELECT 1;", "\\set x 1\nSELECT $$a;$$;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		a := Analyze(src)
		if !reflect.DeepEqual(a.Statements, Split(src)) && !(len(a.Statements) == 0 && len(Split(src)) == 0) {
			t.Fatalf("statements differ for %q", src)
		}
		if !reflect.DeepEqual(a.Unterminated, Unterminated(src)) {
			t.Fatalf("unterminated differs for %q: %v, %v", src, a.Unterminated, Unterminated(src))
		}
		if !reflect.DeepEqual(a.MetaCommands, MetaCommands(src)) && !(len(a.MetaCommands) == 0 && len(MetaCommands(src)) == 0) {
			t.Fatalf("meta-commands differ for %q", src)
		}
	})
}
