package sqlsplit

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSplit checks, on any bytes, that Split covers its input exactly, that
// its offsets and lines are right, that no cut lies inside a literal,
// quoted identifier, dollar quote or comment (each piece splits the same on
// its own, and the flex oracle agrees on every cut), and that nothing
// panics. Failures found are kept in testdata/fuzz/FuzzSplit.
func FuzzSplit(f *testing.F) {
	for _, tc := range splitCases {
		f.Add(tc.src)
	}
	for _, s := range []string{
		"SELECT E'\\\\'';';",
		"$a$$a$;$$;$$",
		"/*/**/*/;--\r;",
		"U&'x'\n'y';U&\"z\";",
		"0x1F;0b2;1e+;1_;.5e;$1_2;",
		"CREATE FUNCTION f() BEGIN ATOMIC CASE END; END; END;",
		"\\copy t from stdin\n1\t2\n\\.\n",
		"'\n'\n'",
	} {
		f.Add(s)
	}
	f.Add(strings.Join(fragments, ""))
	golden, err := filepath.Glob(filepath.Join("testdata", "*", "input.sql"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range golden {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(src))
	}
	f.Fuzz(func(t *testing.T, src string) {
		checkSplit(t, src)
		checkPos(t, src)
	})
}

// checkPos checks Pos and RuneToByte at every character of src against a
// count made by ranging over the string, which decodes as they must: one
// character per invalid byte.
func checkPos(t *testing.T, src string) {
	// Pos is linear, so checking every offset is quadratic: long inputs
	// are checked at about 500 offsets.
	step := max(1, len(src)/500)
	line, col, runes := 1, 1, 0
	check := func(off int) {
		if off%step != 0 && off != len(src) {
			return
		}
		if gl, gc := Pos(src, off); gl != line || gc != col {
			t.Fatalf("Pos(%q, %d) = %d:%d, want %d:%d", src, off, gl, gc, line, col)
		}
		if b := RuneToByte(src, runes); b != off {
			t.Fatalf("RuneToByte(%q, %d) = %d, want %d", src, runes, b, off)
		}
	}
	for off, r := range src {
		check(off)
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		runes++
	}
	check(len(src))
}

// fragments are the pieces TestSplitRandom assembles inputs from: every
// token start, end and escape that matters to the lexer, so that random
// sequences of them hit the corner cases far more often than random bytes.
var fragments = []string{
	"'", "''", "E'", "e'", "B'", "X'", "N'", "U&'", "U&\"", "U&", "\"", `\`, `\'`, `\\`,
	"$$", "$a$", "$A$", "$_1$", "$é$", "$1", "$a", "a$b", "$",
	"/*", "*/", "/**/", "--", "-", "+", "*", "/", "=",
	"\n", "\r", "\r\n", " ", "\t", "\f",
	";", "(", ")", ".", "..", ":", "::",
	"1", "1e", "1e-", "0x", "1_", ".5", "é", "\xff",
	"x", "CREATE ", "OR ", "REPLACE ", "FUNCTION ", "PROCEDURE ", "BEGIN ", "CASE ", "END ", "ATOMIC ",
	"COPY t FROM STDIN;", "\\.\n", "\\.\r\n", "\\set x", "\\;", "\\:",
}

// TestSplitRandom compares Split with the oracle on inputs assembled from
// fragments. The seed is fixed, so a failure reproduces.
func TestSplitRandom(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 200
	}
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	prefixes := []string{"", "CREATE FUNCTION ", "CREATE OR REPLACE PROCEDURE ", "COPY t FROM STDIN"}
	for range n {
		b.Reset()
		b.WriteString(prefixes[r.IntN(len(prefixes))])
		for range 1 + r.IntN(24) {
			b.WriteString(fragments[r.IntN(len(fragments))])
		}
		checkSplit(t, b.String())
	}
}
