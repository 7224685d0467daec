package sqlsplit

import (
	"strings"
	"testing"
)

func TestMetaCommands(t *testing.T) {
	src := "\\set ON_ERROR_STOP on\n" +
		"SELECT '\\i not.sql', $$\\c$$, E'\\\\', \"\\x\"; -- \\echo\n" +
		"/* \\gexec */\n" +
		"  \\i other.sql\r\n" +
		"SELECT 1 \\; SELECT 2;\n" +
		"SELECT 'é' \\gexec\n" +
		"\\copy t from 'x' -- \\not-another\n" +
		"\\"
	type want struct {
		line, col int
		name      string
	}
	wants := []want{
		{1, 1, `\set`},
		{4, 3, `\i`},
		{5, 10, `\;`},
		{6, 12, `\gexec`},
		{7, 1, `\copy`},
		{8, 1, `\`},
	}
	got := MetaCommands(src)
	if len(got) != len(wants) {
		t.Fatalf("MetaCommands found %d, want %d: %v", len(got), len(wants), got)
	}
	for i, w := range wants {
		p := got[i]
		if p.Line != w.line || p.Col != w.col {
			t.Errorf("meta-command %d at %d:%d, want %d:%d", i, p.Line, p.Col, w.line, w.col)
		}
		if line, col := Pos(src, p.Offset); line != p.Line || col != p.Col {
			t.Errorf("meta-command %d: Offset %d is at %d:%d, not %d:%d", i, p.Offset, line, col, p.Line, p.Col)
		}
		if src[p.Offset] != '\\' {
			t.Errorf("meta-command %d: Offset %d is not at a backslash", i, p.Offset)
		}
		wantMsg := `psql meta-command "` + w.name + `" is not SQL; dbinit sends files to the server, which does not understand it`
		if p.Msg != wantMsg {
			t.Errorf("meta-command %d: Msg = %q, want %q", i, p.Msg, wantMsg)
		}
	}
	if got := MetaCommands("SELECT E'\\n', '\\';"); got != nil {
		t.Errorf("MetaCommands found backslashes inside strings: %v", got)
	}
	if got := MetaCommands("COPY t FROM STDIN;\n1\t\\N\n\\.\n"); got != nil {
		t.Errorf("MetaCommands found backslashes in COPY data: %v", got)
	}
}

func TestMetaCommandNameIsCutShort(t *testing.T) {
	p := MetaCommands(`\` + strings.Repeat("é", 40) + "\xff")
	if len(p) != 1 {
		t.Fatalf("got %d problems, want 1", len(p))
	}
	name := strings.TrimPrefix(p[0].Msg, `psql meta-command "`)
	name = name[:strings.IndexByte(name, '"')]
	if want := `\` + strings.Repeat("é", 15) + "…"; name != want {
		t.Errorf("name = %q, want %q", name, want)
	}
}

func TestUnterminated(t *testing.T) {
	tests := []struct {
		src       string
		line, col int
		msg       string // a part of the message
	}{
		{"SELECT 1;\nSELECT 'abc;\n", 2, 8, "unterminated quoted string"},
		{"SELECT 'a''", 1, 8, "unterminated quoted string"},
		{"SELECT E'abc\\';", 1, 8, "unterminated escape string"},
		{"SELECT 'x'\n'y", 1, 8, "unterminated quoted string"}, // one literal, continued
		{"SELECT 'x' 'y", 1, 12, "unterminated quoted string"}, // two literals
		{"SELECT B'01", 1, 8, "unterminated bit string literal"},
		{"SELECT B'01''", 1, 13, "unterminated quoted string"}, // B'01' then a new literal
		{"SELECT X'1F", 1, 8, "unterminated hexadecimal string literal"},
		{"SELECT N'x", 1, 9, "unterminated quoted string"},
		{"SELECT U&'x", 1, 8, "unterminated Unicode escape string"},
		{"SELECT \"abc", 1, 8, "unterminated quoted identifier"},
		{"SELECT U&\"abc", 1, 8, "unterminated quoted identifier"},
		{"SELECT 'é';\nDO $body$ BEGIN $$ END $$", 2, 4, "no closing $body$ before the end of the file"},
		{"SELECT 'é', $$", 1, 13, "no closing $$"},
		{"/* a */ /* b /* c */", 1, 9, "unterminated /* comment"},
		{"/* a /* b /* c */", 1, 1, "and 1 inner /* is still open"},
		{"/* a /* b /* c", 1, 1, "and 2 inner /* are still open"},
	}
	for _, tc := range tests {
		p := Unterminated(tc.src)
		if p == nil {
			t.Errorf("Unterminated(%q) = nil", tc.src)
			continue
		}
		if p.Line != tc.line || p.Col != tc.col || !strings.Contains(p.Msg, tc.msg) {
			t.Errorf("Unterminated(%q) = %d:%d %q, want %d:%d and %q", tc.src, p.Line, p.Col, p.Msg, tc.line, tc.col, tc.msg)
		}
		if line, col := Pos(tc.src, p.Offset); line != p.Line || col != p.Col {
			t.Errorf("Unterminated(%q): Offset %d is at %d:%d", tc.src, p.Offset, line, col)
		}
	}
	for _, src := range []string{
		"", "SELECT 1", "SELECT 'a''b';", "SELECT $$x$$; -- 'open", "/* a /* b */ */", `SELECT E'\\'`,
		"SELECT 1; \\echo 'not SQL, so not a string",
		"COPY t FROM STDIN;\nit's data\n\\.\n",
	} {
		if p := Unterminated(src); p != nil {
			t.Errorf("Unterminated(%q) = %v, want nil", src, p)
		}
	}
}

func TestProblemString(t *testing.T) {
	p := Problem{Offset: 10, Line: 2, Col: 3, Msg: "bad"}
	if got := p.String(); got != "2:3: bad" {
		t.Errorf("String() = %q", got)
	}
}

func TestPos(t *testing.T) {
	src := "ab\r\ncé\n\nx\xffy"
	tests := []struct {
		off       int
		line, col int
	}{
		{-1, 1, 1},
		{0, 1, 1},
		{2, 1, 3}, // the \r is a character of line 1
		{4, 2, 1},
		{5, 2, 2}, // é
		{6, 2, 2}, // inside é: its column
		{7, 2, 3}, // the \n ending line 2
		{8, 3, 1},
		{9, 4, 1},
		{10, 4, 2}, // an invalid byte counts as one character
		{11, 4, 3},
		{12, 4, 4}, // the end
		{99, 4, 4},
	}
	for _, tc := range tests {
		if line, col := Pos(src, tc.off); line != tc.line || col != tc.col {
			t.Errorf("Pos(%q, %d) = %d:%d, want %d:%d", src, tc.off, line, col, tc.line, tc.col)
		}
	}
}

func TestRuneToByte(t *testing.T) {
	src := "aé€😀\xffb"
	tests := []struct{ runes, want int }{
		{-1, 0}, {0, 0}, {1, 1}, {2, 3}, {3, 6}, {4, 10}, {5, 11}, {6, 12}, {100, 12},
	}
	for _, tc := range tests {
		if got := RuneToByte(src, tc.runes); got != tc.want {
			t.Errorf("RuneToByte(%q, %d) = %d, want %d", src, tc.runes, got, tc.want)
		}
	}
}

func TestErrorOffset(t *testing.T) {
	// PostgreSQL would report: ERROR: column "nope" does not exist,
	// position 19, counting characters of the statement it was sent.
	src := "SELECT 1;\n-- l'été\nSELECT 'ça', nope;"
	s := Split(src)[1]
	off := s.ErrorOffset(14)
	if !strings.HasPrefix(src[off:], "nope") {
		t.Fatalf("ErrorOffset(14) = %d, at %q", off, src[off:])
	}
	if line, col := Pos(src, off); line != 3 || col != 14 {
		t.Errorf("error at %d:%d, want 3:14", line, col)
	}
	if off := s.ErrorOffset(0); off != s.Offset+s.Start {
		t.Errorf("ErrorOffset(0) = %d, want the statement start %d", off, s.Offset+s.Start)
	}
}
