package sqlsplit

import "strings"

// Statement is one piece of the input. Pieces are contiguous: concatenating
// Text of every Statement returned by Split yields the input exactly.
type Statement struct {
	// Text holds the exact bytes of the input from just after the previous
	// statement's terminating ";" up to and including this statement's ";",
	// or to the end of the input. It includes leading whitespace and
	// comments, and after a COPY ... FROM STDIN statement begins with the
	// inline data.
	Text string
	// Offset is the byte offset of Text in the input.
	Offset int
	// Line is the 1-based line number of the first byte of Text.
	Line int
	// Start is the byte offset inside Text where the first real token
	// begins, after leading whitespace and comments; len(Text) when Empty.
	// psql meta-commands count as comments here, since psql does not send
	// them either; MetaCommands reports them.
	Start int
	// Empty reports that Text holds only whitespace, comments and possibly
	// a lone ";" (or psql meta-commands): there is nothing to send to the
	// server.
	Empty bool
}

// SQL returns the statement without its leading whitespace and comments:
// the text to send to the server. It is empty when s is Empty.
func (s Statement) SQL() string {
	return s.Text[s.start():]
}

// ErrorOffset converts a position reported by PostgreSQL in an error for
// the query s.SQL() (1-based, counted in characters) into a byte offset in
// the whole input, ready for Pos. A position of 0 or less, meaning none was
// reported, gives the offset of the statement's first token.
func (s Statement) ErrorOffset(position int) int {
	base := s.Offset + s.start()
	if position <= 0 {
		return base
	}
	return base + RuneToByte(s.SQL(), position-1)
}

// start is s.Start clamped into Text, so that a Statement built by hand
// cannot make the methods panic.
func (s Statement) start() int {
	return max(0, min(s.Start, len(s.Text)))
}

// Split cuts src into statements where psql would: at each ";" that is not
// inside a quoted literal, quoted identifier, dollar quote, comment or
// parentheses, nor inside the BEGIN ATOMIC ... END body of a
// CREATE FUNCTION or CREATE PROCEDURE statement.
//
// Split never fails. Text after the last ";" becomes a final statement,
// which is Empty if it holds only whitespace and comments; an unterminated
// quote or comment simply runs to the end of the input, as reported by
// Unterminated. An empty src gives no statements.
//
// The data that follows COPY ... FROM STDIN inline, as in a pg_dump file,
// is not SQL: as psql does, Split passes over it up to the line holding
// just \. and it begins the next statement, whatever it contains.
func Split(src string) []Statement {
	if src == "" {
		return nil
	}
	// Every cut is at a ";", so this is enough room: Split allocates once.
	stmts := make([]Statement, 0, strings.Count(src, ";")+1)
	sc := newScanner(src)
	line := 1
	for {
		t, ends := sc.next()
		if t.kind == tokEOF {
			break
		}
		if ends {
			stmts = append(stmts, piece(src, sc.from, t.end, sc.first, line))
			line += strings.Count(src[sc.from:t.end], "\n")
		}
	}
	if sc.from < len(src) {
		stmts = append(stmts, piece(src, sc.from, len(src), sc.first, line))
	}
	return stmts
}

func piece(src string, from, to, first, line int) Statement {
	s := Statement{Text: src[from:to], Offset: from, Line: line}
	if first < 0 {
		s.Start, s.Empty = len(s.Text), true
	} else {
		s.Start = first - from
	}
	return s
}

// Analysis is what one pass of the scanner over a file finds: its
// statements (as Split), the token left open at its end (as
// Unterminated) and its psql meta-commands (as MetaCommands).
type Analysis struct {
	Statements   []Statement
	Unterminated *Problem
	MetaCommands []Problem
}

// Analyze is Split, Unterminated and MetaCommands in one pass over src,
// for loading a file without lexing it three times.
func Analyze(src string) Analysis {
	var a Analysis
	if src == "" {
		return a
	}
	a.Statements = make([]Statement, 0, strings.Count(src, ";")+1)
	sc := newScanner(src)
	line := 1
	var last token
	var lines *lineTracker
	for {
		t, ends := sc.next()
		if t.kind == tokEOF {
			break
		}
		last = t
		if t.kind == tokMeta || t.kind == tokForced {
			if lines == nil {
				lines = newLineTracker(src)
			}
			a.MetaCommands = append(a.MetaCommands, metaProblem(src, t, lines))
		}
		if ends {
			a.Statements = append(a.Statements, piece(src, sc.from, t.end, sc.first, line))
			line += strings.Count(src[sc.from:t.end], "\n")
		}
	}
	if sc.from < len(src) {
		a.Statements = append(a.Statements, piece(src, sc.from, len(src), sc.first, line))
	}
	if last.open {
		a.Unterminated = Unterminated(src) // rare: the message needs the whole token
	}
	return a
}
