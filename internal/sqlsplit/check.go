package sqlsplit

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Problem is something in the input that makes it unfit to run.
type Problem struct {
	Offset int    // byte offset in the whole input
	Line   int    // 1-based line of Offset
	Col    int    // 1-based column of Offset, in characters
	Msg    string // what is wrong, for a human
}

// String formats the problem as LINE:COL: MSG; callers prefix the file name.
func (p Problem) String() string {
	return fmt.Sprintf("%d:%d: %s", p.Line, p.Col, p.Msg)
}

// MetaCommands reports psql backslash meta-commands (\i, \c, \set, \connect,
// \gexec, \copy, ...): every backslash outside quotes, dollar quotes,
// comments and COPY data. No SQL token contains a backslash there, and psql
// is the only program that understands them.
//
// As in psql, a meta-command takes the rest of its line as arguments, so
// there is one report per meta-command, not one per backslash in its
// arguments; \; and \: are the exceptions psql handles inside SQL.
func MetaCommands(src string) []Problem {
	var (
		problems []Problem
		sc       = newScanner(src)
		lines    *lineTracker
	)
	for t, _ := sc.next(); t.kind != tokEOF; t, _ = sc.next() {
		if t.kind != tokMeta && t.kind != tokForced {
			continue
		}
		if lines == nil {
			lines = newLineTracker(src)
		}
		problems = append(problems, metaProblem(src, t, lines))
	}
	return problems
}

// metaProblem is the problem of meta-command token t.
func metaProblem(src string, t token, lines *lineTracker) Problem {
	line, col := lines.pos(t.start)
	return Problem{
		Offset: t.start,
		Line:   line,
		Col:    col,
		Msg: `psql meta-command "` + metaName(src[t.start:t.end]) +
			`" is not SQL; dbinit sends files to the server, which does not understand it`,
	}
}

// metaName returns the name of the meta-command in text, which starts with
// its backslash: like psql, the name runs to whitespace or the next
// backslash. It is cut short and made valid UTF-8 for display.
func metaName(text string) string {
	const maxName = 32
	end := 1
	for end < len(text) && !is(text[end], classSpace) && text[end] != '\\' {
		end++
	}
	name := text[:end]
	if len(name) > maxName {
		cut := maxName
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = name[:cut] + "…"
	}
	return strings.ToValidUTF8(name, "\uFFFD")
}

// Unterminated reports a quoted literal, dollar-quoted string, quoted
// identifier or block comment that is still open at the end of src, with
// the position where it opened; nil if there is none. Split has then made
// it, and everything after it, part of the last statement.
func Unterminated(src string) *Problem {
	// Only the last token can be open, since it runs to the end of src.
	var last token
	sc := newScanner(src)
	for t, _ := sc.next(); t.kind != tokEOF; t, _ = sc.next() {
		last = t
	}
	if !last.open {
		return nil
	}
	text := src[last.start:last.end]
	const eof = " before the end of the file"
	var msg string
	switch last.kind {
	case tokString:
		msg = "unterminated " + stringKind(text) + ": no closing '" + eof
	case tokQuotedIdent:
		msg = `unterminated quoted identifier: no closing "` + eof
	case tokDollarString:
		tag := text[:strings.IndexByte(text[1:], '$')+2]
		msg = "unterminated dollar-quoted string: no closing " + strings.ToValidUTF8(tag, "\uFFFD") + eof
	case tokBlockComment:
		msg = "unterminated /* comment: no closing */" + eof
		if n := openNested(text); n > 0 {
			msg += fmt.Sprintf("; comments nest in PostgreSQL, and %d inner /* %s still open",
				n, plural(n, "is", "are"))
		}
	default: // not reached: the lexer opens nothing else
		msg = "unterminated token" + eof
	}
	line, col := Pos(src, last.start)
	return &Problem{Offset: last.start, Line: line, Col: col, Msg: msg}
}

// stringKind names the literal text starts, in the server's words.
func stringKind(text string) string {
	switch text[0] | 0x20 {
	case 'e':
		return `escape string (in E'...' a backslash escapes the next character, so \' does not end it)`
	case 'b':
		return "bit string literal"
	case 'x':
		return "hexadecimal string literal"
	case 'u':
		return "Unicode escape string"
	}
	return "quoted string"
}

// openNested returns how many comments nested inside the unterminated block
// comment text are still open at its end.
func openNested(text string) int {
	depth := 0
	for i := 2; i < len(text); i++ {
		switch {
		case text[i] == '/' && at(text, i+1) == '*':
			depth++
			i++
		case text[i] == '*' && at(text, i+1) == '/':
			depth-- // never below zero: that would have closed the comment
			i++
		}
	}
	return depth
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
